/**
 * Issue 9, "Bytes on disk", end to end through the built CLI (`npm run build` first) on a real
 * database: bad bytes and non-files are refused before anything runs (exit 2, nothing in the
 * database), a BOM is stripped, the parser's size limit is a clear error, and a file renamed or
 * zero-padded after it was applied is reported, never applied again (promises 1, 2, 9, 11).
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_MIGRATION_BYTES } from '../../src/core/file-bytes.js';
import { buildMigrationSet, migrationSetFromJSON, migrationToJSON } from '../../src/core/migration-set.js';
import { Migrator } from '../../src/migrator.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';

const root = mkdtempSync(join(tmpdir(), 'flotilla-trust-bytes-cli-'));
afterAll(async () => {
  rmSync(root, { recursive: true, force: true });
  await dropAllTestDatabases();
});
let n = 0;
function dir(files: Record<string, string | Buffer>): string {
  const d = join(root, `d${n++}`);
  mkdirSync(d);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(d, name), content);
  return d;
}
const tables = async (db: TestDatabase) =>
  (await db.query<{ t: string }>("SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")).rows.map((r) => r.t);

describe('refused before anything runs: exit 2, the database untouched', () => {
  it.each([
    [
      'a Latin-1 byte',
      { '001_a.sql': 'CREATE TABLE a (id int);', '002_cafe.sql': Buffer.from('INSERT INTO a VALUES (1); -- Caf\xe9\n', 'latin1') },
      /002_cafe\.sql:1: byte 0xE9 .*not valid UTF-8 \(byte offset 32\)/,
    ],
    ['a directory named like a migration', { '001_a.sql': 'CREATE TABLE a (id int);', '002_b.sql/': '' }, /002_b\.sql \(a directory\)/],
  ])('%s', async (_what, files, message) => {
    const db = await createTestDatabase('tb');
    const plain: Record<string, string | Buffer> = {};
    for (const [k, v] of Object.entries(files)) if (!k.endsWith('/')) plain[k] = v;
    const d = dir(plain);
    for (const k of Object.keys(files)) if (k.endsWith('/')) mkdirSync(join(d, k));
    const r = await runCli(['pending', '--dir', d], { env: { DATABASE_URL: db.url } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).not.toMatch(/Completed|syntax error/);
    expect(await tables(db)).toEqual([]);
  });

  it(`a file over the parser's limit (${MAX_MIGRATION_BYTES} bytes): a size error, no parser memory dump, exit 2`, async () => {
    const big = "INSERT INTO t VALUES ('x');\n".repeat(Math.ceil((3 * MAX_MIGRATION_BYTES) / 28));
    const r = await runCli(['list', '--dir', dir({ '001_big.sql': big })]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/001_big\.sql is 12 MiB .*at most 4 MiB/);
    expect(r.stdout + r.stderr).not.toMatch(/MemoryContext|syntax error|This is a bug/);
  });
});

it('a UTF-8 BOM is stripped, as psql does: the file applies', async () => {
  const db = await createTestDatabase('tb');
  const d = dir({ '001_bom.sql': Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('CREATE TABLE bom (id int);\n')]) });
  const r = await runCli(['pending', '--dir', d], { env: { DATABASE_URL: db.url } });
  expect(r.stderr).not.toMatch(/syntax error/);
  expect(r.code).toBe(0);
  expect(await tables(db)).toEqual(['bom', 'migrations']);
});

it('a symlinked migration is applied, not skipped while the run reports success', async () => {
  const db = await createTestDatabase('tb');
  const target = join(root, `shared-${n}.sql`);
  writeFileSync(target, 'CREATE TABLE linked (id int);');
  const d = dir({ '001_a.sql': 'CREATE TABLE a (id int);' });
  symlinkSync(target, join(d, '002_linked.sql'));
  const r = await runCli(['pending', '--dir', d], { env: { DATABASE_URL: db.url } });
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('Completed: 2 applied');
  expect(await tables(db)).toEqual(['a', 'linked', 'migrations']);
});

describe('a renamed or zero-padded file is the same migration', () => {
  it('1_seed.sql applied, renamed 001_seed.sql: `pending` applies nothing and warns, `status` reports the rename', async () => {
    const db = await createTestDatabase('tb');
    const env = { DATABASE_URL: db.url };
    const d = dir({ '1_seed.sql': 'CREATE TABLE seed (id int);\nINSERT INTO seed VALUES (1);\n' });
    expect((await runCli(['pending', '--dir', d], { env })).code).toBe(0);
    renameSync(join(d, '1_seed.sql'), join(d, '001_seed.sql'));
    writeFileSync(join(d, '002_more.sql'), 'CREATE TABLE more (id int);');

    const run = await runCli(['pending', '--dir', d], { env });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Found 1 pending migrations');
    expect(run.stdout).not.toContain('Running migration: 001_seed.sql');
    expect(run.stderr).toContain('applied migration 1_seed.sql is now named 001_seed.sql (same version 1): not applied again');
    expect((await db.query('SELECT count(*)::int AS n FROM seed')).rows[0].n).toBe(1);
    expect((await db.query('SELECT name FROM migrations ORDER BY name')).rows.map((r) => r.name)).toEqual(['002_more.sql', '1_seed.sql']);

    const status = await runCli(['status', '--dir', d], { env });
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('1_seed.sql → 001_seed.sql');
    expect(status.stdout).toContain('Total: 2 applied, 0 pending');
    expect(status.stdout).not.toContain('missing');
    const json = JSON.parse((await runCli(['status', '--json', '--dir', d], { env })).stdout);
    expect(json.renamed).toEqual([{ version: '1', from: '1_seed.sql', to: '001_seed.sql' }]);
    expect(json.pending).toEqual([]);

    const again = await runCli(['run', '001_seed.sql', '--dir', d], { env });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('already applied: 001_seed.sql');
    expect((await db.query('SELECT count(*)::int AS n FROM seed')).rows[0].n).toBe(1);
  });
});

it('a frozen set (what a fleet worker runs) naming 001_seed.sql, on a tenant that applied 1_seed.sql: nothing applied, a warning', async () => {
  const db = await createTestDatabase('tb');
  const client = await db.client();
  try {
    const sql = 'CREATE TABLE seed (id int);\nINSERT INTO seed VALUES (1);\n';
    await new Migrator(client).migrate(await buildMigrationSet([{ name: '1_seed.sql', sql }]));
    const renamed = await buildMigrationSet([{ name: '001_seed.sql', sql }]);
    expect(renamed.checksum).not.toBe((await buildMigrationSet([{ name: '1_seed.sql', sql }])).checksum); // a new set: older rollouts keep theirs
    const frozen = migrationSetFromJSON(JSON.parse(JSON.stringify(renamed.migrations.map(migrationToJSON))), renamed.checksum);
    const report = await new Migrator(client, { appliedBy: 'worker w1' }).migrate(frozen);
    expect(report.applied).toEqual([]);
    expect(report.failed).toBeUndefined();
    expect(report.warnings).toEqual(['applied migration 1_seed.sql is now named 001_seed.sql (same version 1): not applied again']);
    expect((await client.query('SELECT count(*)::int AS n FROM seed')).rows[0].n).toBe(1);
  } finally {
    await client.end();
  }
});
