/**
 * The bad-input catalogue (docs/reliability.md, "## Bad input"): for each thing a user can get
 * wrong, the one-line message (naming the file, tenant, host:port or setting), the exit code,
 * no password in the output, and proof that nothing changed.
 *
 * Most cases run the CLI's own command functions in-process through `flotilla()` below, which
 * does what dist/cli/main.js does around them (loadConfig, the command, reportError: the printed
 * message and the exit code), with the output captured: no process start per case. The cases
 * where the real process's exit code and printing are the point spawn dist/cli/main.js
 * (`npm run build` first), all at once. Every case has its own databases and Redis prefix.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tryLock } from '../../src/adapters/pg/lock.js';
import { loadConfig, type RawSettings } from '../../src/config.js';
import { rolloutCancel } from '../../src/cli/commands/rollout-cancel.js';
import { rolloutCreate } from '../../src/cli/commands/rollout-create.js';
import { rolloutResume } from '../../src/cli/commands/rollout-resume.js';
import { rolloutRetry } from '../../src/cli/commands/rollout-retry.js';
import { rolloutStatus } from '../../src/cli/commands/rollout-status.js';
import { pendingCommand, statusCommand, type CommandContext } from '../../src/cli/commands/single.js';
import { jsonReplacer, reportError, type Output } from '../../src/cli/output.js';
import { redactSecrets } from '../../src/core/redact.js';
import { createLogger } from '../../src/logger.js';
import { startWorker, type RunningWorker } from '../../src/worker/worker.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';
import { SECRET } from '../helpers/fleet.js';
import { migrationDir } from '../helpers/migrations.js';
import { deleteKeys, redisUrl, testPrefix } from '../helpers/redis.js';

type Cleanup = () => Promise<unknown> | unknown;
const tmp = mkdtempSync(join(tmpdir(), 'flotilla-bad-input-'));
const afterEachTest: Cleanup[] = [];
const atEnd: Cleanup[] = [];
/** Where helpers register their clean-up: after each test, or at the end for the concurrent tests. */
let cleanups = afterEachTest;
const runAll = async (list: Cleanup[]) => {
  while (list.length) await Promise.resolve(list.pop()!()).catch(() => {});
};
/** Databases are dropped in the background, while the next tests run. */
const drops: Promise<unknown>[] = [];
afterEach(() => runAll(afterEachTest));
afterAll(async () => {
  await runAll(atEnd);
  await Promise.all(drops);
  await dropAllTestDatabases();
  rmSync(tmp, { recursive: true, force: true });
});

const show = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** Exit code, the key part of the message, and never the password. */
function expectFailure(r: CliResult, code: number, message: RegExp): void {
  expect(r.code, show(r)).toBe(code);
  expect(r.stdout + r.stderr, show(r)).toMatch(message);
  expect(r.stdout + r.stderr, show(r)).not.toContain(SECRET);
}

/** The URL with the leak checks' password in it (the server trusts local connections, so it is ignored). */
function withPassword(url: string, user?: string): string {
  const u = new URL(url);
  if (user) u.username = user;
  u.password = SECRET;
  return u.toString();
}

function dir(files: Record<string, string>): string {
  const d = migrationDir(files);
  cleanups.push(() => d.cleanup());
  return d.dir;
}

function file(name: string, text: string): string {
  const path = join(mkdtempSync(join(tmp, 'f-')), name);
  writeFileSync(path, text);
  return path;
}

async function database(prefix = 'bad'): Promise<TestDatabase> {
  const db = await createTestDatabase(prefix);
  cleanups.push(() => void drops.push(db.drop().catch(() => {})));
  return db;
}

/** Everything a migration could have left: schemas, tables, views, sequences, types. */
async function contents(db: TestDatabase): Promise<string[]> {
  const r = await db.query<{ name: string }>(
    `SELECT 'schema ' || nspname AS name FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('information_schema', 'public')
     UNION ALL SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
     UNION ALL SELECT 'type ' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE n.nspname = 'public' AND t.typtype IN ('e', 'c', 'd') AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)
     ORDER BY 1`,
  );
  return r.rows.map((x) => x.name);
}

async function redisKeys(prefix: string): Promise<string[]> {
  const r = new Redis(redisUrl());
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    return keys.sort();
  } finally {
    r.disconnect();
  }
}

/** What a control database holds: no schema at all, or its rollouts and registered tenants. */
async function controlState(control: TestDatabase): Promise<{ schema: boolean; rollouts: number; tenants: number }> {
  const schema = (await control.query(`SELECT to_regnamespace('flotilla') IS NOT NULL AS s`)).rows[0].s as boolean;
  if (!schema) return { schema, rollouts: 0, tenants: 0 };
  const r = await control.query(`SELECT (SELECT count(*)::int FROM flotilla.rollouts) AS rollouts, (SELECT count(*)::int FROM flotilla.tenants) AS tenants`);
  return { schema, ...r.rows[0] };
}

interface InProcess {
  flags?: RawSettings;
  env?: Record<string, string | undefined>;
  configFile?: string;
  json?: boolean;
}

/** A command as dist/cli/main.js runs it (settings, command, reportError), output captured. */
async function flotilla(action: (ctx: CommandContext) => Promise<number>, s: InProcess = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const out: Output = {
    json: !!s.json,
    line: (text = '') => void (stdout += `${text}\n`),
    data: (value) => void (stdout += `${JSON.stringify(value, jsonReplacer, 2)}\n`),
    error: (text) => void (stderr += `${redactSecrets(text)}\n`),
  };
  let code: number;
  try {
    const config = loadConfig({ flags: s.flags ?? {}, env: s.env ?? {}, configFile: s.configFile });
    code = await action({ config, out, logger: createLogger({ level: 'silent' }) });
  } catch (e) {
    code = reportError(out, e);
  }
  return { code, stdout, stderr };
}

/** Fleet commands other than `rollout` read process.env: set it for one call (tests in this file run one at a time). */
async function withEnv<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const OK = { '001_ok.sql': 'CREATE TABLE ok (id int);\n' };

// ---------------------------------------------------------------------------------------------

describe('migration files', () => {
  // each set holds a good 001 next to the bad file: had the set not been refused as a whole, 001 would have run
  const refused: { what: string; files: Record<string, string>; message: RegExp }[] = [
    { what: 'an empty file', files: { '002_empty.sql': '' }, message: /^✗ migration 002_empty\.sql is empty \(no SQL statement\)$/m },
    {
      what: 'a file mixing CREATE INDEX CONCURRENTLY with transactional statements',
      files: { '002_mixed.sql': 'BEGIN;\nALTER TABLE ok ADD COLUMN d int;\nCREATE INDEX CONCURRENTLY ok_d ON ok (d);\nCOMMIT;\n' },
      message: /^✗ 002_mixed\.sql mixes statements that cannot run in a transaction \(CREATE INDEX CONCURRENTLY at line 3\) with transactional ones$/m,
    },
    {
      what: 'a SQL syntax error',
      files: { '002_typo.sql': 'CREATE TABLE b (id int);\n\nCREAT TABLE c (id int);\n' },
      message: /^✗ 002_typo\.sql:3: SQL syntax error: syntax error at or near "CREAT"$/m,
    },
    {
      what: 'a psql meta-command',
      files: { '002_psql.sql': 'CREATE TABLE b (id int);\n\\i other.sql\n' },
      message: /^✗ 002_psql\.sql:2: SQL syntax error: syntax error at or near "\\"$/m,
    },
    {
      what: 'ROLLBACK inside a file',
      files: { '002_rollback.sql': 'BEGIN;\nCREATE TABLE b (id int);\nROLLBACK;\n' },
      message: /^✗ 002_rollback\.sql:3: ROLLBACK is not allowed in a migration$/m,
    },
    {
      what: 'PREPARE TRANSACTION inside a file',
      files: { '002_prepare.sql': "BEGIN;\nCREATE TABLE b (id int);\nPREPARE TRANSACTION 'x';\n" },
      message: /^✗ 002_prepare\.sql:3: PREPARE TRANSACTION is not allowed in a migration$/m,
    },
    {
      what: 'a misspelt validation header',
      files: { '002_header.sql': '-- flotilla:validate allowRowChange=true\nDELETE FROM ok;\n' },
      message: /^✗ invalid configuration: 002_header\.sql:1: unknown validation setting "allowRowChange=true"/m,
    },
  ];

  for (const { what, files, message } of refused) {
    it(`${what}: the whole set is refused, exit 2`, async () => {
      const db = await database();
      const r = await flotilla(pendingCommand, { flags: { databaseUrl: withPassword(db.url), dir: dir({ ...OK, ...files }) } });
      expectFailure(r, 2, message);
      expect(r.stdout, show(r)).toBe('');
      expect(await contents(db)).toEqual([]);
    });
  }

  it('BEGIN/COMMIT inside a file do not commit: a failure after a COMMIT rolls back the whole file (exit 1)', async () => {
    const db = await database();
    const d = dir({ '001_two_blocks.sql': 'BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\nBEGIN;\nCREATE TABLE b (id int);\nSELECT 1/0;\nCOMMIT;\n' });
    const r = await flotilla(pendingCommand, { flags: { databaseUrl: withPassword(db.url), dir: d } });
    expectFailure(r, 1, /^✗ Migration failed: 001_two_blocks\.sql$/m);
    expect(r.stdout).toMatch(/^ {2}statement \d+ \(line 6\): SELECT 1\/0$/m);
    expect(r.stdout).toContain('  ERROR 22012: division by zero');
    expect(r.stdout.trimEnd().endsWith('✗ Completed: 0 applied, 1 failed')).toBe(true);
    // table a, created before the file's COMMIT, is gone too; the tracking table holds no row
    expect(await contents(db)).toEqual(['public.migrations']);
    expect((await db.query('SELECT count(*)::int AS n FROM migrations')).rows[0].n).toBe(0);
  });

  it('an applied file missing from the directory: a warning naming it, exit 0, nothing run', async () => {
    const db = await database();
    const flags = { databaseUrl: withPassword(db.url), dir: dir({ ...OK, '002_b.sql': 'CREATE TABLE b (id int);\n' }) };
    expect((await flotilla(pendingCommand, { flags })).code).toBe(0);
    const ledger = async () => (await db.query('SELECT name, checksum, applied_at FROM migrations ORDER BY name')).rows;
    const before = await ledger();
    expect(before.map((x) => x.name)).toEqual(['001_ok.sql', '002_b.sql']);

    const gone = { ...flags, dir: dir(OK) };
    const r = await flotilla(pendingCommand, { flags: gone });
    expect(r.code, show(r)).toBe(0);
    expect(r.stderr).toBe('⚠ applied migration 002_b.sql has no file any more\n');
    expect(r.stdout).not.toContain('Running migration');
    const status = await flotilla(statusCommand, { flags: gone });
    expect(status.code, show(status)).toBe(0);
    expect(status.stdout).toContain('Applied but missing from the directory:\n  ! 002_b.sql\n');
    expect(r.stdout + r.stderr + status.stdout + status.stderr).not.toContain(SECRET);
    expect(await ledger()).toEqual(before);
    expect(await contents(db)).toEqual(['public.b', 'public.migrations', 'public.ok']);
  });
});

describe('settings and connections: nothing changed', () => {
  const settings: { what: string; input: (db: TestDatabase) => InProcess; code: number; message: RegExp }[] = [
    {
      what: 'a config file that is not valid JSON (and holds a password)',
      input: () => ({ configFile: file('flotilla.config.json', `{ "databaseUrl": "postgres://app:${SECRET}@db/x" "lockTimeout": "1s" }`) }),
      code: 2,
      message: /^✗ invalid configuration: \S+flotilla\.config\.json: Expected ',' or '}' after property value in JSON at position \d+/m,
    },
    {
      what: 'an unknown key in the config file',
      input: () => ({ configFile: file('flotilla.config.json', '{ "lockTimeot": "1s" }') }),
      code: 2,
      message: /^✗ invalid configuration: \S+flotilla\.config\.json: unknown setting\(s\) lockTimeot$/m,
    },
    {
      what: 'a bad duration in the config file',
      input: () => ({ configFile: file('flotilla.config.json', '{ "lockTimeout": "ten seconds" }') }),
      code: 2,
      message: /^✗ invalid configuration: \S+flotilla\.config\.json: lockTimeout: "ten seconds" is not a duration/m,
    },
    {
      what: 'a config file that does not exist',
      input: () => ({ configFile: join(tmp, 'nope.json') }),
      code: 2,
      message: /^✗ invalid configuration: \S+nope\.json: file not found$/m,
    },
    {
      what: 'a hostile --schema',
      input: () => ({ flags: { schema: 'x"; DROP TABLE users; --' } }),
      code: 2,
      message: /^✗ invalid configuration: --schema: must be a plain identifier/m,
    },
    {
      what: 'a migrations directory that does not exist',
      input: () => ({ flags: { dir: join(tmp, 'no-such-dir') } }),
      code: 2,
      message: /^✗ cannot read migrations directory \S+no-such-dir: no such directory$/m,
    },
    {
      what: 'a role that does not exist',
      input: (db) => ({ flags: { databaseUrl: withPassword(db.url, 'flotilla_nobody') } }),
      code: 2,
      message: /^✗ cannot connect to PostgreSQL at [\w.]+:\d+\/flotilla_bad_\w+: role "flotilla_nobody" does not exist \(28000\)$/m,
    },
    {
      what: 'a database that does not exist',
      input: (db) => ({ flags: { databaseUrl: withPassword(db.url).replace(db.name, `${db.name}_missing`) } }),
      code: 2,
      message: /^✗ cannot connect to PostgreSQL at [\w.]+:\d+\/flotilla_bad_\w+_missing: database "flotilla_bad_\w+_missing" does not exist \(3D000\)$/m,
    },
  ];

  for (const { what, input, code, message } of settings) {
    it(`${what}: exit ${code}`, async () => {
      const db = await database();
      const given = input(db);
      // the database URL and directory given: the command would otherwise have applied 001
      const flags = { databaseUrl: withPassword(db.url), dir: dir(OK), ...given.flags };
      const r = await flotilla(pendingCommand, { ...given, flags });
      expectFailure(r, code, message);
      expect(r.stdout, show(r)).toBe('');
      expect(await contents(db)).toEqual([]);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Fleets run in this process: control database, Redis prefix, tenant databases, in-process workers.

interface MiniFleet {
  control: TestDatabase;
  prefix: string;
  env: Record<string, string>;
  logs: string[];
  workers: RunningWorker[];
}

async function miniFleet(): Promise<MiniFleet> {
  const control = await database('ctl');
  const prefix = testPrefix();
  const f: MiniFleet = {
    control,
    prefix,
    env: { CONTROL_DATABASE_URL: control.url, REDIS_URL: redisUrl(), FLOTILLA_QUEUE_PREFIX: prefix },
    logs: [],
    workers: [],
  };
  cleanups.push(() => deleteKeys(prefix));
  return f;
}

/** A worker in this process; `env` is the only environment it resolves ${VAR} from. */
async function worker(f: MiniFleet, env: Record<string, string> = {}): Promise<RunningWorker> {
  const logger = createLogger({ level: 'debug', destination: { write: (s: string) => void f.logs.push(s) } });
  const w = await startWorker(
    {
      redisUrl: redisUrl(),
      prefix: f.prefix,
      controlUrl: f.control.url,
      concurrency: 2,
      lockDurationMs: 30_000,
      reconcileEveryMs: 60_000,
      drainTimeoutMs: 2000,
    },
    logger,
    env,
  );
  f.workers.push(w);
  cleanups.push(() => w.close());
  return w;
}

function tenantsFile(tenants: { id: string; url: string; schema?: string }[]): string {
  return file(
    'tenants.yaml',
    `tenants:\n${tenants.map((t) => `  - id: ${t.id}\n    databaseUrl: ${t.url}\n${t.schema ? `    schema: ${t.schema}\n` : ''}`).join('')}`,
  );
}

interface View {
  id: string;
  state: string;
  haltReason: string | null;
  tenants: { id: string; state: string; applied: string[]; error: string | null; attempts: number }[];
}

/** `rollout` needs an explicit selector: --all unless the case gives --only or --tag. */
const rollout = (f: MiniFleet, o: Record<string, unknown>, extra: InProcess = {}) =>
  flotilla((ctx) => rolloutCreate(ctx, { ...(o.only === undefined && o.tag === undefined ? { all: true } : {}), ...o }, { ...f.env, ...extra.env }), {
    ...extra,
    env: {},
  });

async function until<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the tenants file and rollout options', () => {
  const good = `tenants:\n  - id: acme\n    databaseUrl: postgres://app:${SECRET}@127.0.0.1:5432/acme\n`;
  const one = (extra: string, id = 'acme', url = `postgres://app:${SECRET}@127.0.0.1:5432/acme`) =>
    `tenants:\n  - id: ${id}\n    databaseUrl: ${url}\n${extra}`;
  const cases: { what: string; tenants?: string; name?: string; o?: Record<string, unknown>; env?: Record<string, string>; message: RegExp }[] = [
    {
      what: 'a duplicate tenant id',
      tenants: `${good}  - id: acme\n    databaseUrl: postgres://app@127.0.0.1:5432/acme2\n`,
      message: /^ {2}tenants\[1\]: duplicate id "acme" \(first at tenants\[0\]\)$/m,
    },
    {
      what: 'a database URL that is not postgres:// (with a password)',
      tenants: one('', 'acme', `mysql://app:${SECRET}@db-1/acme`),
      message: /^ {2}tenants\[0\] \(id "acme"\): databaseUrl: not a postgres:\/\/ or postgresql:\/\/ URL \(got "mysql:\/\/app:\*\*\*@db-1\/acme"\)$/m,
    },
    {
      what: 'an unknown field',
      tenants: one('    colour: blue\n'),
      message: /^ {2}tenants\[0\] \(id "acme"\): unknown field "colour" \(allowed: id, databaseUrl, schema, tags, window\)$/m,
    },
    {
      what: 'a hostile tenant id',
      tenants: one('', `'x"; DROP TABLE users; --'`),
      message: /^ {2}tenants\[0\]: id: must be lowercase letters, digits, "_" or "-".*; got "x\\"; DROP TABLE users; --"$/m,
    },
    {
      what: 'a hostile schema name',
      tenants: one(`    schema: 'x"; DROP TABLE users; --'\n`),
      message: /^ {2}tenants\[0\] \(id "acme"\): schema: must be a plain Postgres identifier.*; got "x\\"; DROP TABLE users; --"$/m,
    },
    {
      what: 'a JSON tenants file with a syntax error',
      name: 'tenants.json',
      tenants: `{ "tenants": [ { "id": "acme", "databaseUrl": "postgres://app:${SECRET}@db-1/acme" ] }`,
      message: /^✗ Invalid tenants file \S+tenants\.json: 1 problem\n {2}JSON syntax error at line 1, column \d+: Expected ',' or '}' after property value$/m,
    },
    {
      what: 'a tenants file that is not YAML or JSON at all (a CSV)',
      name: 'tenants.csv',
      tenants: `id,databaseUrl\nacme,postgres://app:${SECRET}@db-1/acme\n`,
      message: /^✗ Invalid tenants file \S+tenants\.csv: 1 problem\n {2}expected an object with a "tenants" list, or a list of tenants$/m,
    },
    {
      what: 'a tenants file that does not exist',
      o: { tenants: join(tmp, 'no-tenants.yaml') },
      message: /^✗ invalid configuration: --tenants \S+no-tenants\.yaml: file not found$/m,
    },
    { what: '--only with an unknown tenant id', tenants: good, o: { only: 'acme,ghost' }, message: /^✗ unknown tenant id: "ghost"$/m },
    {
      what: 'a bad --concurrency',
      tenants: good,
      o: { concurrency: 'abc' },
      message: /^✗ invalid configuration: --concurrency: "abc" must be a whole number >= 1$/m,
    },
    { what: '--wave-size 0', tenants: good, o: { waveSize: '0' }, message: /^✗ invalid configuration: --wave-size: "0" must be at least 1 \(or 1%\)$/m },
    {
      what: 'a REDIS_URL that does not parse (with a password)',
      tenants: good,
      env: { REDIS_URL: `redis://:${SECRET}@127.0.0.1:notaport` },
      message: /^✗ invalid configuration: REDIS_URL: is not a valid URL/m,
    },
    {
      what: 'a CONTROL_DATABASE_URL that does not parse (with a password)',
      tenants: good,
      env: { CONTROL_DATABASE_URL: `postgres://flotilla:${SECRET}@127.0.0.1:notaport/control` },
      message: /^✗ invalid configuration: CONTROL_DATABASE_URL: is not a valid URL/m,
    },
  ];

  for (const { what, tenants, name, o, env, message } of cases) {
    it(`${what}: exit 2, no rollout`, async () => {
      const f = await miniFleet();
      const path = tenants === undefined ? undefined : file(name ?? 'tenants.yaml', tenants);
      const r = await rollout(f, { tenants: path, ...o }, { flags: { dir: dir(OK) }, env });
      expectFailure(r, 2, message);
      expect(r.stdout, show(r)).toBe('');
      expect(await controlState(f.control)).toEqual({ schema: false, rollouts: 0, tenants: 0 });
      expect(await redisKeys(f.prefix)).toEqual([]);
    });
  }

  it('`rollout retry` of a rollout that does not exist: exit 2, nothing retried, nothing in Redis', async () => {
    const f = await miniFleet();
    const r = await withEnv(f.env, () => flotilla((ctx) => rolloutRetry(ctx, 'r20240101-000000-abcdef', { wait: true })));
    expectFailure(r, 2, /^✗ no rollout with id r20240101-000000-abcdef$/m);
    expect(await controlState(f.control)).toEqual({ schema: true, rollouts: 0, tenants: 0 });
    expect(await redisKeys(f.prefix)).toEqual([]);
  });

  it('--tenants-query that fails: exit 2 naming the query error, no rollout, nothing in Redis', async () => {
    const f = await miniFleet();
    const r = await rollout(f, { tenantsQuery: 'SELECT id, database_url FROM no_such_registry' }, { flags: { dir: dir(OK) } });
    expectFailure(r, 2, /^✗ invalid configuration: --tenants-query: relation "no_such_registry" does not exist$/m);
    expect(await controlState(f.control)).toEqual({ schema: true, rollouts: 0, tenants: 0 });
    expect(await redisKeys(f.prefix)).toEqual([]);
  });
});

describe('rollouts under bad conditions', () => {
  it('a tenant URL whose ${VAR} the worker does not have: that tenant fails at once naming the variable, nothing changed there', async () => {
    const f = await miniFleet();
    const [ok, missing] = await Promise.all([database('tn'), database('tn')]);
    await worker(f, { OK_PW: SECRET });
    const path = tenantsFile([
      { id: 'ok', url: withPassword(ok.url).replace(SECRET, '${OK_PW}') },
      { id: 'needs-var', url: withPassword(missing.url).replace(SECRET, '${FLOTILLA_BAD_INPUT_PW}') },
    ]);
    const r = await rollout(f, { tenants: path, maxFailures: '1', wait: true }, { flags: { dir: dir(OK) }, json: true });
    expect(r.code, show(r)).toBe(1);
    const v = JSON.parse(r.stdout) as View;
    expect(v.state).toBe('failed');
    const t = new Map(v.tenants.map((x) => [x.id, x]));
    expect(t.get('ok')).toMatchObject({ state: 'succeeded', applied: ['001_ok.sql'] });
    expect(t.get('needs-var')).toMatchObject({
      state: 'failed',
      attempts: 1,
      applied: [],
      error: 'environment variable FLOTILLA_BAD_INPUT_PW is not set (needed by tenant "needs-var")',
    });
    const status = await withEnv(f.env, () => flotilla((ctx) => rolloutStatus(ctx, v.id)));
    expect(status.code, show(status)).toBe(0);
    expect(status.stdout).toMatch(
      /^✗ needs-var +failed +0 +1 +(?:[\d.]+ s +)?environment variable FLOTILLA_BAD_INPUT_PW is not set \(needed by tenant "needs-var"\)$/m,
    );
    expect(await contents(missing)).toEqual([]);
    expect(await contents(ok)).toEqual(['public.migrations', 'public.ok']);
    expect(r.stdout + r.stderr + status.stdout + f.logs.join('')).not.toContain(SECRET);
  });

  it('a tenant on a closed port: retried as transient, the error names host:port, the other tenant succeeds', async () => {
    const f = await miniFleet();
    const [ok, far] = await Promise.all([database('tn'), database('tn')]);
    await worker(f);
    const farUrl = new URL(withPassword(far.url));
    farUrl.hostname = '127.0.0.1';
    farUrl.port = '1';
    const path = tenantsFile([
      { id: 'ok', url: ok.url },
      { id: 'far', url: farUrl.toString() },
    ]);
    const created = await rollout(f, { tenants: path }, { flags: { dir: dir(OK) }, json: true });
    expect(created.code, show(created)).toBe(0);
    const id = (JSON.parse(created.stdout) as View).id;
    const attempt = await until('the first failed attempt of far', async () => {
      const a = await f.control.query(`SELECT state, error FROM flotilla.attempts WHERE rollout_id = $1 AND tenant_id = 'far' ORDER BY attempt LIMIT 1`, [id]);
      return a.rows[0] as { state: string; error: { kind: string; message: string } } | undefined;
    });
    await until(
      'ok to succeed',
      async () =>
        (await f.control.query(`SELECT 1 FROM flotilla.rollout_tenants WHERE rollout_id = $1 AND tenant_id = 'ok' AND state = 'succeeded'`, [id])).rowCount,
    );
    expect(attempt.state).toBe('retrying');
    expect(attempt.error.kind).toBe('transient');
    expect(attempt.error.message).toBe(`cannot connect to PostgreSQL at 127.0.0.1:1/${far.name}: connection refused (ECONNREFUSED)`);

    const status = await withEnv(f.env, () => flotilla((ctx) => rolloutStatus(ctx, id)));
    expect(status.code, show(status)).toBe(0);
    expect(status.stdout).toMatch(
      new RegExp(
        `^→ far +running +0 +\\d+ +(?:[\\d.]+ s +)?cannot connect to PostgreSQL at 127\\.0\\.0\\.1:1/${far.name}: connection refused \\(ECONNREFUSED\\)$`,
        'm',
      ),
    );
    expect(status.stdout).toMatch(/^✓ ok +succeeded +1 /m);
    const cancelled = await withEnv(f.env, () => flotilla((ctx) => rolloutCancel(ctx, id)));
    expect(cancelled.code, show(cancelled)).toBe(0);
    expect(await contents(far)).toEqual([]);
    expect(created.stdout + status.stdout + cancelled.stdout + f.logs.join('')).not.toContain(SECRET);
  });

  it('Redis loses the jobs of a running rollout: `rollout resume` re-creates them, each migration applied once', async () => {
    const f = await miniFleet();
    const tenants = await Promise.all([database('tn'), database('tn')]);
    const path = tenantsFile(tenants.map((db, i) => ({ id: `t${i}`, url: withPassword(db.url) })));
    const files = { ...OK, '002_more.sql': 'CREATE TABLE more (id int);\n' };
    // --concurrency 1: t0 is handed out (its job in Redis), t1 waits in the control database
    const created = await rollout(f, { tenants: path, concurrency: '1' }, { flags: { dir: dir(files) }, json: true });
    expect(created.code, show(created)).toBe(0);
    const id = (JSON.parse(created.stdout) as View).id;
    expect(await redisKeys(f.prefix)).toContain(`${f.prefix}:migrate:m.${id}.t0.0`);

    await deleteKeys(f.prefix); // what a FLUSHALL (or a failover to an empty replica) does to this prefix
    expect(await redisKeys(f.prefix)).toEqual([]);
    const resumed = await withEnv(f.env, () => flotilla((ctx) => rolloutResume(ctx, id)));
    expect(resumed.code, show(resumed)).toBe(0);
    expect(resumed.stdout).toBe(`Rollout ${id}: 1 jobs re-created, 0 dispatched\n`);
    expect(await redisKeys(f.prefix)).toContain(`${f.prefix}:migrate:m.${id}.t0.0`);

    await worker(f);
    await until(
      'the rollout to finish',
      async () => (await f.control.query(`SELECT 1 FROM flotilla.rollouts WHERE id = $1 AND finished_at IS NOT NULL`, [id])).rowCount,
    );
    const status = await withEnv(f.env, () => flotilla((ctx) => rolloutStatus(ctx, id), { json: true }));
    const v = JSON.parse(status.stdout) as View;
    expect(v.state, status.stdout).toBe('succeeded');
    for (const db of tenants) {
      expect((await db.query('SELECT name FROM migrations ORDER BY name')).rows.map((x) => x.name)).toEqual(Object.keys(files));
      expect(await contents(db)).toEqual(['public.migrations', 'public.more', 'public.ok']);
    }
    expect(created.stdout + resumed.stdout + status.stdout + f.logs.join('')).not.toContain(SECRET);
  });

  it('two `rollout` commands for the same tenants at once: both succeed, each migration applied once per tenant', async () => {
    const f = await miniFleet();
    const tenants = await Promise.all([database('tn'), database('tn')]);
    const path = tenantsFile(tenants.map((db, i) => ({ id: `t${i}`, url: withPassword(db.url) })));
    const files = { ...OK, '002_slow.sql': 'CREATE TABLE slow (id int);\nSELECT pg_sleep(0.3);\n' };
    const d = dir(files);
    await worker(f);
    const [a, b] = await Promise.all([0, 1].map(() => rollout(f, { tenants: path, wait: true }, { flags: { dir: d }, json: true })));
    for (const r of [a!, b!]) expect(r.code, show(r)).toBe(0);
    const [va, vb] = [a!, b!].map((r) => JSON.parse(r.stdout) as View);
    expect(va!.id).not.toBe(vb!.id);
    for (const [i, db] of tenants.entries()) {
      const applied = [...va!.tenants[i]!.applied, ...vb!.tenants[i]!.applied].sort();
      expect(applied, `t${i}: what the two rollouts report`).toEqual(Object.keys(files));
      expect((await db.query('SELECT name FROM migrations ORDER BY name')).rows.map((x) => x.name)).toEqual(Object.keys(files));
      expect(await contents(db)).toEqual(['public.migrations', 'public.ok', 'public.slow']);
    }
    expect(a!.stdout + b!.stdout + f.logs.join('')).not.toContain(SECRET);
  });
});

// ---------------------------------------------------------------------------------------------

/**
 * A server that speaks just enough of the Postgres protocol to refuse a password (28P01), as a
 * real server with password authentication does: the test server trusts every local connection.
 */
async function passwordRefusingServer(): Promise<{ port: number; passwords: string[]; close(): Promise<void> }> {
  const passwords: string[] = [];
  const sockets = new Set<Socket>();
  const field = (code: string, value: string) => Buffer.concat([Buffer.from(code), Buffer.from(value), Buffer.from([0])]);
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    let started = false;
    let answered = false;
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!started) {
        if (buf.length < 4 || buf.length < buf.readInt32BE(0)) return;
        buf = buf.subarray(buf.readInt32BE(0));
        started = true;
        socket.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])); // AuthenticationCleartextPassword
      }
      if (answered || buf.length < 5 || buf[0] !== 0x70 || buf.length < 1 + buf.readInt32BE(1)) return;
      answered = true;
      passwords.push(buf.subarray(5, buf.readInt32BE(1)).toString());
      const fields = Buffer.concat([
        field('S', 'FATAL'),
        field('V', 'FATAL'),
        field('C', '28P01'),
        field('M', 'password authentication failed for user "app"'),
        Buffer.from([0]),
      ]);
      const head = Buffer.from([0x45, 0, 0, 0, 0]);
      head.writeInt32BE(4 + fields.length, 1);
      socket.end(Buffer.concat([head, fields]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    passwords,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe.concurrent('the real process: exit codes and what it prints', () => {
  // concurrent tests: an afterEach would clean up the others' databases while they run
  beforeAll(() => {
    cleanups = atEnd;
  });
  afterAll(() => {
    cleanups = afterEachTest;
  });
  it('a wrong password: exit 2 naming user, host:port and database, and not the password', async () => {
    const server = await passwordRefusingServer();
    cleanups.push(() => server.close());
    const r = await runCli(['status', '--dir', dir(OK), '--database-url', `postgres://app:${SECRET}@127.0.0.1:${server.port}/acme`]);
    expectFailure(
      r,
      2,
      new RegExp(`^✗ cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${server.port}/acme: password authentication failed for user "app" \\(28P01\\)$`, 'm'),
    );
    expect(server.passwords).toEqual([SECRET]); // the server really was asked, with that password
    expect(r.stdout).toBe('');
  });

  it('another runner holds the migration lock past --lock-wait-timeout: exit 3 naming the holder', async () => {
    const db = await database();
    const holder = await db.client();
    cleanups.push(() => holder.end());
    expect(await tryLock(holder, { schema: 'public', table: 'migrations' })).toBe(true);
    const pid = (await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    const r = await runCli(['pending', '--dir', dir(OK), '--lock-wait-timeout', '1s'], { env: { DATABASE_URL: withPassword(db.url) } });
    expectFailure(
      r,
      3,
      new RegExp(`^✗ another runner holds the migration lock on public\\.migrations \\(pid ${pid}, connected since [^)]+\\); gave up after \\d+ ms$`, 'm'),
    );
    expect(r.stdout).toMatch(new RegExp(`^… Waiting for the migration lock \\(held by pid ${pid}, `, 'm'));
    expect(await contents(db)).toEqual([]);
  });

  it('Redis down when `rollout` starts: exit 3 naming Redis host:port; the control database is untouched', async () => {
    const f = await miniFleet();
    const path = tenantsFile([{ id: 'acme', url: `postgres://app:${SECRET}@127.0.0.1:5432/acme` }]);
    const r = await runCli(['rollout', '--dir', dir(OK), '--tenants', path, '--all'], { env: { ...f.env, REDIS_URL: `redis://:${SECRET}@127.0.0.1:1` } });
    expectFailure(r, 3, /^✗ cannot connect to Redis at 127\.0\.0\.1:1: connection refused \(ECONNREFUSED\)$/m);
    expect(await controlState(f.control)).toEqual({ schema: false, rollouts: 0, tenants: 0 });
  });

  it('CONTROL_DATABASE_URL unreachable: exit 3 naming host:port, nothing in Redis', async () => {
    const f = await miniFleet();
    const path = tenantsFile([{ id: 'acme', url: `postgres://app:${SECRET}@127.0.0.1:5432/acme` }]);
    const r = await runCli(['rollout', '--dir', dir(OK), '--tenants', path, '--all'], {
      env: { ...f.env, CONTROL_DATABASE_URL: `postgres://flotilla:${SECRET}@127.0.0.1:1/control` },
    });
    expectFailure(r, 3, /^✗ cannot connect to PostgreSQL at 127\.0\.0\.1:1\/control: connection refused \(ECONNREFUSED\)$/m);
    expect(await redisKeys(f.prefix)).toEqual([]);
  });
});
