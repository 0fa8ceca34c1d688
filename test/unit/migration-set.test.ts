import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadMigrationDir } from '../../src/adapters/fs-source.js';
import { checksumOf, setChecksum } from '../../src/core/checksum.js';
import {
  ConfigError,
  DuplicateVersionError,
  EmptyMigrationError,
  FlotillaError,
  InvalidFileNameError,
  MixedTransactionModeError,
  SqlParseError,
  UnsupportedStatementError,
} from '../../src/core/errors.js';
import {
  buildMigrationSet,
  migrationSetFromJSON,
  migrationToJSON,
  trustedMigrationSet,
  type Migration,
  type MigrationFile,
} from '../../src/core/migration-set.js';
import { GUIDE_MIGRATIONS } from '../helpers/migrations.js';
import { rejection } from '../helpers/assert.js';

const REPO_MIGRATIONS = fileURLToPath(new URL('../../migrations/', import.meta.url));

async function one(sql: string, name = '001_test.sql'): Promise<Migration> {
  const set = await buildMigrationSet([{ name, sql }]);
  expect(set.migrations).toHaveLength(1);
  return set.migrations[0]!;
}

/** [line, first words] of each statement the engine would run. */
function shape(m: Migration): [number, string][] {
  return m.statements.map((s) => [
    s.line,
    s.sql
      .replace(/^(\s|--[^\n]*\n|\/\*[\s\S]*?\*\/)+/, '')
      .split(/\s+/)
      .slice(0, 3)
      .join(' '),
  ]);
}

describe('file names', () => {
  it('accepts NNN_description.sql and strips nothing from the name', async () => {
    const set = await buildMigrationSet([
      { name: '001_create_users_table.sql', sql: 'CREATE TABLE users (id int);' },
      { name: '002_add-Index_2.sql', sql: 'CREATE INDEX i ON users (id);' },
    ]);
    expect(set.migrations.map((m) => m.name)).toEqual(['001_create_users_table.sql', '002_add-Index_2.sql']);
    expect(set.migrations.map((m) => m.version)).toEqual([1n, 2n]);
  });

  it('refuses malformed names, naming every bad file at once', async () => {
    const e = await rejection(
      buildMigrationSet([
        { name: '1-create.sql', sql: 'SELECT 1;' },
        { name: 'abc.sql', sql: 'SELECT 1;' },
        { name: '001_.sql', sql: 'SELECT 1;' },
        { name: '002_fine.sql', sql: 'SELECT 1;' },
      ]),
      InvalidFileNameError,
    );
    expect(e.files).toEqual(['001_.sql', '1-create.sql', 'abc.sql']);
    for (const f of ['1-create.sql', 'abc.sql', '001_.sql']) expect(e.message).toContain(f);
    expect(e.message).not.toContain('002_fine.sql');
    expect(e.kind).toBe('input');
    expect(e.code).toBe('invalid_file_name');
  });

  it('a .SQL name in upper case is a candidate, so a bad one is refused rather than silently skipped', async () => {
    const e = await rejection(buildMigrationSet([{ name: '003_Shout.SQL', sql: 'SELECT 1;' }]), InvalidFileNameError);
    expect(e.files).toEqual(['003_Shout.SQL']);
  });

  it('ignores files that are not .sql, and hidden files', async () => {
    const set = await buildMigrationSet([
      { name: 'README.md', sql: '# not SQL; ignored' },
      { name: '.gitkeep', sql: '' },
      { name: '.001_hidden.sql', sql: 'garbage' },
      { name: 'notes.txt', sql: 'SELEC oops' },
      { name: '001_real.sql', sql: 'SELECT 1;' },
    ]);
    expect(set.migrations.map((m) => m.name)).toEqual(['001_real.sql']);
  });

  it('refuses two files with the same number (001 and 1 are the same number)', async () => {
    const e = await rejection(
      buildMigrationSet([
        { name: '001_a.sql', sql: 'SELECT 1;' },
        { name: '1_b.sql', sql: 'SELECT 2;' },
        { name: '002_c.sql', sql: 'SELECT 3;' },
      ]),
      DuplicateVersionError,
    );
    expect(e.version).toBe('1');
    expect([...e.files].sort()).toEqual(['001_a.sql', '1_b.sql']);
    expect(e.message).toContain('001_a.sql');
    expect(e.message).toContain('1_b.sql');
    expect(e.kind).toBe('input');
  });

  it('orders by number, not by text (2 before 10), whatever the input order', async () => {
    const set = await buildMigrationSet([
      { name: '10_ten.sql', sql: 'SELECT 10;' },
      { name: '2_two.sql', sql: 'SELECT 2;' },
      { name: '001_one.sql', sql: 'SELECT 1;' },
      { name: '0100_hundred.sql', sql: 'SELECT 100;' },
    ]);
    expect(set.migrations.map((m) => m.name)).toEqual(['001_one.sql', '2_two.sql', '10_ten.sql', '0100_hundred.sql']);
  });
});

describe('empty files and syntax errors', () => {
  it('refuses an empty file', async () => {
    const e = await rejection(buildMigrationSet([{ name: '001_empty.sql', sql: '' }]), EmptyMigrationError);
    expect(e.file).toBe('001_empty.sql');
    expect(e.message).toContain('001_empty.sql');
  });

  it('refuses a file of comments and white space only', async () => {
    const e = await rejection(buildMigrationSet([{ name: '002_comments.sql', sql: '-- Migration: todo\n\n/* later */\n   \n' }]), EmptyMigrationError);
    expect(e.file).toBe('002_comments.sql');
  });

  it("refuses a file holding only the guide's BEGIN; COMMIT;", async () => {
    await rejection(buildMigrationSet([{ name: '003_nothing.sql', sql: 'BEGIN;\n-- nothing yet\nCOMMIT;\n' }]), EmptyMigrationError);
  });

  it('names the file and the line of a syntax error', async () => {
    const sql = '-- Migration: broken\n\nBEGIN;\n\nCREATE TABLE ok (id int);\n\nCREAT TABLE broken (id int);\n\nCOMMIT;\n';
    const e = await rejection(buildMigrationSet([{ name: '004_broken.sql', sql }]), SqlParseError);
    expect(e.file).toBe('004_broken.sql');
    expect(e.line).toBe(7);
    expect(e.message).toMatch(/^004_broken\.sql:7: SQL syntax error: syntax error at or near "CREAT"/);
    expect(e.kind).toBe('input');
  });

  it('reports the right line when multi-byte text (accents, emoji) comes before the error', async () => {
    const sql = '-- Migração: préférences 😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀\n' + "INSERT INTO t VALUES ('ünïcødé ✓ 😀');\n" + '\n' + 'SELEC 2;\n';
    const e = await rejection(buildMigrationSet([{ name: '005_utf8.sql', sql }]), SqlParseError);
    expect(e.line).toBe(4);
  });

  it('refuses psql meta-commands as syntax errors', async () => {
    const e = await rejection(buildMigrationSet([{ name: '006_psql.sql', sql: 'SELECT 1;\n\\set ON_ERROR_STOP on\n' }]), SqlParseError);
    expect(e.line).toBe(2);
  });
});

describe('checksums', () => {
  it('is the sha256 of the text, stable across builds', async () => {
    const sql = 'CREATE TABLE users (id int);\n';
    const a = await one(sql);
    const b = await one(sql);
    expect(a.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(a.checksum).toBe(b.checksum);
    expect(a.checksum).toBe(checksumOf(sql));
    // a known value, so an accidental change of the algorithm is caught
    expect(checksumOf('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('ignores CRLF vs LF, but not other edits', async () => {
    const lf = 'BEGIN;\nCREATE TABLE users (id int);\nCOMMIT;\n';
    const crlf = lf.replace(/\n/g, '\r\n');
    const a = await one(lf);
    const b = await one(crlf);
    expect(b.checksum).toBe(a.checksum);
    expect(shape(b)).toEqual(shape(a));
    expect((await one(lf.replace('users', 'users2'))).checksum).not.toBe(a.checksum);
    expect((await one(`-- a comment\n${lf}`)).checksum).not.toBe(a.checksum);
  });

  it('the set checksum changes when any file changes, is added or renamed', async () => {
    const files: MigrationFile[] = [
      { name: '001_a.sql', sql: 'CREATE TABLE a (id int);' },
      { name: '002_b.sql', sql: 'CREATE TABLE b (id int);' },
    ];
    const base = await buildMigrationSet(files);
    expect(base.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect((await buildMigrationSet([...files].reverse())).checksum).toBe(base.checksum);
    expect(base.checksum).toBe(setChecksum([...base.migrations]));
    const edited = await buildMigrationSet([files[0]!, { name: '002_b.sql', sql: 'CREATE TABLE b (id bigint);' }]);
    expect(edited.checksum).not.toBe(base.checksum);
    const added = await buildMigrationSet([...files, { name: '003_c.sql', sql: 'SELECT 1;' }]);
    expect(added.checksum).not.toBe(base.checksum);
    const renamed = await buildMigrationSet([files[0]!, { name: '002_bb.sql', sql: files[1]!.sql }]);
    expect(renamed.checksum).not.toBe(base.checksum);
    const crlf = await buildMigrationSet(files.map((f) => ({ ...f, sql: `${f.sql}\r\n` })));
    const lf = await buildMigrationSet(files.map((f) => ({ ...f, sql: `${f.sql}\n` })));
    expect(crlf.checksum).toBe(lf.checksum);
  });
});

describe('splitting SQL with the real parser', () => {
  it('nested block comments containing ; are one comment', async () => {
    const m = await one('/* outer /* inner; still inner */ still outer; */\nCREATE TABLE a (id int);\n/* ; */ CREATE TABLE b (id int);\n');
    expect(shape(m)).toEqual([
      [2, 'CREATE TABLE a'],
      [3, 'CREATE TABLE b'],
    ]);
  });

  it("semicolons inside string literals, E'' escapes and quoted identifiers do not split", async () => {
    const sql = [
      "INSERT INTO t VALUES ('a;b', 'c'';d');",
      "SELECT E'it\\'s; fine', E'back\\\\slash;';",
      'CREATE TABLE "we;ird" ("col;umn" int);',
      "-- a comment; with a semicolon\nSELECT 'done';",
    ].join('\n');
    const m = await one(sql);
    expect(m.statements).toHaveLength(4);
    expect(m.statements.map((s) => s.line)).toEqual([1, 2, 3, 5]);
    expect(m.statements[1]!.sql).toBe("SELECT E'it\\'s; fine', E'back\\\\slash;'");
    expect(m.statements[2]!.sql).toBe('CREATE TABLE "we;ird" ("col;umn" int)');
  });

  it('keeps a plpgsql body with BEGIN ... END; and COMMIT inside as one statement', async () => {
    const sql = `BEGIN;

CREATE OR REPLACE FUNCTION update_invoices_updated_at()
RETURNS TRIGGER AS $$
BEGIN
  NEW.updated_at = NOW();
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE PROCEDURE batch() LANGUAGE plpgsql AS $proc$
BEGIN
  UPDATE t SET x = 1;
  COMMIT;
  ROLLBACK;
END;
$proc$;

CREATE TRIGGER trigger_invoices_updated_at
BEFORE UPDATE ON invoices
FOR EACH ROW
EXECUTE FUNCTION update_invoices_updated_at();

DO $body$ BEGIN RAISE NOTICE 'a $$ b; c'; END $body$;

COMMIT;
`;
    const m = await one(sql);
    expect(shape(m)).toEqual([
      [3, 'CREATE OR REPLACE'],
      [11, 'CREATE PROCEDURE batch()'],
      [19, 'CREATE TRIGGER trigger_invoices_updated_at'],
      [24, 'DO $body$ BEGIN'],
    ]);
    expect(m.statements.map((s) => s.kind)).toEqual(['CreateFunctionStmt', 'CreateFunctionStmt', 'CreateTrigStmt', 'DoStmt']);
    expect(m.statements[0]!.sql).toContain('END;\n$$ LANGUAGE plpgsql');
    expect(m.statements[1]!.sql).toContain('  COMMIT;\n  ROLLBACK;\nEND;\n$proc$');
    // the COMMIT/ROLLBACK inside the procedure body are not the file's: the file is accepted
    expect(m.transactional).toBe(true);
  });

  it("splits the guide's enum example", async () => {
    const m = await one(`BEGIN;

-- Create enum type
CREATE TYPE notification_preference AS ENUM ('email', 'sms', 'push', 'none');

-- Add column
ALTER TABLE users
ADD COLUMN IF NOT EXISTS notification_preference notification_preference DEFAULT 'email';

CREATE INDEX idx_users_notification_preference ON users(notification_preference);

COMMIT;
`);
    expect(shape(m)).toEqual([
      [4, 'CREATE TYPE notification_preference'],
      [7, 'ALTER TABLE users'],
      [10, 'CREATE INDEX idx_users_notification_preference'],
    ]);
    expect(m.statements.map((s) => s.kind)).toEqual(['CreateEnumStmt', 'AlterTableStmt', 'IndexStmt']);
  });

  it('slices statements by UTF-8 byte offsets: multi-byte text before a statement is not a problem', async () => {
    const sql =
      "-- Migração: préférences ✓ 😀\nINSERT INTO t (name) VALUES ('Zoë 😀;');\nUPDATE t SET name = 'ñ' WHERE name = 'n';\n/* ü */ DELETE FROM t WHERE name = '✓';";
    const m = await one(sql);
    expect(m.statements.map((s) => s.line)).toEqual([2, 3, 4]);
    // each statement is cut exactly: a slice by UTF-16 offsets would be shifted by the multi-byte text before it
    const bare = (t: string) => t.replace(/^(\s|--[^\n]*\n|\/\*[\s\S]*?\*\/)+/, '');
    expect(m.statements.map((s) => bare(s.sql))).toEqual([
      "INSERT INTO t (name) VALUES ('Zoë 😀;')",
      "UPDATE t SET name = 'ñ' WHERE name = 'n'",
      "DELETE FROM t WHERE name = '✓'",
    ]);
  });

  it('a last statement without a semicolon is kept whole', async () => {
    const m = await one('SELECT 1;\nSELECT 2');
    expect(m.statements.map((s) => s.sql.trim())).toEqual(['SELECT 1', 'SELECT 2']);
  });

  it("numbers the statements that run (the file's BEGIN/COMMIT are not counted), and reports the line of the first token", async () => {
    const m = await one('-- header\nBEGIN;\n\n-- about a\nCREATE TABLE a (id int);\n\n\n   CREATE TABLE b (id int);\nCOMMIT;\n');
    expect(m.statements.map((s) => [s.index, s.line])).toEqual([
      [0, 5],
      [1, 8],
    ]);
  });
});

describe("the file's own transaction control", () => {
  it('drops BEGIN/COMMIT, START TRANSACTION and END: the engine owns the transaction', async () => {
    for (const sql of [
      'BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;',
      'BEGIN TRANSACTION;\nCREATE TABLE a (id int);\nCOMMIT WORK;',
      'START TRANSACTION;\nCREATE TABLE a (id int);\nEND;',
      'BEGIN; CREATE TABLE a (id int); COMMIT; BEGIN; COMMIT;',
    ]) {
      const m = await one(sql);
      expect(m.statements.map((s) => s.kind)).toEqual(['CreateStmt']);
      expect(m.transactional).toBe(true);
    }
  });

  it("keeps SAVEPOINT and RELEASE (they work inside the engine's transaction)", async () => {
    const m = await one('SAVEPOINT s;\nCREATE TABLE a (id int);\nRELEASE SAVEPOINT s;');
    expect(m.statements).toHaveLength(3);
    expect(m.transactional).toBe(true);
  });

  it('refuses ROLLBACK, ABORT and PREPARE TRANSACTION, naming the line', async () => {
    const cases: [string, number, RegExp][] = [
      ['BEGIN;\nCREATE TABLE a (id int);\nROLLBACK;\n', 3, /ROLLBACK/],
      ['CREATE TABLE a (id int);\nABORT;\n', 2, /ROLLBACK/],
      ["BEGIN;\nCREATE TABLE a (id int);\nPREPARE TRANSACTION 'x';\n", 3, /PREPARE/],
      ["COMMIT PREPARED 'x';\n", 1, /COMMIT PREPARED|COMMIT_PREPARED|COMMIT/],
    ];
    for (const [sql, line, label] of cases) {
      const e = await rejection(buildMigrationSet([{ name: '001_tx.sql', sql }]), UnsupportedStatementError);
      expect(e.file).toBe('001_tx.sql');
      expect(e.line).toBe(line);
      expect(e.statement).toMatch(label);
      expect(e.message).toContain(`001_tx.sql:${line}:`);
      expect(e.kind).toBe('input');
    }
  });
});

describe('transactional or not', () => {
  it('classifies what cannot run in a transaction block', async () => {
    const m = await one('ANALYZE t;');
    expect(m.statements[0]!.mode).toBe('transactional');
    const cases: [string, string, string][] = [
      ['CREATE INDEX CONCURRENTLY i ON t (a)', 'non-transactional', 'CREATE INDEX CONCURRENTLY'],
      ['CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)', 'non-transactional', 'CREATE INDEX CONCURRENTLY'],
      ['DROP INDEX CONCURRENTLY i', 'non-transactional', 'DROP INDEX CONCURRENTLY'],
      ['DROP INDEX CONCURRENTLY IF EXISTS i', 'non-transactional', 'DROP INDEX CONCURRENTLY'],
      ['REINDEX INDEX CONCURRENTLY i', 'non-transactional', 'REINDEX CONCURRENTLY'],
      ['REINDEX TABLE CONCURRENTLY t', 'non-transactional', 'REINDEX CONCURRENTLY'],
      ['REINDEX (VERBOSE) TABLE CONCURRENTLY t', 'non-transactional', 'REINDEX CONCURRENTLY'],
      ['VACUUM t', 'non-transactional', 'VACUUM'],
      ['VACUUM (ANALYZE) t', 'non-transactional', 'VACUUM'],
      ['VACUUM FULL t', 'non-transactional', 'VACUUM'],
      ['ANALYZE t', 'transactional', 'ANALYZE'],
      ['REINDEX TABLE t', 'transactional', 'REINDEX'],
      ['CREATE INDEX i ON t (a)', 'transactional', 'CREATE INDEX'],
      ['DROP INDEX i', 'transactional', 'DROP'],
      ['ALTER TABLE p DETACH PARTITION c CONCURRENTLY', 'non-transactional', 'ALTER TABLE DETACH PARTITION CONCURRENTLY'],
      ['ALTER TABLE p DETACH PARTITION c', 'transactional', 'ALTER TABLE'],
    ];
    for (const [sql, mode, label] of cases) {
      const s = (await one(sql)).statements[0]!;
      expect({ sql, mode: s.mode, label: s.label }).toEqual({ sql, mode, label });
    }
  });

  it('a file of only CREATE INDEX CONCURRENTLY statements is non-transactional', async () => {
    const m = await one(
      '-- Migration: indexes without blocking writes\nCREATE INDEX CONCURRENTLY idx_a ON t (a);\nCREATE INDEX CONCURRENTLY idx_b ON t (b);\n',
    );
    expect(m.transactional).toBe(false);
    expect(m.statements.map((s) => s.line)).toEqual([2, 3]);
  });

  it('refuses a file mixing them with transactional statements, naming the line', async () => {
    const sql = 'BEGIN;\nALTER TABLE t ADD COLUMN c int;\n\nCREATE INDEX CONCURRENTLY idx_c ON t (c);\nCOMMIT;\n';
    const e = await rejection(buildMigrationSet([{ name: '001_mixed.sql', sql }]), MixedTransactionModeError);
    expect(e.file).toBe('001_mixed.sql');
    expect(e.nonTransactional).toEqual([{ line: 4, kind: 'CREATE INDEX CONCURRENTLY' }]);
    expect(e.message).toContain('001_mixed.sql');
    expect(e.message).toContain('CREATE INDEX CONCURRENTLY at line 4');
    expect(e.kind).toBe('input');
    // even wrapped in the guide's BEGIN/COMMIT alone, a CIC is fine (BEGIN/COMMIT are dropped)
    const alone = await one('BEGIN;\nCREATE INDEX CONCURRENTLY idx_c ON t (c);\nCOMMIT;\n');
    expect(alone.transactional).toBe(false);
  });

  it('a mixed file refuses the whole set, so nothing of it can run', async () => {
    await rejection(
      buildMigrationSet([
        { name: '001_ok.sql', sql: 'CREATE TABLE t (c int);' },
        { name: '002_mixed.sql', sql: 'VACUUM t;\nANALYZE t;' },
      ]),
      MixedTransactionModeError,
    );
  });
});

describe('the -- flotilla:validate header', () => {
  it('reads options', async () => {
    const m = await one('-- Migration: trim users\n-- flotilla:validate allowRowChanges=true allowIndexDrop=false\nDELETE FROM users WHERE id <= 5;\n');
    expect(m.validation).toEqual({ enabled: undefined, options: { allowRowChanges: true, allowIndexDrop: false } });
  });

  it('reads off and on, and CRLF line ends', async () => {
    expect((await one('-- flotilla:validate off\nSELECT 1;')).validation).toEqual({ enabled: false, options: {} });
    expect((await one('--flotilla:validate on\r\nSELECT 1;\r\n')).validation).toEqual({ enabled: true, options: {} });
    expect((await one('-- flotilla:validate allowTableDrop=true\r\nSELECT 1;\r\n')).validation.options).toEqual({ allowTableDrop: true });
  });

  it('no header: nothing set', async () => {
    expect((await one('SELECT 1;')).validation).toEqual({ enabled: undefined, options: {} });
  });

  it('refuses an unknown option or value (a typo must not leave a guard on or off)', async () => {
    for (const header of ['-- flotilla:validate allowRowChange=true', '-- flotilla:validate allowRowChanges=yes', '-- flotilla:validate disabled']) {
      const e = await rejection(buildMigrationSet([{ name: '007_typo.sql', sql: `-- Migration: x\n${header}\nSELECT 1;` }]), ConfigError);
      expect(e.message).toContain('007_typo.sql:2');
      expect(e.message).toContain(header.split(' ').pop()!);
      expect(e).toBeInstanceOf(FlotillaError);
      expect(e.kind).toBe('input');
    }
  });
});

describe("the repository's own migrations/ directory", () => {
  it("loads as 8 transactional migrations in order, with the guide's BEGIN/COMMIT removed", async () => {
    const set = await loadMigrationDir(REPO_MIGRATIONS);
    expect(set.migrations.map((m) => m.name)).toEqual(GUIDE_MIGRATIONS);
    expect(set.migrations.every((m) => m.transactional)).toBe(true);
    for (const m of set.migrations) {
      expect(m.statements.length).toBeGreaterThan(0);
      expect(m.statements.some((s) => s.kind === 'TransactionStmt')).toBe(false);
    }
    const invoices = set.migrations[3]!;
    expect(invoices.statements.map((s) => s.kind)).toEqual(['CreateStmt', 'IndexStmt', 'IndexStmt', 'IndexStmt', 'CreateFunctionStmt', 'CreateTrigStmt']);
    expect(set.checksum).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('a frozen set as parsed JSON (what workers load, without the parser)', () => {
  it('round-trips through JSON and refuses a file whose text no longer matches its checksum', async () => {
    const set = await loadMigrationDir(REPO_MIGRATIONS);
    const json = JSON.parse(JSON.stringify(set.migrations.map(migrationToJSON)));
    const back = migrationSetFromJSON(json, set.checksum);
    expect(back.checksum).toBe(set.checksum);
    expect(back.migrations.map((m) => [m.name, m.version, m.statements.length, m.transactional])).toEqual(
      set.migrations.map((m) => [m.name, m.version, m.statements.length, m.transactional]),
    );
    expect(back.migrations[0]!.effects).toEqual(set.migrations[0]!.effects);
    json[1].sql += '\nDROP TABLE users;';
    expect(() => migrationSetFromJSON(json, set.checksum)).toThrow(/002_create_contracts_table\.sql: its text does not match its checksum/);
    // files without their parsed form are refused: a worker never falls back to the parser
    expect(() => migrationSetFromJSON([{ name: '001_a.sql', sql: 'SELECT 1' } as never], set.checksum)).toThrow(/001_a\.sql has no parsed form/);
  });

  it('our own control files run as one batch each, with the same checksums as parsed', async () => {
    const files = [{ name: '001_a.sql', sql: '-- flotilla:validate off\nCREATE TABLE a (id int);\nCREATE TABLE b (id int);' }];
    const trusted = trustedMigrationSet(files);
    const parsed = await buildMigrationSet(files);
    expect(trusted.checksum).toBe(parsed.checksum);
    expect(trusted.migrations[0]!.statements).toHaveLength(1);
    expect(trusted.migrations[0]!.validation.enabled).toBe(false);
  });
});
