/**
 * Redis: the connection every queue, worker and check uses (TLS included, a single server or a
 * Redis Cluster), the default key prefix, and the health check a fleet command runs before it
 * queues anything. ioredis loads only when the check runs or a cluster is opened, so the CLI's
 * settings can name the prefix without paying for a Redis client.
 *
 * Pointing Flotilla at a cluster: `REDIS_URL=redis+cluster://[user:password@]host1:port1,host2:port2`
 * (`rediss+cluster://` for TLS); any reachable nodes will do, ioredis discovers the rest. BullMQ's
 * scripts touch several keys of a queue at once, and a cluster runs a multi-key script only when
 * every key lives in one slot: the key prefix must hold a hash tag (`{flotilla}`, the default), so
 * all of Flotilla's keys (both queues, schedules, locks) hash to the slot of the tag. A prefix
 * without one is refused (exit 2) rather than silently rewritten: the keys would then differ from
 * what the same settings mean on a single server.
 */
import type { ConnectionOptions } from 'bullmq';
import { ConfigError, ConnectionError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import { tlsProblem } from '../core/tls.js';

/** BullMQ key prefix by default; the hash tag keeps a queue's keys in one Redis Cluster slot. */
export const DEFAULT_PREFIX = '{flotilla}';

const CLUSTER_SCHEME = /^rediss?\+cluster:\/\//i;

/** Does this REDIS_URL name a Redis Cluster (`redis+cluster://` or `rediss+cluster://`)? */
export function isClusterUrl(url: string): boolean {
  return CLUSTER_SCHEME.test(url);
}

/** A Redis Cluster, as read from its URL. */
export interface ClusterTarget {
  nodes: { host: string; port: number }[];
  tls: boolean;
  username?: string;
  password?: string;
}

/**
 * `redis+cluster://[user:password@]h1:p1,h2:p2[/]` -> the seed nodes and credentials. A URL it
 * cannot read is a ConfigError naming what is wrong (exit 2), never echoing the password.
 */
export function parseClusterUrl(url: string): ClusterTarget {
  const scheme = CLUSTER_SCHEME.exec(url);
  if (!scheme) throw new ConfigError([`REDIS_URL: ${redactUrl(url)} is not a redis+cluster:// URL`]);
  let rest = url.slice(scheme[0].length);
  let username: string | undefined;
  let password: string | undefined;
  // userinfo runs to the LAST "@" (a password may hold an unencoded "@")
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const info = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = info.indexOf(':');
    const decode = (s: string) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    };
    username = decode(colon >= 0 ? info.slice(0, colon) : info) || undefined;
    password = colon >= 0 ? decode(info.slice(colon + 1)) : undefined;
  }
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const path = rest.slice(slash + 1).replace(/\/$/, '');
    if (path !== '' && path !== '0') throw new ConfigError([`REDIS_URL: a Redis Cluster has only database 0 (the URL asks for /${path}); remove it`]);
    rest = rest.slice(0, slash);
  }
  const problems: string[] = [];
  const nodes = rest.split(',').map((part) => {
    const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(part.trim());
    if (!m) {
      problems.push(`REDIS_URL: "${part}" is not host:port (nodes are separated by commas: redis+cluster://h1:7000,h2:7000)`);
      return { host: '', port: 0 };
    }
    const port = m[2] === undefined ? 6379 : Number(m[2]);
    if (port < 1 || port > 65535) problems.push(`REDIS_URL: port ${m[2]} of ${m[1]} is out of range`);
    return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
  });
  if (problems.length) throw new ConfigError(problems);
  return { nodes, tls: /^rediss/i.test(scheme[0]), ...(username && { username }), ...(password !== undefined && { password }) };
}

/**
 * Why this prefix cannot serve a cluster, or undefined when it can. Redis hashes only the part
 * between the first "{" and the next "}" (when not empty): that part must exist.
 */
export function clusterPrefixProblem(prefix: string): string | undefined {
  const open = prefix.indexOf('{');
  const close = open >= 0 ? prefix.indexOf('}', open + 1) : -1;
  if (open >= 0 && close > open + 1) return undefined;
  return `FLOTILLA_QUEUE_PREFIX: "${prefix}" has no hash tag; on a Redis Cluster the prefix must hold one, e.g. "{${prefix.replace(/[{}]/g, '') || 'flotilla'}}", so that every key of a queue lives in one slot`;
}

/**
 * `rediss://` turns TLS on for every connection we make (queues, workers, checks). ioredis does
 * it for the URL too; saying it here keeps it true whoever builds the client. The server
 * certificate is verified against Node's CAs: add a private CA with NODE_EXTRA_CA_CERTS=<file>.
 */
export function redisTls(url: string): { tls?: Record<string, never> } {
  return /^rediss(\+cluster)?:\/\//i.test(url) ? { tls: {} } : {};
}

/** Options for one Redis server (a cluster: adapters/redis-client.ts). */
export function redisConnection(url: string): ConnectionOptions {
  return { url, maxRetriesPerRequest: null, enableOfflineQueue: true, connectionName: 'flotilla', ...redisTls(url) };
}

/** Fail fast and clearly when Redis is not there, instead of queueing commands forever. */
export async function checkRedis(url: string, timeoutMs = 5000): Promise<void> {
  if (isClusterUrl(url)) return checkCluster(url, timeoutMs);
  const { Redis } = await import('ioredis');
  const r = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
    ...redisTls(url),
  });
  // connect() only rejects with "Connection is closed."; the socket's own error (ECONNREFUSED, ...) arrives as an event
  let socketError: (Error & { code?: string }) | undefined;
  r.on('error', (e: Error & { code?: string }) => {
    socketError ??= e;
  });
  try {
    await r.connect();
    await r.ping();
  } catch (e) {
    const u = new URL(url);
    throw unreachable(`${u.hostname}:${u.port || 6379}`, socketError ?? e, url, u.protocol === 'rediss:');
  } finally {
    r.disconnect();
  }
}

/** A cluster answers when a seed node answers, the slot map loads, and the cluster says its state is ok. */
async function checkCluster(url: string, timeoutMs: number): Promise<void> {
  const t = parseClusterUrl(url);
  const where = t.nodes.map((n) => `${n.host}:${n.port}`).join(',');
  const { openCluster } = await import('./redis-client.js');
  const c = openCluster(t, { maxRetriesPerRequest: 0, enableOfflineQueue: true, lazyConnect: true, connectTimeout: timeoutMs, noRetry: true });
  let socketError: (Error & { code?: string }) | undefined;
  c.on('node error', (e: Error & { code?: string }) => {
    socketError ??= e;
  });
  c.on('error', () => {});
  try {
    const timer = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs).unref());
    await Promise.race([c.connect(), timer]);
    const info = String(await Promise.race([c.cluster('INFO'), timer]));
    if (!/cluster_state:ok/.test(info)) {
      throw new ConnectionError(
        where,
        'the cluster state is not ok (slots not all served)',
        `Check it with: redis-cli -h ${t.nodes[0]!.host} -p ${t.nodes[0]!.port} cluster info`,
        'transient',
        undefined,
        'Redis',
      );
    }
  } catch (e) {
    if (e instanceof ConnectionError) throw e;
    if (/cluster support disabled/i.test(`${(e as Error)?.message} ${socketError?.message}`)) {
      throw new ConnectionError(
        where,
        'this Redis is not a cluster (cluster support disabled)',
        'Use REDIS_URL=redis://host:port for a single Redis server.',
        'input',
        undefined,
        'Redis',
      );
    }
    // ioredis's Cluster reports a refused or unreachable seed as "Connection is closed." (the socket's code is lost)
    const err = (socketError ?? e) as { code?: string; message?: string };
    const vague = !err?.code && /Connection is closed|None of startup nodes|Failed to refresh slots/i.test(String(err?.message));
    throw unreachable(where, vague ? new Error('no seed node answered (refused, unreachable or not a cluster node)') : err, url, t.tls);
  } finally {
    c.disconnect();
  }
}

function unreachable(where: string, e: unknown, url: string, tls: boolean): ConnectionError {
  const err = e as { code?: string; message?: string } | undefined;
  const reason = err?.code === 'ECONNREFUSED' ? 'connection refused' : String(err?.message ?? err);
  const host = where.split(',')[0]!.replace(/:\d+$/, '');
  const problem = tlsProblem(err, { host, howToTrust: 'Set NODE_EXTRA_CA_CERTS=<CA file> for every flotilla process' });
  if (problem) return new ConnectionError(where, problem.cause, problem.hint, 'input', undefined, 'Redis');
  return new ConnectionError(
    where,
    `${reason}${err?.code ? ` (${err.code})` : ''}`,
    isClusterUrl(url)
      ? `Is the Redis Cluster running? Check a node with: redis-cli -h ${host} cluster info; and check REDIS_URL (${redactUrl(url)})${tls ? ' (rediss+cluster:// needs TLS ports)' : ''}.`
      : `Is Redis running? Check with: redis-cli -u ${redactUrl(url)} ping; and check REDIS_URL${tls ? ' (rediss:// needs a TLS port)' : ' (a TLS-only server needs rediss://)'}.`,
    'transient',
    undefined,
    'Redis',
  );
}
