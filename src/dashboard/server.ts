/**
 * The dashboard's HTTP server (@hono/node-server): listening, refusing an address it cannot
 * use as the user's mistake (exit 2), and stopping gracefully: live streams are ended, requests
 * under way may finish for a moment, then every connection is closed.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { ConfigError } from '../core/errors.js';
import type { Dashboard } from './app.js';

export interface ListenRequest {
  host: string;
  /** 0: any free port (the one chosen is in `RunningDashboard.url`) */
  port: number;
}

export interface RunningDashboard {
  url: string;
  port: number;
  /** stop accepting, end live streams, wait up to `graceMs` for requests under way, then close every connection */
  close(graceMs?: number): Promise<void>;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** --port and --host as given on the command line; every problem at once (exit 2). */
export function parseListen(o: { port?: unknown; host?: unknown }): ListenRequest {
  const problems: string[] = [];
  const portText = String(o.port ?? '');
  const hostText = String(o.host ?? '').replace(/^\[(.*)\]$/, '$1');
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535)
    problems.push(`--port: "${portText.slice(0, 20)}" must be a port number from 1 to 65535 (0 picks a free one)`);
  if (!isIP(hostText) && !HOSTNAME.test(hostText))
    problems.push(`--host: "${hostText.slice(0, 64)}" is not an IP address or a host name (e.g. 127.0.0.1, or 0.0.0.0 for every interface)`);
  if (problems.length) throw new ConfigError(problems);
  return { host: hostText, port: Number(portText) };
}

function listenProblem(e: NodeJS.ErrnoException, req: ListenRequest): ConfigError | undefined {
  switch (e.code) {
    case 'EADDRINUSE':
      return new ConfigError([`--port: ${req.port} is already in use on ${req.host}; choose another port`]);
    case 'EACCES':
      return new ConfigError([`--port: not allowed to listen on port ${req.port} (ports below 1024 need privileges); choose a port above 1023`]);
    case 'EADDRNOTAVAIL':
      return new ConfigError([`--host: ${req.host} is not an address of this machine; use 127.0.0.1, 0.0.0.0 or one of its addresses`]);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ConfigError([`--host: cannot resolve ${req.host}; use an IP address or a known host name`]);
    default:
      return undefined;
  }
}

export async function listen(dashboard: Dashboard, req: ListenRequest): Promise<RunningDashboard> {
  const server = createAdaptorServer({ fetch: dashboard.app.fetch }) as Server;
  await new Promise<void>((resolve, reject) => {
    const failed = (e: NodeJS.ErrnoException) => reject(listenProblem(e, req) ?? e);
    server.once('error', failed);
    server.listen(req.port, req.host, () => {
      server.off('error', failed);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shown = isIP(req.host) === 6 ? `[${req.host}]` : req.host;
  return {
    url: `http://${shown}:${port}`,
    port,
    close: async (graceMs = 5000) => {
      dashboard.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // keep-alive connections go as soon as they are idle (a live stream's, once it ended), the rest after the grace period
      const idle = setInterval(() => server.closeIdleConnections(), 50);
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearInterval(idle);
      clearTimeout(timer);
    },
  };
}
