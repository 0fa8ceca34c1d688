/**
 * Opening a Postgres connection, and turning the ways it fails into one clear
 * ConnectionError: host and port, the cause, what to check. Never the password.
 *
 * TLS: the URL's sslmode, sslrootcert, sslcert, sslkey (and pg's ssl=true) are
 * read here with libpq's meaning, not pg 8's (where require and verify-ca mean
 * verify-full and print a deprecation warning); see `pgConfig`.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { parse as parseConnectionString } from 'pg-connection-string';
import { ConfigError, ConnectionError } from '../../core/errors.js';
import { tlsProblem } from '../../core/tls.js';

export interface ConnectOptions {
  applicationName?: string;
  connectTimeoutMs?: number;
  /** where the URL came from, named in hints: `DATABASE_URL (or --database-url)`, `the databaseUrl of tenant "acme" (tenants file or registry)` */
  urlSource?: string;
}

/** Where the URLs came from, as hints name them. */
export const CLI_URL_SOURCE = 'the database URL (--database-url, DATABASE_URL or the config file)';
export const CONTROL_URL_SOURCE = 'CONTROL_DATABASE_URL (or DATABASE_URL when it is not set)';

export function tenantUrlSource(tenantId: string): string {
  return `the databaseUrl of tenant "${tenantId}" (its entry in the tenants file, or the registry)`;
}

export interface Target {
  host: string;
  port: number;
  database: string;
  user: string;
}

export const SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** URL parameters Flotilla reads itself; pg never sees them. */
const TLS_PARAMS = ['sslmode', 'ssl', 'sslrootcert', 'sslcert', 'sslkey', 'sslpassword', 'uselibpqcompat'];

/** The URL without its TLS parameters, and those parameters. */
function splitTlsParams(url: string): { url: string; params: Map<string, string> } {
  const params = new Map<string, string>();
  const q = url.indexOf('?');
  if (q < 0) return { url, params };
  const hash = url.indexOf('#', q);
  const search = new URLSearchParams(url.slice(q + 1, hash < 0 ? undefined : hash));
  for (const k of TLS_PARAMS) {
    const v = search.get(k);
    if (v !== null) params.set(k, v);
    search.delete(k);
  }
  if (!params.size) return { url, params };
  const rest = search.toString();
  return { url: `${url.slice(0, q)}${rest ? `?${rest}` : ''}`, params };
}

export interface PgConfig {
  /** for pg.Client / pg.Pool: the URL without TLS parameters, plus `ssl` built from them */
  config: pg.ClientConfig;
  sslmode: SslMode;
}

/**
 * Client settings for a URL, TLS as libpq does it (the URL first, then PGSSLMODE,
 * PGSSLROOTCERT, PGSSLCERT, PGSSLKEY; no sslmode at all means disable, as in pg):
 *   disable      no TLS
 *   prefer       TLS without certificate checks; without TLS when the server has none
 *   require      TLS without certificate checks (with sslrootcert: as verify-ca)
 *   verify-ca    TLS; the chain must lead to sslrootcert (default: Node's CAs + NODE_EXTRA_CA_CERTS)
 *   verify-full  verify-ca, and the certificate must name the host of the URL
 * pg's own forms still work: ssl=true (verify-full), ssl=false, sslmode=no-verify (require).
 * A bad mode or an unreadable file is a ConfigError naming the server (never the password).
 */
export function pgConfig(url: string, env: Record<string, string | undefined> = process.env): PgConfig {
  const split = splitTlsParams(url);
  const p = split.params;
  const where = targetLabel(describeUrl(url));
  const fromEnv = (k: string, name: string) => p.get(k) ?? (env[name] || undefined);
  const ssl = p.get('ssl');
  let mode = p.get('sslmode');
  let given = `sslmode=${mode}`;
  if (mode === undefined && ssl !== undefined) {
    mode = ssl === 'true' || ssl === '1' ? 'verify-full' : ssl === 'false' || ssl === '0' ? 'disable' : ssl;
    given = `ssl=${ssl}`;
  }
  if (mode === undefined && env.PGSSLMODE) [mode, given] = [env.PGSSLMODE, `PGSSLMODE=${env.PGSSLMODE}`];
  if (mode === 'no-verify') mode = 'require';
  mode ??= 'disable';
  if (!(SSL_MODES as readonly string[]).includes(mode)) {
    throw new ConfigError([`${where}: ${given} is not supported: use sslmode=${SSL_MODES.join('|')}`]);
  }
  const sslmode = mode as SslMode;
  if (sslmode === 'disable') return { config: { connectionString: split.url, ssl: false }, sslmode };
  const read = (param: string, file: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch (e: any) {
      throw new ConfigError([`${where}: ${param}=${file}: ${e?.code === 'ENOENT' ? 'file not found' : `cannot read it (${e?.code ?? e?.message})`}`]);
    }
  };
  const rootcert = fromEnv('sslrootcert', 'PGSSLROOTCERT');
  const cert = fromEnv('sslcert', 'PGSSLCERT');
  const key = fromEnv('sslkey', 'PGSSLKEY');
  const options: ConnectionOptions = {};
  // sslrootcert=system (libpq 16): the default CAs, which in Node include NODE_EXTRA_CA_CERTS
  if (rootcert && rootcert !== 'system') options.ca = read('sslrootcert', rootcert);
  if (cert) options.cert = read('sslcert', cert);
  if (key) options.key = read('sslkey', key);
  if (p.get('sslpassword')) options.passphrase = p.get('sslpassword');
  const verify = sslmode === 'verify-full' || sslmode === 'verify-ca' || (sslmode === 'require' && rootcert !== undefined);
  if (!verify) options.rejectUnauthorized = false;
  else if (sslmode !== 'verify-full') options.checkServerIdentity = () => undefined;
  return { config: { connectionString: split.url, ssl: options }, sslmode };
}

/** pg's error when it asked for TLS and the server said it has none. */
export function serverRefusedTls(e: unknown): boolean {
  return (e as { message?: string })?.message === 'The server does not support SSL connections';
}

export function describeUrl(url: string): Target {
  try {
    // without the TLS parameters: pg-connection-string would read the certificate files (and warn about sslmode)
    const c = parseConnectionString(splitTlsParams(url).url);
    return {
      host: c.host ?? 'localhost',
      port: Number(c.port || 5432),
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

/** Connect, or throw a ConnectionError (a ConfigError for bad TLS settings) that says what to check. */
export async function connect(url: string, options: ConnectOptions = {}): Promise<pg.Client> {
  const { config, sslmode } = pgConfig(url);
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  const open = async (ssl: pg.ClientConfig['ssl']) => {
    const client = new pg.Client({ ...config, ssl, application_name: options.applicationName ?? 'flotilla', connectionTimeoutMillis: timeoutMs });
    // An idle client whose server goes away emits 'error'; without a listener Node crashes.
    client.on('error', () => {});
    try {
      await client.connect();
      return client;
    } catch (e) {
      await client.end().catch(() => {});
      throw e;
    }
  };
  try {
    try {
      return await open(config.ssl);
    } catch (e) {
      // libpq's prefer: a server without TLS gets a plain connection
      if (sslmode === 'prefer' && serverRefusedTls(e)) return await open(false);
      throw e;
    }
  } catch (e) {
    throw connectionError(describeUrl(url), e, timeoutMs, options.urlSource);
  }
}

export function connectionError(t: Target, e: unknown, timeoutMs: number, urlSource = 'the database URL'): ConnectionError {
  const err = e as { code?: string; message?: string };
  const where = targetLabel(t);
  const ready = `pg_isready -h ${t.host} -p ${t.port}`;
  switch (err.code) {
    case 'ECONNREFUSED':
      return new ConnectionError(
        where,
        'connection refused (ECONNREFUSED)',
        `Is PostgreSQL running and listening on ${t.host}:${t.port}? Check with: ${ready}; and check the host and port in ${urlSource}.`,
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ConnectionError(
        where,
        `host name "${t.host}" not found (${err.code})`,
        `Check the host name in ${urlSource} and DNS.`,
        err.code === 'ENOTFOUND' ? 'input' : 'transient',
      );
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new ConnectionError(where, `no route or no answer (${err.code})`, `Check the network path and firewall to ${t.host}:${t.port}.`);
    case 'ECONNRESET':
    case 'EPIPE':
      return new ConnectionError(where, `connection reset (${err.code})`, `The server closed the connection; check the server log and ${ready}.`);
    case '28P01':
      return new ConnectionError(
        where,
        `password authentication failed for user "${t.user}" (28P01)`,
        `Check the user and password in ${urlSource} (or the \${VAR} it refers to).`,
        'input',
        err.code,
      );
    case '28000':
      if (/no encryption/.test(err.message ?? '')) {
        return new ConnectionError(
          where,
          `${err.message} (28000)`,
          'The server accepts only TLS connections: add sslmode=verify-full&sslrootcert=<CA file> (or sslmode=require) to the URL.',
          'input',
          err.code,
        );
      }
      return new ConnectionError(where, `${err.message} (28000)`, 'Check the user name, and pg_hba.conf on the server.', 'input', err.code);
    case '3D000':
      return new ConnectionError(
        where,
        `database "${t.database}" does not exist (3D000)`,
        `Create it (createdb -h ${t.host} -p ${t.port} ${t.database}) or fix the database name in ${urlSource}.`,
        'input',
        err.code,
      );
    case '53300':
      return new ConnectionError(
        where,
        'too many connections (53300)',
        'The server is at max_connections; lower Flotilla concurrency or --per-server, or retry later.',
        'transient',
        err.code,
      );
    case '57P03':
      return new ConnectionError(where, 'the server is starting up or shutting down (57P03)', `Wait and retry; check with: ${ready}.`, 'transient', err.code);
    default: {
      const tls = tlsProblem(e, { host: t.host, howToTrust: 'Add sslrootcert=<CA file> to the URL (or set NODE_EXTRA_CA_CERTS=<CA file>)' });
      if (tls) return new ConnectionError(where, tls.cause, tls.hint, 'input', err.code);
      if (serverRefusedTls(e)) {
        return new ConnectionError(
          where,
          'the server does not accept TLS connections',
          'Enable ssl on the server, or (only on a trusted network) use sslmode=disable or prefer in the URL.',
          'input',
        );
      }
      if (/timeout/i.test(err.message ?? '')) {
        return new ConnectionError(
          where,
          `no answer within ${timeoutMs} ms (timeout)`,
          `Check that ${t.host}:${t.port} is reachable (${ready}) and not overloaded.`,
        );
      }
      return new ConnectionError(
        where,
        `${err.message ?? String(e)}${err.code ? ` (${err.code})` : ''}`,
        `Check ${urlSource} and that the server answers: ${ready}.`,
        'transient',
        err.code,
      );
    }
  }
}

/** The smallest thing the engine needs from a connection (pg.Client fits). */
export interface Queryable {
  query<R extends pg.QueryResultRow = any>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
