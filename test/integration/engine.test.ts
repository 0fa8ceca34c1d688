/**
 * The engine in-process against a real PostgreSQL: a fresh database per test.
 */
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { readMigrationFiles } from '../../src/adapters/fs-source.js';
import { tryLock, unlock } from '../../src/adapters/pg/lock.js';
import { ChangedMigrationError, LockTimeoutError, MigrationFailedError, MixedTransactionModeError, ValidationFailedError } from '../../src/core/errors.js';
import { buildMigrationSet, type MigrationFile, type MigrationSet } from '../../src/core/migration-set.js';
import { Migrator, type EngineEvent, type EngineSettings } from '../../src/migrator.js';
import { MigrationValidator } from '../../src/validator.js';
import { createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';
import { GUIDE_MIGRATIONS as GUIDE_NAMES } from '../helpers/migrations.js';
import { rejection } from '../helpers/assert.js';

const REPO_MIGRATIONS = fileURLToPath(new URL('../../migrations/', import.meta.url));

let guideFiles: MigrationFile[] | undefined;
async function guide(extra: MigrationFile[] = []): Promise<MigrationSet> {
  guideFiles ??= await readMigrationFiles(REPO_MIGRATIONS);
  return buildMigrationSet([...guideFiles, ...extra]);
}

const set = (files: Record<string, string>) => buildMigrationSet(Object.entries(files).map(([name, sql]) => ({ name, sql })));

const openClients: pg.Client[] = [];
const usedDatabases: TestDatabase[] = [];
const drops: Promise<void>[] = [];
afterEach(async () => {
  while (openClients.length)
    await openClients
      .pop()!
      .end()
      .catch(() => {});
  // dropped while the next test runs
  while (usedDatabases.length)
    drops.push(
      usedDatabases
        .pop()!
        .drop()
        .catch(() => {}),
    );
});
afterAll(async () => {
  await Promise.all(drops);
  await dropAllTestDatabases();
});

async function fresh(prefix = 'eng'): Promise<{ db: TestDatabase; client: pg.Client }> {
  const db = await createTestDatabase(prefix);
  usedDatabases.push(db);
  return { db, client: await clientOf(db) };
}

async function clientOf(db: TestDatabase): Promise<pg.Client> {
  const c = await db.client();
  openClients.push(c);
  return c;
}

function migrator(client: pg.Client, settings: Partial<EngineSettings> = {}, events: EngineEvent[] = []): Migrator {
  return new Migrator(client, { appliedBy: 'engine-test', lockWaitTimeoutMs: 30_000, ...settings }, (e) => events.push(e));
}

async function tables(db: TestDatabase, schema = 'public'): Promise<string[]> {
  const r = await db.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`, [schema]);
  return r.rows.map((x) => x.t);
}

async function ledger(
  db: TestDatabase,
  table = 'public.migrations',
): Promise<{ name: string; checksum: string | null; duration_ms: number | null; applied_by: string | null; applied_at: Date | null }[]> {
  return (await db.query(`SELECT name, checksum, duration_ms, applied_by, applied_at FROM ${table} ORDER BY name`)).rows;
}

describe("applying the guide's migrations", () => {
  it('applies all 8, records checksum, duration and who; a second run is a no-op', async () => {
    const { db, client } = await fresh();
    const s = await guide();
    const events: EngineEvent[] = [];
    const report = await migrator(client, {}, events).migrate(s);
    expect(report.failed).toBeUndefined();
    expect(report.applied.map((a) => a.name)).toEqual(GUIDE_NAMES);
    expect(report.pending).toEqual(GUIDE_NAMES);
    expect(report.schema).toBe('public');
    expect(report.applied.every((a) => Number.isInteger(a.durationMs) && a.durationMs >= 0)).toBe(true);
    expect(events[0]).toEqual({ type: 'found-pending', names: GUIDE_NAMES });
    expect(events.filter((e) => e.type === 'migration-done')).toHaveLength(8);

    expect(await tables(db)).toEqual(['audit_log', 'contracts', 'invoices', 'migrations', 'products', 'roles', 'user_roles', 'users']);
    const trigger = await db.query(`SELECT 1 FROM pg_trigger WHERE tgname = 'trigger_invoices_updated_at'`);
    expect(trigger.rowCount).toBe(1);
    const enumValues = await db.query(`SELECT unnest(enum_range(NULL::notification_preference))::text AS v`);
    expect(enumValues.rows.map((r) => r.v)).toEqual(['email', 'sms', 'push', 'none']);

    const rows = await ledger(db);
    expect(rows.map((r) => r.name)).toEqual(GUIDE_NAMES);
    for (const [i, r] of rows.entries()) {
      expect(r.checksum).toMatch(/^[0-9a-f]{64}$/);
      expect(r.checksum).toBe(s.migrations[i]!.checksum);
      expect(Number.isInteger(r.duration_ms)).toBe(true);
      expect(r.duration_ms).toBeGreaterThanOrEqual(0);
      expect(r.applied_by).toBe('engine-test');
      expect(r.applied_at).toBeInstanceOf(Date);
    }

    const again: EngineEvent[] = [];
    const second = await migrator(client, {}, again).migrate(s);
    expect(second.applied).toEqual([]);
    expect(second.failed).toBeUndefined();
    expect(again).toEqual([{ type: 'found-pending', names: [] }]);
    expect(await ledger(db)).toHaveLength(8);

    const status = await migrator(client).status(s);
    expect(status.applied.map((r) => r.name)).toEqual(GUIDE_NAMES);
    expect(status.pending).toEqual([]);
    expect(status.changed).toEqual([]);
    expect(status.missing).toEqual([]);
  });

  it('status reads only: it creates no tracking table', async () => {
    const { db, client } = await fresh();
    const status = await migrator(client).status(await guide());
    expect(status.pending).toEqual(GUIDE_NAMES);
    expect(status.applied).toEqual([]);
    expect(await tables(db)).toEqual([]);
  });

  it('`only` applies that one migration; asking again says already applied', async () => {
    const { db, client } = await fresh();
    const s = await guide();
    const r = await migrator(client).migrate(s, { only: '001_create_users_table.sql' });
    expect(r.applied.map((a) => a.name)).toEqual(['001_create_users_table.sql']);
    const events: EngineEvent[] = [];
    const again = await migrator(client, {}, events).migrate(s, { only: '001_create_users_table.sql' });
    expect(again.applied).toEqual([]);
    expect(again.alreadyApplied).toEqual(['001_create_users_table.sql']);
    expect(events).toContainEqual({ type: 'already-applied', name: '001_create_users_table.sql' });
    expect((await ledger(db)).map((x) => x.name)).toEqual(['001_create_users_table.sql']);
  });
});

describe('atomic files', () => {
  it('a failing 3rd statement leaves no trace of statements 1-2, no tracking row, and stops the run', async () => {
    const { db, client } = await fresh();
    const s = await set({
      '001_ok.sql': 'CREATE TABLE ok (id int);',
      '002_breaks.sql':
        '-- Migration: three statements\nCREATE TABLE partial (id int);\nINSERT INTO partial VALUES (1);\n\nINSERT INTO no_such_table SELECT * FROM partial;\n',
      '003_after.sql': 'CREATE TABLE after_failure (id int);',
    });
    const events: EngineEvent[] = [];
    const report = await migrator(client, {}, events).migrate(s);
    expect(report.applied.map((a) => a.name)).toEqual(['001_ok.sql']);
    expect(report.failed?.name).toBe('002_breaks.sql');
    const e = report.failed!.error as MigrationFailedError;
    expect(e).toBeInstanceOf(MigrationFailedError);
    expect(e.migration).toBe('002_breaks.sql');
    expect(e.statement).toMatchObject({ index: 2, line: 5 });
    expect(e.statement!.text).toBe('INSERT INTO no_such_table SELECT * FROM partial');
    expect(e.pg.code).toBe('42P01');
    expect(e.pg.message).toBe('relation "no_such_table" does not exist');
    expect(e.kind).toBe('migration');
    expect(e.transactional).toBe(true);
    expect(e.message).toBe('002_breaks.sql failed at statement 3 (line 5): ERROR 42P01: relation "no_such_table" does not exist');
    expect(e.hint).toContain('rolled back');
    expect(events.map((x) => x.type)).toEqual(['found-pending', 'migration-start', 'migration-done', 'migration-start', 'migration-failed']);

    expect(await tables(db)).toEqual(['migrations', 'ok']);
    expect((await ledger(db)).map((r) => r.name)).toEqual(['001_ok.sql']);

    // fixed, it runs, and so does the rest
    const fixed = await set({
      '001_ok.sql': 'CREATE TABLE ok (id int);',
      '002_breaks.sql': 'CREATE TABLE partial (id int);\nINSERT INTO partial VALUES (1);\n',
      '003_after.sql': 'CREATE TABLE after_failure (id int);',
    });
    const rerun = await migrator(client).migrate(fixed);
    expect(rerun.applied.map((a) => a.name)).toEqual(['002_breaks.sql', '003_after.sql']);
  });

  it("the guide's BEGIN/COMMIT never reach the server: a failure after a COMMIT still rolls back the whole file", async () => {
    const { db, client } = await fresh();
    const s = await set({
      '001_two_blocks.sql': 'BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\nBEGIN;\nCREATE TABLE b (id int);\nSELECT 1/0;\nCOMMIT;\n',
    });
    const report = await migrator(client).migrate(s);
    const e = report.failed!.error as MigrationFailedError;
    expect(e).toBeInstanceOf(MigrationFailedError);
    expect(e.pg.code).toBe('22012');
    expect(e.statement?.line).toBe(6);
    expect(await tables(db)).toEqual(['migrations']);
    expect(await ledger(db)).toEqual([]);
    // and the session is usable, not left in an aborted transaction
    expect((await client.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  });
});

describe('validation', () => {
  const USERS = 'CREATE TABLE users (id SERIAL PRIMARY KEY, email text NOT NULL UNIQUE);';
  const DELETE = 'DELETE FROM users WHERE id <= 5;';

  it("a row count change fails with the guide's message and is rolled back; the header allows it", async () => {
    const { db, client } = await fresh();
    expect((await migrator(client).migrate(await set({ '001_users.sql': USERS }))).failed).toBeUndefined();
    await db.query(`INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 100) g`);

    const report = await migrator(client).migrate(await set({ '001_users.sql': USERS, '002_trim_users.sql': `-- Migration: trim\n${DELETE}\n` }));
    expect(report.applied).toEqual([]);
    const e = report.failed!.error as ValidationFailedError;
    expect(e).toBeInstanceOf(ValidationFailedError);
    expect(e.issues).toEqual(['Table users: row count changed from 100 to 95']);
    expect(e.migration).toBe('002_trim_users.sql');
    expect(e.kind).toBe('migration');
    expect((await db.query('SELECT count(*)::int AS n FROM users')).rows[0].n).toBe(100);
    expect((await ledger(db)).map((r) => r.name)).toEqual(['001_users.sql']);

    const allowed = await migrator(client).migrate(
      await set({ '001_users.sql': USERS, '002_trim_users.sql': `-- Migration: trim\n-- flotilla:validate allowRowChanges=true\n${DELETE}\n` }),
    );
    expect(allowed.failed).toBeUndefined();
    expect(allowed.applied.map((a) => a.name)).toEqual(['002_trim_users.sql']);
    expect((await db.query('SELECT count(*)::int AS n FROM users')).rows[0].n).toBe(95);
  });

  it('settings can allow it for every file, and `off` skips validation for one file', async () => {
    const { db, client } = await fresh();
    await migrator(client).migrate(await set({ '001_users.sql': USERS }));
    await db.query(`INSERT INTO users (email) SELECT 'u' || g FROM generate_series(1, 10) g`);
    const r1 = await migrator(client, { validation: { allowRowChanges: true } }).migrate(await set({ '001_users.sql': USERS, '002_del.sql': DELETE }));
    expect(r1.failed).toBeUndefined();
    const r2 = await migrator(client).migrate(
      await set({ '001_users.sql': USERS, '002_del.sql': DELETE, '003_drop.sql': '-- flotilla:validate off\nALTER TABLE users DROP COLUMN email;' }),
    );
    expect(r2.failed).toBeUndefined();
    const r3 = await migrator(client).migrate(
      await set({
        '001_users.sql': USERS,
        '002_del.sql': DELETE,
        '003_drop.sql': '-- flotilla:validate off\nALTER TABLE users DROP COLUMN email;',
        '004_drop_table.sql': 'DROP TABLE users;',
      }),
    );
    expect((r3.failed!.error as ValidationFailedError).issues).toEqual(['Table users: dropped']);
    expect(await tables(db)).toContain('users');
  });

  it('the tracking table itself is not validated (its row count changes with every migration)', async () => {
    const { client } = await fresh();
    const s = await set({ '001_a.sql': 'CREATE TABLE a (id int);', '002_b.sql': 'CREATE TABLE b (id int);', '003_c.sql': 'CREATE TABLE c (id int);' });
    await migrator(client).migrate(await set({ '001_a.sql': 'CREATE TABLE a (id int);' }));
    expect((await migrator(client).migrate(s)).failed).toBeUndefined();
  });
});

describe('files changed or gone', () => {
  it('an edited applied file is refused, naming it, and nothing after it is applied', async () => {
    const { db, client } = await fresh();
    const v1 = { '001_a.sql': '-- table a\nCREATE TABLE a (id int);\n', '002_b.sql': 'CREATE TABLE b (id int);\n' };
    await migrator(client).migrate(await set(v1));
    const edited = await set({ ...v1, '001_a.sql': 'CREATE TABLE a (id bigint);', '003_c.sql': 'CREATE TABLE c (id int);' });
    const e = await rejection(migrator(client).migrate(edited), ChangedMigrationError);
    expect(e.migrations.map((m) => m.name)).toEqual(['001_a.sql']);
    expect(e.message).toContain('001_a.sql');
    expect(e.kind).toBe('input');
    expect(await tables(db)).not.toContain('c');
    expect((await ledger(db)).map((r) => r.name)).toEqual(['001_a.sql', '002_b.sql']);
    const status = await migrator(client).status(edited);
    expect(status.changed).toEqual([{ name: '001_a.sql', applied: expect.stringMatching(/^[0-9a-f]{64}$/), current: edited.migrations[0]!.checksum }]);
    expect(status.pending).toEqual(['003_c.sql']);
    // a CRLF checkout of the same file is not an edit
    const crlf = await set(Object.fromEntries(Object.entries(v1).map(([n, sql]) => [n, sql.replace(/\n/g, '\r\n')])));
    expect((await migrator(client).status(crlf)).changed).toEqual([]);
  });

  it('an applied migration without a file is reported as missing, with a warning', async () => {
    const { client } = await fresh();
    await migrator(client).migrate(await set({ '001_a.sql': 'CREATE TABLE a (id int);', '002_b.sql': 'CREATE TABLE b (id int);' }));
    const s = await set({ '001_a.sql': 'CREATE TABLE a (id int);' });
    const status = await migrator(client).status(s);
    expect(status.missing.map((m) => m.name)).toEqual(['002_b.sql']);
    expect(status.missing[0]!.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(status.applied.map((r) => r.name)).toEqual(['001_a.sql']);
    const events: EngineEvent[] = [];
    const r = await migrator(client, {}, events).migrate(s);
    expect(r.warnings).toEqual(['applied migration 002_b.sql has no file any more']);
    expect(events).toContainEqual({ type: 'warning', message: 'applied migration 002_b.sql has no file any more' });
  });

  it('a mixed file refuses the whole set when it is loaded, so nothing runs', async () => {
    const { db } = await fresh();
    await rejection(
      set({
        '001_ok.sql': 'CREATE TABLE t (c int);',
        '002_mixed.sql': 'BEGIN;\nALTER TABLE t ADD COLUMN d int;\nCREATE INDEX CONCURRENTLY idx_t_d ON t (d);\nCOMMIT;\n',
      }),
      MixedTransactionModeError,
    );
    expect(await tables(db)).toEqual([]);
  });
});

describe('outside a transaction', () => {
  const TABLE = 'CREATE TABLE t (id int PRIMARY KEY, a int); INSERT INTO t SELECT g, g % 10 FROM generate_series(1, 100) g;';

  it('a CREATE INDEX CONCURRENTLY file applies, the index is valid and recorded', async () => {
    const { db, client } = await fresh();
    const events: EngineEvent[] = [];
    const s = await set({
      '001_t.sql': TABLE,
      '002_idx.sql':
        '-- Migration: index without blocking writes\nCREATE INDEX CONCURRENTLY idx_t_a ON t (a);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS idx_t_id_a ON t (id, a);\n',
    });
    expect(s.migrations[1]!.transactional).toBe(false);
    const r = await migrator(client, {}, events).migrate(s);
    expect(r.failed).toBeUndefined();
    expect(r.applied.map((a) => a.name)).toEqual(['001_t.sql', '002_idx.sql']);
    expect(events).toContainEqual({ type: 'migration-start', name: '002_idx.sql', transactional: false });
    const idx = await db.query(
      `SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE 'idx_t_%' ORDER BY 1`,
    );
    expect(idx.rows).toEqual([
      { relname: 'idx_t_a', indisvalid: true },
      { relname: 'idx_t_id_a', indisvalid: true },
    ]);
    const rows = await ledger(db);
    expect(rows.map((x) => x.name)).toEqual(['001_t.sql', '002_idx.sql']);
    expect(rows[1]!.checksum).toBe(s.migrations[1]!.checksum);
  });

  it('a failed concurrent build reports the INVALID index it left; a rerun is refused until it is dropped', async () => {
    const { db, client } = await fresh();
    const files = { '001_t.sql': TABLE, '002_unique.sql': 'CREATE UNIQUE INDEX CONCURRENTLY idx_t_a_unique ON t (a);\n' };
    const report = await migrator(client).migrate(await set(files));
    expect(report.applied.map((a) => a.name)).toEqual(['001_t.sql']);
    const e = report.failed!.error as MigrationFailedError;
    expect(e).toBeInstanceOf(MigrationFailedError);
    expect(e.pg.code).toBe('23505');
    expect(e.transactional).toBe(false);
    expect(e.statement).toMatchObject({ index: 0, line: 1 });
    expect(e.pg.hint).toContain('INVALID index idx_t_a_unique');
    expect(e.pg.hint).toContain('DROP INDEX CONCURRENTLY');
    expect(e.hint).toContain('outside a transaction');
    const left = await db.query(`SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'idx_t_a_unique'`);
    expect(left.rows).toEqual([{ indisvalid: false }]);
    expect((await ledger(db)).map((r) => r.name)).toEqual(['001_t.sql']);

    // the same file again: IF NOT EXISTS or not, it must not be recorded over an INVALID index
    const again = await migrator(client).migrate(
      await set({ ...files, '002_unique.sql': 'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_t_a_unique ON t (a);\n' }),
    );
    const e2 = again.failed!.error as MigrationFailedError;
    expect(e2).toBeInstanceOf(MigrationFailedError);
    expect(e2.message).toContain('idx_t_a_unique exists but is INVALID');
    expect(e2.pg.hint).toBe('DROP INDEX CONCURRENTLY "public"."idx_t_a_unique"; then run the migration again');
    expect((await ledger(db)).map((r) => r.name)).toEqual(['001_t.sql']);

    // as told: drop it, fix the data, run again
    await db.query('DROP INDEX CONCURRENTLY idx_t_a_unique');
    await db.query('UPDATE t SET a = id');
    const fixed = await migrator(client).migrate(await set(files));
    expect(fixed.failed).toBeUndefined();
    expect(fixed.applied.map((a) => a.name)).toEqual(['002_unique.sql']);
  });
});

describe('the session is left as it was found', () => {
  it('a non-transactional migration in a schema does not leave search_path or timeouts set on the client', async () => {
    const { db, client } = await fresh();
    const show = async () =>
      (await client.query(`SELECT current_setting('search_path') AS sp, current_setting('lock_timeout') AS lt, current_setting('statement_timeout') AS st`))
        .rows[0];
    await client.query(`SET statement_timeout = '42s'`);
    const initial = await show();
    const s = await set({
      '001_t.sql': 'CREATE TABLE t (id int, a int);',
      '002_idx.sql': 'CREATE INDEX CONCURRENTLY idx_t_a ON t (a);',
    });
    const r = await migrator(client, { schema: 'tenant_a', lockTimeoutMs: 1234 }).migrate(s);
    expect(r.failed).toBeUndefined();
    expect(await show()).toEqual(initial);
    expect((await client.query('SELECT current_schema() AS s')).rows[0].s).toBe('public');
    // a Migrator without a schema on the same client: its session is untouched (above), so tenant_a's tracking
    // table is off its search path: neither used nor left behind for a new one in public (adapters/pg/ledger.ts)
    await expect(migrator(client).status(s)).rejects.toThrow(/schema tenant_a holds a tracking table migrations .*off the search path/);
    const idx = await db.query(`SELECT schemaname FROM pg_indexes WHERE indexname = 'idx_t_a'`);
    expect(idx.rows).toEqual([{ schemaname: 'tenant_a' }]);
  });
});

describe('least privilege', () => {
  it('a role that may create in its schema, but not create schemas in the database, can migrate', async () => {
    const { db } = await fresh();
    const role = `flotilla_app_${db.name.slice(-10)}`;
    await db.query(`CREATE ROLE ${role} LOGIN; GRANT USAGE, CREATE ON SCHEMA public TO ${role}`);
    try {
      const u = new URL(db.url);
      u.username = role;
      u.password = '';
      const pgm = await import('pg');
      const c = new pgm.default.Client({ connectionString: u.toString() });
      await c.connect();
      openClients.push(c);
      expect((await c.query('SELECT current_user AS u')).rows[0].u).toBe(role);
      const r = await migrator(c).migrate(await guide());
      expect(r.failed).toBeUndefined();
      expect(r.applied).toHaveLength(8);
      expect(await ledger(db)).toHaveLength(8);
      await c.end();
    } finally {
      await db.query(`DROP OWNED BY ${role}`).catch(() => {});
      await db.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
    }
  });
});

describe('timeouts and the migration lock', () => {
  it('lock_timeout: a table locked by another session fails fast with 55P03, a transient error', async () => {
    const { db, client } = await fresh();
    const base = { '001_users.sql': 'CREATE TABLE users (id int);' };
    await migrator(client).migrate(await set(base));
    const holder = await clientOf(db);
    await holder.query('BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE');
    const s = await set({ ...base, '002_phone.sql': 'ALTER TABLE users ADD COLUMN phone text;' });
    for (const validate of [true, false]) {
      const started = Date.now();
      const report = await migrator(client, { lockTimeoutMs: 300, validate }).migrate(s);
      expect(Date.now() - started).toBeLessThan(5000);
      const e = report.failed!.error as MigrationFailedError;
      expect(e).toBeInstanceOf(MigrationFailedError);
      expect(e.pg.code).toBe('55P03');
      expect(e.kind).toBe('transient');
      if (!validate) expect(e.statement?.text).toBe('ALTER TABLE users ADD COLUMN phone text');
    }
    await holder.query('ROLLBACK');
    expect((await ledger(db)).map((r) => r.name)).toEqual(['001_users.sql']);
    expect((await migrator(client, { lockTimeoutMs: 300 }).migrate(s)).failed).toBeUndefined();
  });

  it('another runner holding the migration lock: lockWaitTimeoutMs 0 gives up at once; 2000 waits for it', async () => {
    const { db, client } = await fresh();
    const s = await guide();
    const holder = await clientOf(db);
    expect(await tryLock(holder, { schema: 'public', table: 'migrations' })).toBe(true);
    const holderPid = (await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;

    const e = await rejection(migrator(client, { lockWaitTimeoutMs: 0 }).migrate(s), LockTimeoutError);
    expect(e.kind).toBe('transient');
    expect(e.holder).toContain(`pid ${holderPid}`);
    expect(e.message).toContain('public.migrations');
    expect(await tables(db)).toEqual([]);

    const events: EngineEvent[] = [];
    const started = Date.now();
    const release = new Promise<void>((resolve) => setTimeout(() => void unlock(holder, { schema: 'public', table: 'migrations' }).then(resolve), 500));
    const report = await migrator(client, { lockWaitTimeoutMs: 2000 }, events).migrate(s);
    await release;
    expect(report.failed).toBeUndefined();
    expect(report.applied).toHaveLength(8);
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(report.lockWaitMs).toBeGreaterThanOrEqual(400);
    expect(events[0]).toMatchObject({ type: 'lock-wait', holder: expect.stringContaining(`pid ${holderPid}`) });
    expect(events[1]).toMatchObject({ type: 'lock-acquired' });
    // the engine released its lock: the other session can take it now
    expect(await tryLock(holder, { schema: 'public', table: 'migrations' })).toBe(true);
  });

  it('lockWaitTimeoutMs 600 against a holder that never lets go: LockTimeoutError after about 600 ms', async () => {
    const { db, client } = await fresh();
    const holder = await clientOf(db);
    await tryLock(holder, { schema: 'public', table: 'migrations' });
    const started = Date.now();
    const e = await rejection(migrator(client, { lockWaitTimeoutMs: 600 }).migrate(await guide()), LockTimeoutError);
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(550);
    expect(waited).toBeLessThan(5000);
    expect(e.waitedMs).toBeGreaterThanOrEqual(550);
  });

  it('10 runners racing on one database apply each migration exactly once', async () => {
    const { db } = await fresh();
    const s = await guide();
    const clients = await Promise.all(Array.from({ length: 10 }, () => clientOf(db)));
    const reports = await Promise.all(clients.map((c, i) => migrator(c, { appliedBy: `runner-${i}` }).migrate(s)));
    expect(reports.filter((r) => r.failed)).toEqual([]);
    const applied = reports.flatMap((r) => r.applied.map((a) => a.name)).sort();
    expect(applied).toEqual(GUIDE_NAMES);
    const rows = await ledger(db);
    expect(rows.map((r) => r.name)).toEqual(GUIDE_NAMES);
    expect(new Set(rows.map((r) => r.applied_by)).size).toBeGreaterThanOrEqual(1);
  });
});

describe('schemas', () => {
  it("schema-per-tenant: tables and tracking table in the tenant's schema, tenants independent", async () => {
    const { db, client } = await fresh();
    const s = await guide();
    const otherClient = await clientOf(db);
    const [a, b] = await Promise.all([migrator(client, { schema: 'tenant_a' }).migrate(s), migrator(otherClient, { schema: 'tenant_b' }).migrate(s)]);
    for (const r of [a, b]) {
      expect(r.failed).toBeUndefined();
      expect(r.applied.map((x) => x.name)).toEqual(GUIDE_NAMES);
    }
    expect(a.schema).toBe('tenant_a');
    const expected = ['audit_log', 'contracts', 'invoices', 'migrations', 'products', 'roles', 'user_roles', 'users'];
    expect(await tables(db, 'tenant_a')).toEqual(expected);
    expect(await tables(db, 'tenant_b')).toEqual(expected);
    expect(await tables(db, 'public')).toEqual([]);
    expect(await ledger(db, 'tenant_a.migrations')).toHaveLength(8);
    expect(await ledger(db, 'tenant_b.migrations')).toHaveLength(8);
    const types = await db.query(
      `SELECT n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typname = 'notification_preference' ORDER BY 1`,
    );
    expect(types.rows.map((r) => r.nspname)).toEqual(['tenant_a', 'tenant_b']);

    // a new tenant sees everything pending; the session's own search_path is untouched afterwards
    const c = migrator(client, { schema: 'tenant_c' });
    expect((await c.status(s)).pending).toEqual(GUIDE_NAMES);
    expect((await client.query('SELECT current_schema() AS s')).rows[0].s).toBe('public');
    // a migration in tenant_a only touches tenant_a
    await db.query(`INSERT INTO tenant_b.users (email, name) VALUES ('b@example.com', 'B')`);
    const more = await guide([{ name: '009_add_phone.sql', sql: 'ALTER TABLE users ADD COLUMN phone text;' }]);
    expect((await migrator(client, { schema: 'tenant_a' }).migrate(more)).applied.map((x) => x.name)).toEqual(['009_add_phone.sql']);
    const phone = await db.query(`SELECT table_schema FROM information_schema.columns WHERE column_name = 'phone' ORDER BY 1`);
    expect(phone.rows.map((r) => r.table_schema)).toEqual(['tenant_a']);
    expect((await migrator(client, { schema: 'tenant_b' }).status(more)).pending).toEqual(['009_add_phone.sql']);
  });
});

describe('dry run', () => {
  it('applies nothing, creates no tracking table, and reports what would apply', async () => {
    const { db, client } = await fresh();
    const r = await migrator(client).migrate(await guide(), { dryRun: true });
    expect(r.dryRun).toBe(true);
    expect(r.failed).toBeUndefined();
    expect(r.applied.map((a) => a.name)).toEqual(GUIDE_NAMES);
    expect(r.pending).toEqual(GUIDE_NAMES);
    expect(await tables(db)).toEqual([]);
    const types = await db.query(`SELECT 1 FROM pg_type WHERE typname = 'notification_preference'`);
    expect(types.rowCount).toBe(0);
    // advisory locks are cluster-wide: look at this database's only (other tests run in parallel)
    const locks = await db.query(
      `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    expect(locks.rowCount).toBe(0);
    // a real run afterwards applies everything
    expect((await migrator(client).migrate(await guide())).applied).toHaveLength(8);
  });

  it('reports the failure the real run would hit, and the validation failures', async () => {
    const { db, client } = await fresh();
    const s = await set({
      '001_ok.sql': 'CREATE TABLE ok (id int); INSERT INTO ok VALUES (1), (2);',
      '002_breaks.sql': 'CREATE TABLE x (id int);\nSELECT * FROM missing;',
    });
    const r = await migrator(client).migrate(s, { dryRun: true });
    expect(r.applied.map((a) => a.name)).toEqual(['001_ok.sql']);
    expect(r.failed?.name).toBe('002_breaks.sql');
    const e = r.failed!.error as MigrationFailedError;
    expect(e.pg.code).toBe('42P01');
    expect(e.statement?.line).toBe(2);
    expect(await tables(db)).toEqual([]);

    await migrator(client).migrate(await set({ '001_ok.sql': 'CREATE TABLE ok (id int); INSERT INTO ok VALUES (1), (2);' }));
    const v = await migrator(client).migrate(
      await set({ '001_ok.sql': 'CREATE TABLE ok (id int); INSERT INTO ok VALUES (1), (2);', '002_del.sql': 'DELETE FROM ok;' }),
      { dryRun: true },
    );
    expect((v.failed!.error as ValidationFailedError).issues).toEqual(['Table ok: row count changed from 2 to 0']);
    expect((await db.query('SELECT count(*)::int AS n FROM ok')).rows[0].n).toBe(2);
    expect((await ledger(db)).map((x) => x.name)).toEqual(['001_ok.sql']);
  });
});

describe("the guide's older tracking table", () => {
  it('is upgraded in place; migrations it records are not run again', async () => {
    const { db, client } = await fresh();
    const s = await guide();
    await db.query(`CREATE TABLE migrations (id SERIAL PRIMARY KEY, name VARCHAR(255) UNIQUE NOT NULL, executed_at TIMESTAMP DEFAULT NOW())`);
    // 001 applied by the old runner, and its table holds data
    await db.query(
      'CREATE TABLE users (id SERIAL PRIMARY KEY, email VARCHAR(255) NOT NULL UNIQUE, name VARCHAR(255) NOT NULL, created_at TIMESTAMP DEFAULT NOW())',
    );
    await db.query(`INSERT INTO users (email, name) VALUES ('old@example.com', 'Old')`);
    await db.query(`INSERT INTO migrations (name) VALUES ('001_create_users_table.sql')`);

    const status = await migrator(client).status(s);
    expect(status.applied.map((r) => r.name)).toEqual(['001_create_users_table.sql']);
    expect(status.applied[0]!.checksum).toBeNull();
    expect(status.changed).toEqual([]);
    expect(status.pending).toEqual(GUIDE_NAMES.slice(1));

    const r = await migrator(client).migrate(s);
    expect(r.failed).toBeUndefined();
    expect(r.applied.map((a) => a.name)).toEqual(GUIDE_NAMES.slice(1));
    // 001 was not run: its index (created by 001 only) is absent
    const idx = await db.query(`SELECT 1 FROM pg_class WHERE relname = 'idx_users_created_at'`);
    expect(idx.rowCount).toBe(0);
    const rows = await db.query('SELECT id, name, executed_at, checksum, duration_ms, applied_by FROM migrations ORDER BY id');
    expect(rows.rows).toHaveLength(8);
    expect(rows.rows[0]).toMatchObject({ id: 1, name: '001_create_users_table.sql', checksum: null });
    expect(rows.rows[1]).toMatchObject({ id: 2, name: '002_create_contracts_table.sql', applied_by: 'engine-test' });
    expect(rows.rows[1].checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(rows.rows[1].executed_at).toBeInstanceOf(Date);
    expect((await migrator(client).migrate(s)).applied).toEqual([]);
    // the guide's troubleshooting (DELETE FROM migrations WHERE name = ...) still works
    await db.query(`DELETE FROM migrations WHERE name = '007_create_user_roles_table.sql'`);
    expect((await migrator(client).status(s)).pending).toEqual(['007_create_user_roles_table.sql']);
  });
});

describe('the validator API, as in the guide', () => {
  it('snapshotBefore / snapshotAfter / validate over a list of tables', async () => {
    const { db, client } = await fresh();
    await migrator(client).migrate(await guide());
    await db.query(`INSERT INTO users (email, name) SELECT 'u' || g || '@example.com', 'U' || g FROM generate_series(1, 100) g`);
    const validator = new MigrationValidator(client);

    await client.query('BEGIN');
    const before = await validator.snapshotBefore(['users', 'contracts']);
    expect(Object.keys(before.tables).sort()).toEqual(['public.contracts', 'public.users']);
    expect(before.tables['public.users']!.rowCount).toBe(100);
    await client.query('ALTER TABLE users ADD COLUMN IF NOT EXISTS phone VARCHAR(20)');
    await client.query('DELETE FROM audit_log'); // not in the list
    const after = await validator.snapshotAfter(['users', 'contracts']);
    expect(after.tables['public.users']!.columns.phone).toEqual({ type: 'character varying(20)', nullable: true });
    const result = validator.validate(before, after, { allowRowChanges: false, allowTableCreation: false, allowConstraintModification: false });
    expect(result).toEqual({ valid: true, issues: [] });

    await client.query('DELETE FROM users WHERE id <= 5');
    await client.query('ALTER TABLE contracts DROP CONSTRAINT contracts_dates_check');
    const after2 = await validator.snapshotAfter(['users', 'contracts']);
    const bad = validator.validate(before, after2, { allowRowChanges: false, allowTableCreation: false, allowConstraintModification: false });
    expect(bad.valid).toBe(false);
    expect([...bad.issues].sort()).toEqual(['Table contracts: constraint contracts_dates_check removed', 'Table users: row count changed from 100 to 95']);
    await client.query('ROLLBACK');

    // no list: every table of every user schema
    const all = await validator.snapshotBefore();
    expect(Object.keys(all.tables)).toContain('public.migrations');
    expect(Object.keys(all.tables)).toHaveLength(8); // the 7 tables of the guide and the tracking table
    expect(() => new MigrationValidator(undefined as never)).toThrow(TypeError);
  });
});

describe('enums', () => {
  it('ALTER TYPE ... ADD VALUE in one migration, the new value used in the next', async () => {
    const { db, client } = await fresh();
    const s = await guide([
      { name: '009_add_webhook_preference.sql', sql: "BEGIN;\nALTER TYPE notification_preference ADD VALUE IF NOT EXISTS 'webhook' AFTER 'push';\nCOMMIT;\n" },
      { name: '010_default_webhook.sql', sql: "ALTER TABLE users ALTER COLUMN notification_preference SET DEFAULT 'webhook';\n" },
    ]);
    const r = await migrator(client).migrate(s);
    expect(r.failed).toBeUndefined();
    expect(r.applied).toHaveLength(10);
    const values = await db.query(`SELECT unnest(enum_range(NULL::notification_preference))::text AS v`);
    expect(values.rows.map((x) => x.v)).toEqual(['email', 'sms', 'push', 'webhook', 'none']);
    await db.query(`INSERT INTO users (email, name) VALUES ('w@example.com', 'W')`);
    expect((await db.query('SELECT notification_preference::text AS p FROM users')).rows[0].p).toBe('webhook');
  });
});
