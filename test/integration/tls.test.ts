/**
 * TLS end to end, against servers this file starts: a throwaway CA and server
 * certificate (openssl), a private Postgres cluster with ssl=on that refuses
 * plain connections (hostnossl ... reject), and a private redis-server that
 * speaks only TLS. The built CLI connects to them as a user would.
 *
 * Needs openssl, Postgres server binaries (initdb, pg_ctl; as root also a
 * `postgres` user) and redis-server built with TLS. Without them (e.g. a
 * machine with only Docker) the tests are skipped, saying why.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, appendFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, REPO, cleanEnv, runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, dropAllTestDatabases } from '../helpers/db.js';
import { migrationDir } from '../helpers/migrations.js';
import { connect } from '../../src/adapters/pg/connection.js';
import { ControlStore } from '../../src/control/store.js';
import { isFlotillaError, type FlotillaError } from '../../src/core/errors.js';

const show = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
const has = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;

/** Postgres server binaries: $PG_BIN, then Debian's layout, then PATH. */
function findPgBin(): string | undefined {
  const candidates = [process.env.PG_BIN ?? ''];
  if (existsSync('/usr/lib/postgresql')) {
    for (const v of readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a))) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  }
  for (const dir of candidates) if (dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  return has('initdb', ['--version']) && has('pg_ctl', ['--version']) ? '' : undefined;
}

const PG_BIN = findPgBin();
const IS_ROOT = process.getuid?.() === 0;
const missing = [
  !has('openssl', ['version']) && 'openssl',
  PG_BIN === undefined && 'Postgres server binaries (initdb, pg_ctl; set PG_BIN)',
  IS_ROOT && !has('id', ['postgres']) && 'a "postgres" user (initdb refuses root)',
].filter(Boolean);
const NO_PG = missing.length ? `TLS tests skipped: no ${missing.join(', ')} on this machine` : '';
const NO_REDIS = NO_PG || (has('redis-server', ['--version']) ? '' : 'Redis TLS test skipped: no redis-server on this machine');
if (NO_PG) console.warn(NO_PG);
else if (NO_REDIS) console.warn(NO_REDIS);

const SECRET = 'S3cr3tPW';

let tmp = '';
let ca = '';
let pgPort = 0;
let pgData = '';
let redisPort = 0;
let redis: ChildProcess | undefined;
/** why redis-server could not serve TLS here (a build without TLS), else '' */
let redisProblem = '';
const workers: ChildProcess[] = [];
const migrations = migrationDir({
  '001_create_items.sql': 'CREATE TABLE items (id int PRIMARY KEY);\n',
  '002_add_name.sql': 'ALTER TABLE items ADD COLUMN name text;\n',
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function run(cmd: string, args: string[], asPostgres = false): string {
  const [c, a] = asPostgres && IS_ROOT ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  const r = spawnSync(c, a, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout || r.error}`);
  return r.stdout;
}

const pgTool = (name: string) => (PG_BIN ? join(PG_BIN, name) : name);

/** A URL of the private cluster (with a password the leak checks look for; trust auth ignores it). */
function tlsUrl(db: string, params: string, host = '127.0.0.1'): string {
  return `postgres://postgres:${SECRET}@${host}:${pgPort}/${db}${params ? `?${params}` : ''}`;
}

async function tlsQuery<R extends pg.QueryResultRow = any>(db: string, sql: string): Promise<R[]> {
  const c = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', database: db, ssl: { ca: readFileSync(ca, 'utf8') } });
  await c.connect();
  try {
    return (await c.query<R>(sql)).rows;
  } finally {
    await c.end();
  }
}

const tablesOf = async (db: string) =>
  (await tlsQuery<{ t: string }>(db, `SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)).map((r) => r.t);

beforeAll(async () => {
  if (NO_PG) return;
  tmp = mkdtempSync(join(tmpdir(), 'flotilla-tls-'));
  chmodSync(tmp, 0o755);
  // a CA, and a server certificate it signs, for 127.0.0.1 only (so "localhost" is a host name mismatch)
  const f = (name: string) => join(tmp, name);
  ca = f('ca.crt');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('openssl', ['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', ca, '-days', '2', '-subj', '/CN=Flotilla test CA']);
  run('openssl', ['req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1']);
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  const signedBy = ['-CA', ca, '-CAkey', f('ca.key'), '-set_serial', '1', '-days', '2'];
  run('openssl', ['x509', '-req', '-in', f('server.csr'), ...signedBy, '-extfile', f('ext.cnf'), '-out', f('server.crt')]);
  chmodSync(join(tmp, 'server.key'), 0o600);
  chmodSync(ca, 0o644);

  // Postgres: TLS only, trust auth, socket in the temp dir
  pgPort = await freePort();
  pgData = join(tmp, 'pgdata');
  if (IS_ROOT) run('chown', ['-R', 'postgres', tmp]);
  run(pgTool('initdb'), ['-D', pgData, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync'], true);
  appendFileSync(
    join(pgData, 'postgresql.conf'),
    [
      `port = ${pgPort}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${tmp}'`,
      'ssl = on',
      `ssl_cert_file = '${join(tmp, 'server.crt')}'`,
      `ssl_key_file = '${join(tmp, 'server.key')}'`,
      'fsync = off',
      'max_connections = 40',
      '',
    ].join('\n'),
  );
  writeFileSync(join(pgData, 'pg_hba.conf'), 'local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n');
  run(pgTool('pg_ctl'), ['-D', pgData, '-l', join(tmp, 'postgres.log'), '-w', '-t', '30', 'start'], true);
  // tls_empty: for the tests where nothing may change; the control database is "postgres"
  await Promise.all(['tls_cli', 'tls_empty', 'tls_t1', 'tls_t2'].map((db) => tlsQuery('postgres', `CREATE DATABASE ${db} STRATEGY FILE_COPY`)));

  // Redis: a TLS port only
  if (NO_REDIS) return;
  redisPort = await freePort();
  const conf: Record<string, string> = {
    port: '0',
    'tls-port': String(redisPort),
    bind: '127.0.0.1',
    'tls-cert-file': join(tmp, 'server.crt'),
    'tls-key-file': join(tmp, 'server.key'),
    'tls-ca-cert-file': ca,
    'tls-auth-clients': 'no',
    save: '',
    appendonly: 'no',
    dir: tmp,
  };
  const args = Object.entries(conf).flatMap(([k, v]) => [`--${k}`, v]);
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  redis = child;
  let out = '';
  const started = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 20_000);
    const check = () => {
      if (/Ready to accept connections/.test(out)) clearTimeout(timer), resolve(true);
    };
    child.stdout!.on('data', (d) => ((out += d), check()));
    child.stderr!.on('data', (d) => ((out += d), check()));
    child.once('exit', () => (clearTimeout(timer), resolve(false)));
  });
  if (!started) {
    // a redis-server built without TLS does not know the tls-* directives
    if (/Bad directive|tls/i.test(out) && !/already in use/i.test(out))
      redisProblem = `Redis TLS test skipped: this redis-server cannot serve TLS: ${out.trim().split('\n').slice(-2).join(' ')}`;
    else throw new Error(`redis-server did not start:\n${out}`);
  }
}, 60_000);

afterAll(async () => {
  for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL');
  if (redis && redis.exitCode === null) {
    const exited = new Promise((r) => redis!.once('exit', r));
    redis.kill('SIGKILL');
    await exited;
  }
  if (pgData && existsSync(join(pgData, 'postmaster.pid'))) {
    try {
      run(pgTool('pg_ctl'), ['-D', pgData, '-m', 'immediate', '-w', 'stop'], true);
    } catch {
      const pid = Number(readFileSync(join(pgData, 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (pid > 0) process.kill(pid, 'SIGKILL');
    }
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  migrations.cleanup();
  await dropAllTestDatabases();
}, 60_000);

/** The CLI's one-line error: its first stderr line, then the hint; never the password. */
function errorLines(r: CliResult): string[] {
  expect(r.stdout + r.stderr, show(r)).not.toContain(SECRET);
  expect(r.stderr, show(r)).not.toMatch(/SECURITY WARNING|at .*\.js:\d+/);
  return r.stderr.trimEnd().split('\n');
}

describe('Postgres over TLS', { timeout: 60_000 }, () => {
  it.skipIf(!!NO_PG)('flotilla pending with sslmode=verify-full&sslrootcert=<ca> applies the migrations', async () => {
    const r = await runCli(['pending', '--dir', migrations.dir], { env: { DATABASE_URL: tlsUrl('tls_cli', `sslmode=verify-full&sslrootcert=${ca}`) } });
    expect(r.code, show(r)).toBe(0);
    expect(r.stderr, show(r)).toBe('');
    expect(r.stdout).toContain('✓ Migration completed: 002_add_name.sql');
    expect(await tablesOf('tls_cli')).toEqual(['items', 'migrations']);
  });

  it.skipIf(!!NO_PG)('verify-full without the CA: exit 2, one line naming host:port and the certificate, nothing changed', async () => {
    const r = await runCli(['pending', '--dir', migrations.dir], { env: { DATABASE_URL: tlsUrl('tls_empty', 'sslmode=verify-full') } });
    expect(r.code, show(r)).toBe(2);
    const [line, hint, ...rest] = errorLines(r);
    expect(line).toMatch(
      new RegExp(
        `^✗ cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${pgPort}/tls_empty: TLS: server certificate not trusted: .*\\((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\\)$`,
      ),
    );
    expect(hint).toContain('sslrootcert=<CA file>');
    expect(rest).toEqual([]);
    expect(await tablesOf('tls_empty')).toEqual([]);
  });

  it.skipIf(!!NO_PG)('sslmode=disable against a server that refuses plain connections: exit 2, the hint asks for sslmode', async () => {
    const r = await runCli(['pending', '--dir', migrations.dir], { env: { DATABASE_URL: tlsUrl('tls_empty', 'sslmode=disable') } });
    expect(r.code, show(r)).toBe(2);
    const [line, hint, ...rest] = errorLines(r);
    expect(line).toMatch(new RegExp(`^✗ cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${pgPort}/tls_empty: .*no encryption \\(28000\\)$`));
    expect(hint).toContain('accepts only TLS connections: add sslmode=');
    expect(rest).toEqual([]);
    expect(await tablesOf('tls_empty')).toEqual([]);
  });

  it.skipIf(!!NO_PG)('each sslmode as libpq users expect (in process: connect() and the control store)', async () => {
    const plain = await createTestDatabase('tls'); // on the plain (ssl = off) server of the other tests
    /** connect, and say whether the session is encrypted; or the error, as the CLI would print it */
    const outcome = async (url: string): Promise<string> => {
      try {
        const c = await connect(url);
        try {
          return `tls=${(await c.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0].ssl}`;
        } finally {
          await c.end();
        }
      } catch (e) {
        expect(isFlotillaError(e), String(e)).toBe(true);
        const err = e as FlotillaError;
        expect(err.message + err.hint).not.toContain(SECRET);
        return `${err.kind}: ${err.message}`;
      }
    };
    const at = (host: string, db: string) => `PostgreSQL at ${host}:${pgPort}/${db}`;
    const results = await Promise.all([
      outcome(tlsUrl('tls_empty', 'sslmode=require')), // encrypted, certificate not checked
      outcome(tlsUrl('tls_empty', 'sslmode=prefer')),
      outcome(`${plain.url}?sslmode=prefer`), // no TLS on that server: plain, as libpq does
      outcome(`${plain.url}?sslmode=require`),
      outcome(tlsUrl('tls_empty', `sslmode=verify-ca&sslrootcert=${ca}`, 'localhost')), // the CA only
      outcome(tlsUrl('tls_empty', `sslmode=verify-full&sslrootcert=${ca}`, 'localhost')), // also the host name
      outcome(tlsUrl('tls_empty', `sslmode=require&sslrootcert=${ca}`, 'localhost')), // require + sslrootcert = verify-ca
      outcome(tlsUrl('tls_empty', `ssl=true&sslrootcert=${ca}`)), // pg's form: verify-full
      outcome(tlsUrl('tls_empty', 'sslmode=no-verify')), // pg's form: require
      outcome(tlsUrl('tls_empty', `sslmode=verify-full&sslrootcert=${join(tmp, 'nope.crt')}`)),
      outcome(tlsUrl('tls_empty', 'sslmode=allow')),
    ]);
    expect(results).toEqual([
      'tls=true',
      'tls=true',
      'tls=false',
      `input: cannot connect to PostgreSQL at ${new URL(plain.url).hostname}:${new URL(plain.url).port || 5432}/${plain.name}: the server does not accept TLS connections`,
      'tls=true',
      expect.stringMatching(
        new RegExp(
          `^input: cannot connect to ${at('localhost', 'tls_empty')}: TLS: server certificate is not valid for host "localhost": .*ERR_TLS_CERT_ALTNAME_INVALID`,
        ),
      ),
      'tls=true',
      'tls=true',
      'tls=true',
      `input: invalid configuration: 127.0.0.1:${pgPort}/tls_empty: sslrootcert=${join(tmp, 'nope.crt')}: file not found`,
      `input: invalid configuration: 127.0.0.1:${pgPort}/tls_empty: sslmode=allow is not supported: use sslmode=disable|prefer|require|verify-ca|verify-full`,
    ]);

    // the control store's pool falls back the same way (libpq prefer), and verifies with sslrootcert
    for (const url of [`${plain.url}?sslmode=prefer`, tlsUrl('postgres', `sslmode=verify-full&sslrootcert=${ca}`)]) {
      const store = new ControlStore(url);
      try {
        await store.migrate();
        expect((await store.pool.query(`SELECT to_regclass('flotilla.rollouts') IS NOT NULL AS ok`)).rows[0].ok, url).toBe(true);
      } finally {
        await store.close();
      }
    }
  });
});

describe('a fleet rollout through rediss:// Redis', { timeout: 60_000 }, () => {
  const env = (extra: Record<string, string | undefined> = {}) => ({
    REDIS_URL: `rediss://127.0.0.1:${redisPort}`,
    // the control database's CA from the URL; Redis's (and tenant t2's) from NODE_EXTRA_CA_CERTS
    CONTROL_DATABASE_URL: tlsUrl('postgres', `sslmode=verify-full&sslrootcert=${ca}`),
    NODE_EXTRA_CA_CERTS: ca,
    FLOTILLA_RECONCILE_EVERY: '1s',
    LOG_LEVEL: 'warn',
    ...extra,
  });

  it.skipIf(!!NO_REDIS)('a worker and rollout --wait migrate two tenants on the TLS Postgres', async (ctx) => {
    if (redisProblem) ctx.skip(redisProblem);
    const tenants = join(tmp, 'tenants.json');
    writeFileSync(
      tenants,
      JSON.stringify({
        tenants: [
          { id: 't1', databaseUrl: tlsUrl('tls_t1', `sslmode=verify-full&sslrootcert=${ca}`) },
          { id: 't2', databaseUrl: tlsUrl('tls_t2', 'sslmode=verify-full') },
        ],
      }),
    );
    const worker = spawn(process.execPath, [CLI, 'worker', '--concurrency', '2', '--drain-timeout', '5s', '--dir', migrations.dir], {
      cwd: REPO,
      env: cleanEnv(env()),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    workers.push(worker);
    let output = '';
    worker.stdout!.on('data', (d) => (output += d));
    worker.stderr!.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => worker.once('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => /worker \S+ started/.test(output) && (clearInterval(timer), resolve()), 50);
      void exited.then((code) => (clearInterval(timer), reject(new Error(`worker exited with ${code}:\n${output}`))));
    });

    const r = await runCli(['rollout', '--tenants', tenants, '--all', '--wait', '--json', '--dir', migrations.dir], { env: env() });
    expect(r.code, `${show(r)}\n--- worker\n${output}`).toBe(0);
    const view = JSON.parse(r.stdout) as { state: string; tenants: { id: string; state: string; applied: string[] }[] };
    expect(view.state).toBe('succeeded');
    expect(view.tenants).toEqual([
      expect.objectContaining({ id: 't1', state: 'succeeded', applied: ['001_create_items.sql', '002_add_name.sql'] }),
      expect.objectContaining({ id: 't2', state: 'succeeded', applied: ['001_create_items.sql', '002_add_name.sql'] }),
    ]);
    for (const db of ['tls_t1', 'tls_t2']) expect(await tablesOf(db), db).toEqual(['items', 'migrations']);

    worker.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).not.toContain(SECRET);
  });

  it.skipIf(!!NO_REDIS)('without the CA, or with redis:// against the TLS port: one clear line, nothing enqueued', async (ctx) => {
    if (redisProblem) ctx.skip(redisProblem);
    const tenants = join(tmp, 'tenants-bad.json');
    writeFileSync(tenants, JSON.stringify({ tenants: [{ id: 'x1', databaseUrl: tlsUrl('tls_t1', `sslmode=verify-full&sslrootcert=${ca}`) }] }));
    const [noCa, plain] = await Promise.all([
      runCli(['rollout', '--tenants', tenants, '--all', '--dir', migrations.dir], { env: env({ NODE_EXTRA_CA_CERTS: undefined }) }),
      runCli(['rollout', '--tenants', tenants, '--all', '--dir', migrations.dir], { env: env({ REDIS_URL: `redis://127.0.0.1:${redisPort}` }) }),
    ]);
    expect(noCa.code, show(noCa)).toBe(2);
    const [line, hint] = errorLines(noCa);
    expect(line).toMatch(new RegExp(`^✗ cannot connect to Redis at 127\\.0\\.0\\.1:${redisPort}: TLS: server certificate not trusted: `));
    expect(hint).toContain('NODE_EXTRA_CA_CERTS=<CA file>');
    expect(plain.code, show(plain)).toBe(3);
    const [line2, hint2] = errorLines(plain);
    expect(line2).toMatch(new RegExp(`^✗ cannot connect to Redis at 127\\.0\\.0\\.1:${redisPort}: `));
    expect(hint2).toContain('a TLS-only server needs rediss://');
    const [{ t }] = await tlsQuery('postgres', `SELECT to_regclass('flotilla.rollout_tenants') AS t`);
    if (t) expect(await tlsQuery('postgres', `SELECT tenant_id FROM flotilla.rollout_tenants WHERE tenant_id = 'x1'`)).toEqual([]);
  });
});
