/**
 * Opening a Postgres connection, and turning the ways it fails into one clear
 * ConnectionError: host and port, the cause, what to check. Never the password.
 */
import pg from 'pg';
import { parse as parseConnectionString } from 'pg-connection-string';
import { ConnectionError } from '../../core/errors.js';

export interface ConnectOptions {
  applicationName?: string;
  connectTimeoutMs?: number;
}

export interface Target {
  host: string;
  port: number;
  database: string;
  user: string;
}

export function describeUrl(url: string): Target {
  try {
    const c = parseConnectionString(url);
    return {
      host: c.host ?? 'localhost',
      port: Number(c.port ?? 5432),
      database: c.database ?? c.user ?? '',
      user: c.user ?? process.env.PGUSER ?? process.env.USER ?? '',
    };
  } catch {
    return { host: '?', port: 0, database: '?', user: '?' };
  }
}

export function targetLabel(t: Target): string {
  return `${t.host}:${t.port}/${t.database}`;
}

/** Connect, or throw a ConnectionError that says what to check. */
export async function connect(url: string, options: ConnectOptions = {}): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    application_name: options.applicationName ?? 'flotilla',
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
  });
  // An idle client whose server goes away emits 'error'; without a listener Node crashes.
  client.on('error', () => {});
  try {
    await client.connect();
    return client;
  } catch (e) {
    await client.end().catch(() => {});
    throw connectionError(describeUrl(url), e, options.connectTimeoutMs ?? 10_000);
  }
}

export function connectionError(t: Target, e: unknown, timeoutMs: number): ConnectionError {
  const err = e as { code?: string; message?: string };
  const where = targetLabel(t);
  const ready = `pg_isready -h ${t.host} -p ${t.port}`;
  switch (err.code) {
    case 'ECONNREFUSED':
      return new ConnectionError(where, 'connection refused (ECONNREFUSED)', `Is PostgreSQL running and listening on ${t.host}:${t.port}? Check with: ${ready}; and check the host and port in DATABASE_URL.`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ConnectionError(where, `host name "${t.host}" not found (${err.code})`, 'Check the host name in the database URL and DNS.', err.code === 'ENOTFOUND' ? 'input' : 'transient');
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new ConnectionError(where, `no route or no answer (${err.code})`, `Check the network path and firewall to ${t.host}:${t.port}.`);
    case 'ECONNRESET':
    case 'EPIPE':
      return new ConnectionError(where, `connection reset (${err.code})`, `The server closed the connection; check the server log and ${ready}.`);
    case '28P01':
      return new ConnectionError(where, `password authentication failed for user "${t.user}" (28P01)`, 'Check the user and password in the database URL (or the ${VAR} it refers to).', 'input', err.code);
    case '28000':
      return new ConnectionError(where, `${err.message} (28000)`, 'Check the user name, and pg_hba.conf on the server.', 'input', err.code);
    case '3D000':
      return new ConnectionError(where, `database "${t.database}" does not exist (3D000)`, `Create it (createdb -h ${t.host} -p ${t.port} ${t.database}) or fix the database name in the URL.`, 'input', err.code);
    case '53300':
      return new ConnectionError(where, 'too many connections (53300)', 'The server is at max_connections; lower Flotilla concurrency or --per-server, or retry later.', 'transient', err.code);
    case '57P03':
      return new ConnectionError(where, 'the server is starting up or shutting down (57P03)', `Wait and retry; check with: ${ready}.`, 'transient', err.code);
    default:
      if (/timeout/i.test(err.message ?? '')) {
        return new ConnectionError(where, `no answer within ${timeoutMs} ms (timeout)`, `Check that ${t.host}:${t.port} is reachable (${ready}) and not overloaded.`);
      }
      return new ConnectionError(where, `${err.message ?? String(e)}${err.code ? ` (${err.code})` : ''}`, `Check DATABASE_URL and that the server answers: ${ready}.`, 'transient', err.code);
  }
}

/** The smallest thing the engine needs from a connection (pg.Client fits). */
export interface Queryable {
  query<R extends pg.QueryResultRow = any>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
