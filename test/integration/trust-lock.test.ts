/**
 * Issue 9, section 5: the migration lock cannot be lost. A migration's own SQL
 * (pg_advisory_unlock_all(), DISCARD ALL, RESET ALL, SET ROLE, SET SESSION
 * AUTHORIZATION, terminating backends) runs while a second runner is trying to
 * get in: the second waits, then finds nothing pending; every file is applied
 * once. Engine in-process here; the CLI at the end of the file.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { isLockLostError, tryAcquire, tryLock, unlock, type LockConnection, type LockSessions } from '../../src/adapters/pg/lock.js';
import { LockLostError, LockTimeoutError } from '../../src/core/errors.js';
import { buildMigrationSet } from '../../src/core/migration-set.js';
import { Migrator, type EngineEvent, type MigrateReport } from '../../src/migrator.js';
import { adminQuery, createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';
import { runCli, startCli } from '../helpers/cli.js';
import { migrationDir } from '../helpers/migrations.js';

const clients: pg.Client[] = [];
const roles: { role: string; db: TestDatabase }[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  while (clients.length)
    await clients
      .pop()!
      .end()
      .catch(() => {});
  while (cleanups.length) cleanups.pop()!();
});
afterAll(async () => {
  // the roles own objects only in these databases: drop them first
  await dropAllTestDatabases();
  for (const { role } of roles) await adminQuery(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
});

async function until(cond: () => Promise<boolean>, timeoutMs = 45_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The built CLI with its output readable while it runs. */
const spawnCli = (args: string[]) => {
  const c = startCli(args);
  return { output: c.stdout, done: c.done };
};

async function client(db: TestDatabase): Promise<pg.Client> {
  const c = await db.client();
  clients.push(c);
  return c;
}

const set = (files: Record<string, string>) => buildMigrationSet(Object.entries(files).map(([name, sql]) => ({ name, sql })));

/** A role the migration switches to, allowed to create tables and write the tracking table. */
async function switchableRole(db: TestDatabase): Promise<string> {
  const role = `flotilla_lock_${randomBytes(4).toString('hex')}`;
  await adminQuery(`CREATE ROLE ${role} NOLOGIN`);
  roles.push({ role, db });
  await db.query(`GRANT CREATE, USAGE ON SCHEMA public TO ${role}; GRANT pg_read_all_data, pg_write_all_data TO ${role}`);
  return role;
}

async function ledger(db: TestDatabase): Promise<string[]> {
  return (await db.query<{ name: string }>('SELECT name FROM migrations ORDER BY name')).rows.map((r) => r.name);
}

async function tables(db: TestDatabase): Promise<string[]> {
  return (
    await db.query<{ t: string }>(
      `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' AND table_name NOT IN ('migrations', 'gate') ORDER BY 1`,
    )
  ).rows.map((r) => r.t);
}

async function gateWaiters(db: TestDatabase): Promise<number> {
  const r = await db.query(
    `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%LOCK TABLE public.gate%'`,
  );
  return Number(r.rows[0].n);
}

/**
 * Runner A applies `files`, one of which waits at a gate the test holds (GATE);
 * runner B starts once A is there. The gate opens when B waits for the lock
 * (or, when the lock was lost, got in and is at the gate too, or is done).
 */
async function race(db: TestDatabase, files: Record<string, string>) {
  const s = await set(files);
  await db.query('CREATE TABLE IF NOT EXISTS public.gate (id int)');
  const gate = await client(db);
  await gate.query('BEGIN; LOCK TABLE public.gate IN ACCESS EXCLUSIVE MODE');
  const [a, b] = [await client(db), await client(db)];
  const aEvents: EngineEvent[] = [];
  const bEvents: EngineEvent[] = [];
  const settings = { lockWaitTimeoutMs: 60_000, lockTimeoutMs: 60_000 };
  let aDone = false;
  const runA = new Migrator(a, { ...settings, appliedBy: 'runner-a' }, (e) => aEvents.push(e)).migrate(s).finally(() => (aDone = true));
  await until(async () => aDone || (await gateWaiters(db)) === 1);
  let bDone = false;
  const runB = new Migrator(b, { ...settings, appliedBy: 'runner-b' }, (e) => bEvents.push(e)).migrate(s).finally(() => (bDone = true));
  await until(async () => bDone || bEvents.some((e) => e.type === 'lock-wait') || (await gateWaiters(db)) === 2);
  await gate.query('COMMIT');
  const [ra, rb] = await Promise.all([runA, runB]);
  return { a: ra, b: rb, aEvents, bEvents };
}

function expectWaitedThenNothing(b: MigrateReport, bEvents: EngineEvent[]): void {
  expect(b.failed).toBeUndefined();
  expect(b.applied).toEqual([]);
  expect(b.pending).toEqual([]);
  expect(bEvents.map((e) => e.type)).toEqual(['lock-wait', 'lock-acquired', 'found-pending']);
  expect(bEvents[2]).toMatchObject({ names: [] });
}

// the file's statements after the hostile one wait at the gate the test holds, while a second runner tries to get in
const GATE = 'LOCK TABLE public.gate IN SHARE MODE;\n';

describe('migration SQL cannot release or hide the lock from a second runner', () => {
  it('SELECT pg_advisory_unlock_all() in a migration: the second runner waits, then finds nothing pending', async () => {
    const db = await createTestDatabase('lock');
    const files = {
      '001_a.sql': 'CREATE TABLE a (id int);',
      '002_unlock.sql': `SELECT pg_advisory_unlock_all();\n${GATE}CREATE TABLE b (id int);`,
      '003_c.sql': 'CREATE TABLE c (id int);',
    };
    const { a, b, bEvents } = await race(db, files);
    expect(a.failed).toBeUndefined();
    expect(a.applied.map((x) => x.name)).toEqual(Object.keys(files));
    expectWaitedThenNothing(b, bEvents);
    expect(await ledger(db)).toEqual(Object.keys(files));
    expect(await tables(db)).toEqual(['a', 'b', 'c']);
  });

  it('DISCARD ALL as a non-transactional file: the second runner waits, then finds nothing pending', async () => {
    const db = await createTestDatabase('lock');
    const files = {
      '001_a.sql': 'CREATE TABLE a (id int);',
      '002_discard.sql': 'DISCARD ALL;',
      '003_slow.sql': `${GATE}CREATE TABLE c (id int);`,
    };
    const { a, b, bEvents } = await race(db, files);
    expect(a.failed).toBeUndefined();
    expect(a.applied.map((x) => x.name)).toEqual(Object.keys(files));
    expectWaitedThenNothing(b, bEvents);
    expect(await ledger(db)).toEqual(Object.keys(files));
  });

  it('RESET ALL in a migration: the second runner waits, then finds nothing pending', async () => {
    const db = await createTestDatabase('lock');
    const files = {
      '001_reset.sql': `RESET ALL;\n${GATE}CREATE TABLE a (id int);`,
      '002_b.sql': 'CREATE TABLE b (id int);',
    };
    const { a, b, bEvents } = await race(db, files);
    expect(a.failed).toBeUndefined();
    expectWaitedThenNothing(b, bEvents);
    expect(await ledger(db)).toEqual(Object.keys(files));
  });

  it('SET ROLE (kept after the file commits) with pg_advisory_unlock_all(): the lock check still works, each file once', async () => {
    const db = await createTestDatabase('lock');
    const role = await switchableRole(db);
    await new Migrator(await client(db)).migrate(await set({ '001_a.sql': 'CREATE TABLE a (id int);' }));
    const files = {
      '001_a.sql': 'CREATE TABLE a (id int);',
      '002_role.sql': `SET ROLE ${role};\nSELECT pg_advisory_unlock_all();\n${GATE}CREATE TABLE b (id int);`,
      '003_c.sql': 'CREATE TABLE c (id int);',
    };
    const { a, b, bEvents } = await race(db, files);
    expect(a.failed).toBeUndefined();
    expect(a.applied.map((x) => x.name)).toEqual(['002_role.sql', '003_c.sql']);
    expectWaitedThenNothing(b, bEvents);
    expect(await ledger(db)).toEqual(Object.keys(files));
    // the file's role stayed for the next file, as in psql: c belongs to it
    const owner = await db.query(`SELECT tableowner FROM pg_tables WHERE tablename = 'c'`);
    expect(owner.rows[0].tableowner).toBe(role);
  });

  it('SET SESSION AUTHORIZATION in a migration: the second runner waits, then finds nothing pending', async () => {
    const db = await createTestDatabase('lock');
    const role = await switchableRole(db);
    await new Migrator(await client(db)).migrate(await set({ '001_a.sql': 'CREATE TABLE a (id int);' }));
    const files = {
      '001_a.sql': 'CREATE TABLE a (id int);',
      '002_auth.sql': `SET SESSION AUTHORIZATION ${role};\nSELECT pg_advisory_unlock_all();\n${GATE}CREATE TABLE b (id int);`,
      '003_c.sql': 'CREATE TABLE c (id int);',
    };
    const { a, b, bEvents } = await race(db, files);
    expect(a.failed).toBeUndefined();
    expectWaitedThenNothing(b, bEvents);
    expect(await ledger(db)).toEqual(Object.keys(files));
  });
});

/** Terminates every Flotilla lock holder of this database but itself, and waits until they are gone. */
const TERMINATE = `SELECT pg_terminate_backend(pid, 5000) FROM pg_locks
  WHERE locktype = 'advisory' AND classid = 1179405140 AND pid <> pg_backend_pid()
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database());\n`;

describe('a lock session that is gone', () => {
  it('a transactional file that terminates the lock session: rolled back, lock_lost (transient), nothing applied', async () => {
    const db = await createTestDatabase('lock');
    const s = await set({
      '001_a.sql': 'CREATE TABLE a (id int);',
      '002_kill.sql': `${TERMINATE}CREATE TABLE b (id int);`,
      '003_c.sql': 'CREATE TABLE c (id int);',
    });
    const r = await new Migrator(await client(db)).migrate(s);
    expect(r.applied.map((x) => x.name)).toEqual(['001_a.sql']);
    expect(r.failed?.name).toBe('002_kill.sql');
    const e = r.failed!.error as LockLostError;
    expect(e).toBeInstanceOf(LockLostError);
    expect(e.kind).toBe('transient');
    expect(e.message).toContain('rolled back');
    expect(await ledger(db)).toEqual(['001_a.sql']);
    expect(await tables(db)).toEqual(['a']);
  });

  it('with a second runner waiting: neither commits the file, both report lock_lost; the others apply once', async () => {
    const db = await createTestDatabase('lock');
    const files = { '001_a.sql': 'CREATE TABLE a (id int);', '002_kill.sql': `${TERMINATE}${GATE}CREATE TABLE b (id int);` };
    const { a, b } = await race(db, files);
    for (const r of [a, b]) {
      expect(r.failed?.name).toBe('002_kill.sql');
      expect(r.failed?.error).toBeInstanceOf(LockLostError);
    }
    expect(await ledger(db)).toEqual(['001_a.sql']);
    expect(await tables(db)).toEqual(['a']);
  });

  it('a non-transactional file whose lock session dies during a statement: the next statement never starts, the file is not recorded', async () => {
    const db = await createTestDatabase('lock');
    const c = await client(db);
    await new Migrator(c).migrate(await set({ '001_t.sql': 'CREATE TABLE t (id int);' }));
    const s = await set({
      '001_t.sql': 'CREATE TABLE t (id int);',
      '002_idx.sql': 'CREATE INDEX CONCURRENTLY t_i1 ON t (id);\nCREATE INDEX CONCURRENTLY t_i2 ON t (id);',
    });
    // an open writer makes the first CREATE INDEX CONCURRENTLY wait
    const writer = await client(db);
    await writer.query('BEGIN; INSERT INTO t VALUES (1)');
    const run = new Migrator(c).migrate(s);
    for (let i = 0; i < 400; i++) {
      const r = await db.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'CREATE INDEX CONCURRENTLY t_i1%' AND wait_event_type = 'Lock'`,
      );
      if (r.rowCount) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const killed = await db.query(TERMINATE);
    expect(killed.rowCount).toBe(1);
    await writer.query('COMMIT');
    const r = await run;
    expect(r.failed?.name).toBe('002_idx.sql');
    const e = r.failed!.error as LockLostError;
    expect(e).toBeInstanceOf(LockLostError);
    expect(e.transactional).toBe(false);
    expect(e.message).toContain('stay applied');
    expect(await ledger(db)).toEqual(['001_t.sql']);
    const idx = await db.query(`SELECT indexname FROM pg_indexes WHERE tablename = 't' ORDER BY 1`);
    expect(idx.rows.map((x) => x.indexname)).toEqual(['t_i1']);
  });
});

describe('the check that goes with each COMMIT', () => {
  it('a lock session whose client cannot report its end: the check in the COMMIT round trip still catches it', async () => {
    const db = await createTestDatabase('lock');
    // a port handing out plain query objects: the engine cannot see the connection end, only the server can tell
    const opened: pg.Client[] = [];
    const lockSessions: LockSessions = {
      target: 'test',
      async open() {
        const c = await client(db);
        opened.push(c);
        return {
          processID: (c as unknown as { processID: number }).processID,
          query: (text: string, values?: unknown[]) => c.query(text, values),
        } as LockConnection;
      },
      release: async () => {},
    };
    const s = await set({ '001_a.sql': 'CREATE TABLE a (id int);', '002_kill.sql': `${TERMINATE}CREATE TABLE b (id int);` });
    const r = await new Migrator(await client(db), {}, undefined, { lockSessions }).migrate(s);
    expect(opened).toHaveLength(1);
    expect(r.failed?.name).toBe('002_kill.sql');
    expect(r.failed?.error).toBeInstanceOf(LockLostError);
    expect(await ledger(db)).toEqual(['001_a.sql']);
    expect(await tables(db)).toEqual(['a']);
  });

  it('checkSql passes while the lock session holds the lock, fails once it let go, whatever the checking session did to itself', async () => {
    const db = await createTestDatabase('lock');
    const role = await switchableRole(db);
    const lockConn = await client(db);
    const held = (await tryAcquire(lockConn, { schema: 'public', table: 'migrations' }))!;
    expect(held).toBeDefined();
    const m = await client(db);
    // look-alikes the check must not use: a temp pg_locks that always has the row, another search_path, another role
    await m.query(`CREATE TEMP VIEW pg_locks AS
      SELECT locktype, database, classid, objid, objsubid, pid, granted FROM pg_catalog.pg_locks
      UNION ALL SELECT 'advisory', (SELECT oid FROM pg_database WHERE datname = current_database()), '1179405140'::oid,
        ((hashtext(current_database() || '/public/migrations'))::bigint & 4294967295)::oid, 2::int2, ${held.pid}, true`);
    // pg_temp unlisted: searched before pg_catalog for relations, so an unqualified pg_locks would be the fake
    await m.query(`SET search_path = public; SET ROLE ${role}`);
    await expect(m.query(held.checkSql)).resolves.toBeDefined();
    expect(await held.release()).toBe(true);
    const e = await m.query(held.checkSql).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isLockLostError(e)).toBe(true);
  });
});

describe('the lock key', () => {
  it('is the documented one: a runner holding it the old way (a session lock) keeps the engine out, whatever the schema name', async () => {
    const db = await createTestDatabase('lock');
    for (const schema of ['public', "it's", 'back\\slash']) {
      const old = await client(db);
      expect(await tryLock(old, { schema, table: 'migrations' })).toBe(true);
      const e = await new Migrator(await client(db), { schema, lockWaitTimeoutMs: 0 }).migrate(await set({ '001_a.sql': 'CREATE TABLE a (id int);' })).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e, schema).toBeInstanceOf(LockTimeoutError);
      await unlock(old, { schema, table: 'migrations' });
    }
  });
});

describe('server timeouts', () => {
  it('idle_in_transaction_session_timeout shorter than a file: the idle lock session is not ended by it', async () => {
    const db = await createTestDatabase('lock');
    await db.query(`ALTER DATABASE ${db.name} SET idle_in_transaction_session_timeout = '1s'`);
    const r = await new Migrator(await client(db)).migrate(await set({ '001_slow.sql': 'SELECT pg_sleep(2.5);\nCREATE TABLE a (id int);' }));
    expect(r.failed).toBeUndefined();
    expect(await ledger(db)).toEqual(['001_slow.sql']);
  });
});

describe('the CLI', () => {
  const hostile: [string, (role: string) => Record<string, string>][] = [
    ['SELECT pg_advisory_unlock_all()', () => ({ '002_x.sql': `SELECT pg_advisory_unlock_all();\n${GATE}CREATE TABLE b (id int);` })],
    ['DISCARD ALL (a file of its own)', () => ({ '002_x.sql': 'DISCARD ALL;', '003_y.sql': `${GATE}CREATE TABLE b (id int);` })],
    ['RESET ALL', () => ({ '002_x.sql': `RESET ALL;\n${GATE}CREATE TABLE b (id int);` })],
    ['SET ROLE', (role) => ({ '002_x.sql': `SET ROLE ${role};\nSELECT pg_advisory_unlock_all();\n${GATE}CREATE TABLE b (id int);` })],
    [
      'SET SESSION AUTHORIZATION',
      (role) => ({ '002_x.sql': `SET SESSION AUTHORIZATION ${role};\nSELECT pg_advisory_unlock_all();\n${GATE}CREATE TABLE b (id int);` }),
    ],
  ];
  it.each(hostile)('two `flotilla pending` at once, the file runs %s: the second waits and finds nothing; each file once', async (_, more) => {
    const db = await createTestDatabase('lock');
    await db.query('CREATE TABLE public.gate (id int)');
    const files = { '001_a.sql': 'CREATE TABLE a (id int);', ...more(await switchableRole(db)) };
    const dir = migrationDir(files);
    cleanups.push(dir.cleanup);
    const gate = await client(db);
    await gate.query('BEGIN; LOCK TABLE public.gate IN ACCESS EXCLUSIVE MODE');
    const args = ['pending', '--dir', dir.dir, '--database-url', db.url, '--lock-timeout', '60s'];
    const first = runCli(args);
    await until(async () => (await gateWaiters(db)) === 1);
    const second = spawnCli(args);
    // the second is waiting for the migration lock (or, when the lock was lost, blocked at the gate too)
    await until(async () => second.output().includes('Waiting for the migration lock') || (await gateWaiters(db)) === 2);
    await gate.query('COMMIT');
    const [one, two] = [await first, await second.done];
    expect(one.code, one.stdout + one.stderr).toBe(0);
    expect(two.code, two.stdout + two.stderr).toBe(0);
    expect(one.stdout).toContain(`Completed: ${Object.keys(files).length} applied, 0 failed`);
    expect(two.stdout).toContain('Waiting for the migration lock');
    expect(two.stdout).toContain('Found 0 pending migrations');
    expect(await ledger(db)).toEqual(Object.keys(files));
  });

  it('a file that terminates the lock session: exit 3, the message says the lock was lost and the file rolled back', async () => {
    const db = await createTestDatabase('lock');
    const dir = migrationDir({ '001_kill.sql': `${TERMINATE}CREATE TABLE b (id int);` });
    cleanups.push(dir.cleanup);
    const r = await runCli(['pending', '--dir', dir.dir, '--database-url', db.url]);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(r.stdout).toContain('lost the migration lock');
    expect(r.stdout).toContain('rolled back');
    expect(await tables(db)).toEqual([]);
  });
});
