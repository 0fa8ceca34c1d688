/**
 * Issue 9, section 5: a real PgBouncer in front of the test server. In
 * transaction pooling a session lock is taken on one server connection and
 * released on another, so Flotilla refuses such a URL (exit 2, naming the
 * host, asking for a direct URL) and changes nothing; a session-mode pool is
 * a real session and works.
 *
 * Needs the pgbouncer binary (Debian: `apt-get install -y pgbouncer`). Skipped
 * when it is missing, except under CI=true, where its absence fails the file.
 * PgBouncer refuses to run as root: as root it runs as the postgres user (or
 * nobody).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectLockSessions } from '../../src/adapters/pg/lock.js';
import { SessionPoolerError } from '../../src/core/errors.js';
import { buildMigrationSet } from '../../src/core/migration-set.js';
import { Migrator } from '../../src/migrator.js';
import { adminUrl, createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';
import { runCli } from '../helpers/cli.js';
import { migrationDir } from '../helpers/migrations.js';
import { rejection } from '../helpers/assert.js';
import { Fleet, trackingRows, why } from '../helpers/fleet.js';

function findPgbouncer(): string | undefined {
  for (const p of ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer']) if (existsSync(p)) return p;
  const r = spawnSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

const BIN = findPgbouncer();
const CI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';

if (!BIN && CI) {
  describe('PgBouncer', () => {
    it('is installed (CI must have it: apt-get install -y pgbouncer)', () => {
      expect(BIN, 'pgbouncer binary not found').toBeDefined();
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A PgBouncer on a free port: `*` in transaction pooling, plus aliases for one database. */
async function startPgbouncer(db: TestDatabase): Promise<{ port: number; stop(): Promise<void>; log(): string }> {
  const server = new URL(adminUrl());
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-pgbouncer-'));
  chmodSync(dir, 0o777);
  const port = await freePort();
  const backend = `host=${server.hostname} port=${server.port || 5432}`;
  writeFileSync(join(dir, 'userlist.txt'), `"${decodeURIComponent(server.username) || 'postgres'}" ""\n`);
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `${db.name}_session = ${backend} dbname=${db.name} pool_mode=session`,
      `${db.name}_one = ${backend} dbname=${db.name} pool_size=1`,
      `* = ${backend}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      'pool_mode = transaction',
      'default_pool_size = 4',
      'ignore_startup_parameters = extra_float_digits,options',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      '',
    ].join('\n'),
  );
  for (const f of ['userlist.txt', 'pgbouncer.ini']) chmodSync(join(dir, f), 0o644);
  const asRoot = process.getuid?.() === 0;
  const user = asRoot ? (spawnSync('id', ['-u', 'postgres']).status === 0 ? 'postgres' : 'nobody') : undefined;
  const child: ChildProcess = user
    ? spawn('runuser', ['-u', user, '--', BIN!, join(dir, 'pgbouncer.ini')], { stdio: 'ignore' })
    : spawn(BIN!, [join(dir, 'pgbouncer.ini')], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const log = () => (existsSync(join(dir, 'pgbouncer.log')) ? readFileSync(join(dir, 'pgbouncer.log'), 'utf8') : '');
  const deadline = Date.now() + 20_000;
  for (;;) {
    const c = new pg.Client({ host: '127.0.0.1', port, user: server.username || 'postgres', database: db.name });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      break;
    } catch (e) {
      await c.end().catch(() => {});
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`pgbouncer did not start: ${(e as Error).message}\n${log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    port,
    log,
    async stop() {
      // the pidfile names pgbouncer itself (runuser may not pass the signal on)
      const pidFile = join(dir, 'pgbouncer.pid');
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : undefined;
      if (pid) {
        try {
          process.kill(pid, 'SIGINT');
        } catch {}
      }
      child.kill('SIGINT');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const FILES = { '001_a.sql': 'CREATE TABLE a (id int);', '002_b.sql': 'CREATE TABLE b (id int);' };

describe.skipIf(!BIN)('PgBouncer in front of the tenant', () => {
  let db: TestDatabase;
  let bouncer: Awaited<ReturnType<typeof startPgbouncer>>;
  const through = (database: string) => {
    const u = new URL(adminUrl());
    u.hostname = '127.0.0.1';
    u.port = String(bouncer.port);
    u.pathname = `/${database}`;
    return u.toString();
  };

  beforeAll(async () => {
    db = await createTestDatabase('pgb');
    bouncer = await startPgbouncer(db);
  });
  afterAll(async () => {
    await bouncer?.stop();
    await dropAllTestDatabases();
  });

  async function engineThrough(database: string) {
    const url = through(database);
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => {});
    await c.connect();
    try {
      const set = await buildMigrationSet(Object.entries(FILES).map(([name, sql]) => ({ name, sql })));
      return await new Migrator(c, {}, undefined, { lockSessions: connectLockSessions(url) }).migrate(set);
    } finally {
      await c.end().catch(() => {});
    }
  }

  async function tables(): Promise<string[]> {
    return (await db.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)).rows.map(
      (r) => r.t,
    );
  }

  it('transaction pooling: the engine refuses (SessionPoolerError, exit-2 kind) before changing anything', async () => {
    for (const database of [db.name, `${db.name}_one`]) {
      const e = await rejection(engineThrough(database), SessionPoolerError);
      expect(e.kind).toBe('input');
      expect(e.message).toContain(`127.0.0.1:${bouncer.port}`);
      expect(e.hint).toContain('direct connection URL');
    }
    expect(await tables()).toEqual([]);
  });

  it('transaction pooling through the CLI: exit 2, the message names the host and asks for a direct URL; nothing applied', async () => {
    const dir = migrationDir(FILES);
    try {
      const r = await runCli(['pending', '--dir', dir.dir, '--database-url', through(db.name)]);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(r.stderr).toContain(`127.0.0.1:${bouncer.port}`);
      expect(r.stderr).toContain('connection pooler');
      expect(r.stderr).toContain('direct connection URL');
      expect(r.stderr).not.toContain('This is a bug');
      expect(await tables()).toEqual([]);
    } finally {
      dir.cleanup();
    }
  });

  it('a session-mode pool keeps the session: migrations apply', async () => {
    const r = await engineThrough(`${db.name}_session`);
    expect(r.failed).toBeUndefined();
    expect(r.applied.map((a) => a.name)).toEqual(Object.keys(FILES));
    expect(await tables()).toEqual(['a', 'b', 'migrations']);
  });
});

describe.skipIf(!BIN)('PgBouncer in front of a tenant of a rollout', () => {
  let fleet: Fleet;
  let bouncer: Awaited<ReturnType<typeof startPgbouncer>>;
  beforeAll(async () => {
    fleet = await Fleet.create();
    // `*` forwards any database name: the fleet's tenant databases are reachable through it
    bouncer = await startPgbouncer(fleet.control);
    await fleet.startWorker({ concurrency: 2 });
  }, 240_000);
  afterAll(async () => {
    await fleet?.cleanup();
    await bouncer?.stop();
  }, 120_000);

  it('the worker refuses the tenant at once (not retried), the error names the host and asks for a direct URL; the direct tenant migrates', async () => {
    const [pooled, direct] = await fleet.addTenants([{ id: 'pgb-pooled' }, { id: 'pgb-direct' }]);
    pooled!.urlTemplate = pooled!.urlTemplate.replace(/@[^/]+\//, `@127.0.0.1:${bouncer.port}/`);
    const dir = migrationDir(FILES);
    try {
      const r = await fleet.cliJson<{ state: string; tenants: { id: string; state: string; attempts: number; error: string | null }[] }>(
        ['rollout', '--dir', dir.dir, '--tenants', fleet.writeTenantsFile([pooled!, direct!]), '--all', '--max-failures', '10', '--wait'],
        { timeoutMs: 120_000 },
      );
      expect(r.code, why(r)).not.toBe(0);
      const t = new Map(r.json.tenants.map((x) => [x.id, x]));
      expect(t.get('pgb-pooled')).toMatchObject({ state: 'failed', attempts: 1 });
      expect(t.get('pgb-pooled')!.error).toContain(`127.0.0.1:${bouncer.port}`);
      expect(t.get('pgb-pooled')!.error).toContain('connection pooler');
      expect(t.get('pgb-direct')).toMatchObject({ state: 'succeeded' });
      expect(await trackingRows(pooled!)).toBeNull();
    } finally {
      dir.cleanup();
    }
  });
});
