/**
 * `down`, `baseline` and `drift` through the built CLI, on real Postgres:
 * down files reverted newest first through the engine (validated, tracking row
 * removed in the same transaction), refusals before anything runs; baseline
 * rows in a guide-shaped tracking table, shown by `status`; drift with one
 * tenant altered by hand. Run `npm run build` first.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';
import { writeTenantsFile } from '../helpers/fleet-base.js';
import { migrationDir } from '../helpers/migrations.js';

const dirs: { cleanup(): void }[] = [];
afterAll(async () => {
  for (const d of dirs) d.cleanup();
  await dropAllTestDatabases();
});

function dir(files: Record<string, string>) {
  const d = migrationDir(files);
  dirs.push(d);
  return d;
}

/** the exit code, with what the command said when it is not 0 */
const ok = async (p: Promise<CliResult>) => {
  const r = await p;
  if (r.code !== 0) console.error(show(r));
  return r.code;
};
const show = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
const cli = (db: TestDatabase, args: string[]) => runCli([...args, '--database-url', db.url]);
const names = async (db: TestDatabase, schema = 'public') =>
  (await db.query(`SELECT name FROM "${schema}".migrations ORDER BY name`)).rows.map((r: { name: string }) => r.name);
const exists = async (db: TestDatabase, rel: string) => (await db.query('SELECT to_regclass($1) IS NOT NULL AS ok', [rel])).rows[0].ok as boolean;

const FILES = {
  '001_users.sql': 'CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE);\n',
  '001_users.down.sql': '-- flotilla:validate allowTableDrop=true\nDROP TABLE users;\n',
  '002_note.sql': 'ALTER TABLE users ADD COLUMN note varchar(200);\n',
  '002_note.down.sql': '-- flotilla:validate allowColumnDrop=true\nALTER TABLE users DROP COLUMN note;\n',
  '003_note_idx.sql': 'CREATE INDEX CONCURRENTLY users_note_idx ON users (note);\n',
  '003_note_idx.down.sql': 'DROP INDEX CONCURRENTLY users_note_idx;\n',
};

describe('flotilla down', { timeout: 120_000, concurrent: true }, () => {
  it('reverts the last applied migration only, then everything above --to, newest first', async () => {
    const db = await createTestDatabase('down');
    const d = dir(FILES);
    expect(await ok(cli(db, ['pending', '--dir', d.dir]))).toBe(0);
    // a dry run cannot try a down file that runs outside a transaction
    const dryIdx = await cli(db, ['down', '--dry-run', '--dir', d.dir]);
    expect(dryIdx.code, show(dryIdx)).toBe(0);
    expect(dryIdx.stderr).toContain('003_note_idx.down.sql runs outside a transaction and cannot be tried in a dry run');
    expect(await exists(db, 'users_note_idx')).toBe(true);
    const one = await cli(db, ['down', '--dir', d.dir]);
    expect(one.code, show(one)).toBe(0);
    expect(one.stdout).toContain('→ Reverting with: 003_note_idx.down.sql');
    expect(await exists(db, 'users_note_idx')).toBe(false);
    expect(await names(db)).toEqual(['001_users.sql', '002_note.sql']);
    const status = await cli(db, ['status', '--dir', d.dir]);
    expect(status.stdout).toContain('○ 003_note_idx.sql');
    const list = await runCli(['list', '--dir', d.dir]);
    expect(list.stdout).toContain('  002_note.sql  (down: 002_note.down.sql)');
    expect(list.stdout).toContain('Total: 3 migrations');
    // a dry run tries the down files in one transaction (each validated) and rolls it back
    const dry = await cli(db, ['down', '--to', '0', '--dry-run', '--dir', d.dir]);
    expect(dry.code, show(dry)).toBe(0);
    expect(dry.stdout).toContain('✓ Completed: 2 reverted, 0 failed (dry run: everything rolled back)');
    expect(await names(db)).toEqual(['001_users.sql', '002_note.sql']);
    expect(await exists(db, 'users')).toBe(true);

    const all = await runCli(['down', '--to', '0', '--dir', d.dir, '--database-url', db.url, '--json']);
    expect(all.code, show(all)).toBe(0);
    const report = JSON.parse(all.stdout);
    expect(report.reverted.map((x: { name: string }) => x.name)).toEqual(['002_note.down.sql', '001_users.down.sql']);
    expect(await names(db)).toEqual([]);
    expect(await exists(db, 'users')).toBe(false);
    // nothing left: a no-op, exit 0
    const none = await cli(db, ['down', '--dir', d.dir]);
    expect(none.code, show(none)).toBe(0);
    expect(none.stdout).toContain('Nothing to revert');
  });

  it('refuses, naming every version without a down file, before anything runs (exit 2)', async () => {
    const db = await createTestDatabase('down');
    const d = dir({ ...FILES, '004_x.sql': 'CREATE TABLE x (id int);\n', '005_y.sql': 'CREATE TABLE y (id int);\n' });
    expect(await ok(cli(db, ['pending', '--dir', d.dir]))).toBe(0);
    const r = await cli(db, ['down', '--to', '1', '--dir', d.dir]);
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toContain('no down file for 004_x.sql, 005_y.sql: nothing was reverted');
    expect(await names(db)).toHaveLength(5);
    expect(await exists(db, 'y')).toBe(true);
    const bad = await cli(db, ['down', '--to', 'x1', '--dir', d.dir]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--to: "x1" is not a migration number');
  });

  it('a down file is validated like an up file: a refused drop rolls back and keeps the tracking row (exit 1)', async () => {
    const db = await createTestDatabase('down');
    const d = dir({ '001_users.sql': FILES['001_users.sql'], '001_users.down.sql': 'DROP TABLE users;\n' });
    expect(await ok(cli(db, ['pending', '--dir', d.dir]))).toBe(0);
    const r = await cli(db, ['down', '--dir', d.dir]);
    expect(r.code, show(r)).toBe(1);
    expect(r.stdout).toContain('✗ Migration validation failed:');
    expect(await exists(db, 'users')).toBe(true);
    expect(await names(db)).toEqual(['001_users.sql']);
  });

  it('a changed up file is refused: its down was written for another', async () => {
    const db = await createTestDatabase('down');
    const d = dir(FILES);
    expect(await ok(cli(db, ['pending', '--dir', d.dir]))).toBe(0);
    d.write('003_note_idx.sql', 'CREATE INDEX CONCURRENTLY users_note_idx ON users (note, id);\n');
    const r = await cli(db, ['down', '--dir', d.dir]);
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toContain('003_note_idx.sql');
    expect(await exists(db, 'users_note_idx')).toBe(true);
  });
});

describe('flotilla baseline', { timeout: 120_000, concurrent: true }, () => {
  it("records files as applied without running them, in the guide's tracking table, shown as baseline", async () => {
    const db = await createTestDatabase('base');
    // a database from before Flotilla: the schema by hand, the guide runner's tracking table, empty
    await db.query(`CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE, note varchar(200));
      CREATE TABLE migrations (id SERIAL PRIMARY KEY, name VARCHAR(255) UNIQUE NOT NULL, executed_at TIMESTAMP DEFAULT NOW())`);
    const d = dir(FILES);
    const r = await cli(db, ['baseline', '--up-to', '002', '--dir', d.dir]);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain('2 recorded as applied (baseline): 001_users.sql, 002_note.sql');
    const rows = (await db.query('SELECT id, name, executed_at, checksum, duration_ms, applied_by FROM migrations ORDER BY id')).rows;
    expect(rows.map((x) => [x.name, x.duration_ms, x.applied_by.startsWith('baseline (cli ')])).toEqual([
      ['001_users.sql', null, true],
      ['002_note.sql', null, true],
    ]);
    expect(rows.every((x) => typeof x.id === 'number' && x.executed_at instanceof Date && /^[0-9a-f]{64}$/.test(x.checksum))).toBe(true);

    const status = await cli(db, ['status', '--dir', d.dir]);
    expect(status.stdout).toContain('✓ 001_users.sql (baseline: recorded, not run)');
    expect(status.stdout).toContain('○ 003_note_idx.sql');
    const json = JSON.parse((await runCli(['status', '--dir', d.dir, '--database-url', db.url, '--json'])).stdout);
    expect(json.baseline).toEqual(['001_users.sql', '002_note.sql']);
    expect(json.pending).toEqual(['003_note_idx.sql']);

    // the rest applies on top; a second baseline records nothing new
    const p = await cli(db, ['pending', '--dir', d.dir]);
    expect(p.code, show(p)).toBe(0);
    expect(p.stdout).toContain('Found 1 pending migrations');
    const again = await cli(db, ['baseline', '--up-to', '3', '--dir', d.dir]);
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout).toContain('0 recorded as applied (baseline); 3 already recorded');
  });

  it('refuses (exit 2, nothing recorded) a number no file has, and a file recorded with another checksum', async () => {
    const db = await createTestDatabase('base');
    const d = dir(FILES);
    const none = await cli(db, ['baseline', '--up-to', '7', '--dir', d.dir]);
    expect(none.code, show(none)).toBe(2);
    expect(none.stderr).toContain('no migration file numbered 7');
    expect(await exists(db, 'migrations')).toBe(false);
    expect(await ok(cli(db, ['baseline', '--up-to', '1', '--dir', d.dir]))).toBe(0);
    await db.query(`UPDATE migrations SET checksum = 'edited'`);
    const changed = await cli(db, ['baseline', '--up-to', '2', '--dir', d.dir]);
    expect(changed.code, show(changed)).toBe(2);
    expect(changed.stderr).toContain('001_users.sql is already recorded with another checksum');
    expect(await names(db)).toEqual(['001_users.sql']);
    const bad = await cli(db, ['baseline', '--dir', d.dir]);
    expect(bad.code).toBe(2);
  });

  it('a fleet: --tenants with a selector, database and schema tenants', async () => {
    const a = await createTestDatabase('base');
    const shared = await createTestDatabase('base');
    const d = dir(FILES);
    const file = writeTenantsFile(`${d.dir}/../tenants-${shared.name}.yaml`, [
      { id: 'a', databaseUrl: a.url },
      { id: 's', databaseUrl: shared.url, schema: 'tenant_s' },
    ]);
    const refused = await runCli(['baseline', '--up-to', '1', '--dir', d.dir, '--tenants', file]);
    expect(refused.code, show(refused)).toBe(2);
    const r = await runCli(['baseline', '--up-to', '1', '--dir', d.dir, '--tenants', file, '--all', '--json']);
    expect(r.code, show(r)).toBe(0);
    expect(JSON.parse(r.stdout).tenants).toEqual([
      { id: 'a', recorded: ['001_users.sql'], already: [] },
      { id: 's', recorded: ['001_users.sql'], already: [] },
    ]);
    expect(await names(a)).toEqual(['001_users.sql']);
    expect(await names(shared, 'tenant_s')).toEqual(['001_users.sql']);
  });
});

describe('flotilla drift', { timeout: 120_000, concurrent: true }, () => {
  it('groups tenants by applied version; the tenant altered by hand is the outlier, with readable differences', async () => {
    const d = dir(FILES);
    const dbs = await Promise.all([createTestDatabase('drift'), createTestDatabase('drift'), createTestDatabase('drift')]);
    const shared = await createTestDatabase('drift');
    for (const db of dbs) expect(await ok(cli(db, ['pending', '--dir', d.dir]))).toBe(0);
    expect(await ok(runCli(['pending', '--dir', d.dir, '--database-url', shared.url, '--schema', 'tenant_s']))).toBe(0);
    // one tenant behind (another version group), one altered by hand
    const behind = await createTestDatabase('drift');
    const two = dir({ '001_users.sql': FILES['001_users.sql'], '002_note.sql': FILES['002_note.sql'] });
    expect(await ok(cli(behind, ['pending', '--dir', two.dir]))).toBe(0);
    await dbs[2]!.query(`ALTER TABLE users ALTER COLUMN note TYPE text; CREATE INDEX ON users (email, id); DROP INDEX users_note_idx`);
    const file = writeTenantsFile(`${d.dir}/../tenants-${shared.name}.yaml`, [
      { id: 'a', databaseUrl: dbs[0]!.url },
      { id: 'b', databaseUrl: dbs[1]!.url },
      { id: 'c', databaseUrl: dbs[2]!.url },
      { id: 's', databaseUrl: shared.url, schema: 'tenant_s' },
      { id: 'old', databaseUrl: behind.url },
    ]);
    const r = await runCli(['drift', '--tenants', file, '--json']);
    expect(r.code, show(r)).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.drifted).toEqual(['c']);
    expect(j.unreadable).toEqual([]);
    const g = j.groups.find((x: { version: string }) => x.version === '003_note_idx.sql');
    expect(g.tenants).toEqual(['a', 'b', 'c', 's']);
    expect(g.majority.tenants).toEqual(['a', 'b', 's']);
    expect(g.outliers).toHaveLength(1);
    expect(g.outliers[0].differences).toEqual([
      'column users.note: text, majority character varying(200)',
      'index extra: INDEX ON users USING btree (email, id)',
      'index missing: INDEX ON users USING btree (note)',
    ]);
    expect(j.groups.find((x: { version: string }) => x.version === '002_note.sql').tenants).toEqual(['old']);

    const text = await runCli(['drift', '--tenants', file, '--only', 'a,b,c']);
    expect(text.code, show(text)).toBe(1);
    expect(text.stdout).toContain('✗ c drifted');
    expect(text.stdout).toContain('      column users.note: text, majority character varying(200)');

    // read only: nothing was written; the same fleet without c has no drift
    const clean = await runCli(['drift', '--tenants', file, '--only', 'a,b,s,old']);
    expect(clean.code, show(clean)).toBe(0);
  });

  it('a tenant that cannot be read is listed, not fatal (exit 3 without drift)', async () => {
    const d = dir(FILES);
    const db = await createTestDatabase('drift');
    const file = writeTenantsFile(`${d.dir}/../tenants-${db.name}.yaml`, [
      { id: 'a', databaseUrl: db.url },
      { id: 'gone', databaseUrl: `${db.url}_missing` },
    ]);
    const r = await runCli(['drift', '--tenants', file, '--json']);
    expect(r.code, show(r)).toBe(3);
    const j = JSON.parse(r.stdout);
    expect(j.unreadable.map((u: { id: string }) => u.id)).toEqual(['gone']);
    expect(j.groups[0].tenants).toEqual(['a']);
  });
});
