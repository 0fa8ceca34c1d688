/**
 * Issue 9, "Bytes on disk": a migration's content is its bytes (promise 2), what is named like a
 * migration is read or refused by name (promises 9, 11), and the parser is never handed more
 * than it can take. Files are written to a temp directory and read through the fs source.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadMigrationDir } from '../../src/adapters/fs-source.js';
import { checksumOf } from '../../src/core/checksum.js';
import { InvalidEncodingError, MigrationTooLargeError, NotAMigrationFileError, ParserLimitError, SqlParseError } from '../../src/core/errors.js';
import { MAX_MIGRATION_BYTES } from '../../src/core/file-bytes.js';
import { buildMigrationSet } from '../../src/core/migration-set.js';
import { splitStatements, loadParser } from '../../src/core/statements.js';
import { rejection } from '../helpers/assert.js';

const root = mkdtempSync(join(tmpdir(), 'flotilla-trust-bytes-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
/** A fresh migrations directory holding these files (string = UTF-8 text, Buffer = raw bytes). */
function dir(files: Record<string, string | Buffer>): string {
  const d = join(root, `d${n++}`);
  mkdirSync(d);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(d, name), content);
  return d;
}
const latin1 = (s: string) => Buffer.from(s, 'latin1');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('bytes that are not UTF-8 are refused before anything runs', () => {
  it("a Latin-1 'Café' names the file, the line and the byte offset", async () => {
    const d = dir({
      '001_ok.sql': 'CREATE TABLE a (id int);\n',
      '002_cafe.sql': latin1("CREATE TABLE b (name text);\nINSERT INTO b VALUES ('Caf\xe9');\n"),
    });
    const e = await rejection(loadMigrationDir(d), InvalidEncodingError);
    expect(e.kind).toBe('input');
    expect(e.problems).toEqual([{ file: '002_cafe.sql', line: 2, byteOffset: 28 + 26, reason: 'byte 0xE9 followed by 0x27 is not valid UTF-8' }]);
    expect(e.message).toContain('002_cafe.sql:2');
    expect(e.message).toContain('byte offset 54');
    expect(e.hint).toMatch(/UTF-8/);
  });

  it('two files differing only in invalid bytes are not one checksum: both refused, each named', async () => {
    const d = dir({ '001_a.sql': latin1("SELECT 'Caf\xe9';"), '002_b.sql': latin1("SELECT 'Caf\xe8';") });
    const e = await rejection(loadMigrationDir(d), InvalidEncodingError);
    expect(e.problems.map((p) => [p.file, p.line, p.byteOffset])).toEqual([
      ['001_a.sql', 1, 11],
      ['002_b.sql', 1, 11],
    ]);
  });

  it.each([
    ['an overlong encoding of "/"', Buffer.from([0xc0, 0xaf]), 'byte 0xC0 is not valid UTF-8'],
    ['a UTF-16 surrogate encoded as UTF-8', Buffer.from([0xed, 0xa0, 0x80]), 'byte 0xED followed by 0xA0 is not valid UTF-8'],
    ['a sequence cut short', Buffer.from([0xe2, 0x82]), 'byte 0xE2 followed by 0x0A is not valid UTF-8'],
    ['a NUL byte (the parser would stop reading there)', Buffer.from([0x00]), 'a NUL byte (0x00), which Postgres cannot take in SQL'],
  ])('%s', async (_what, bad, reason) => {
    const d = dir({ '001_x.sql': Buffer.concat([Buffer.from('CREATE TABLE a (id int);\n-- '), bad, Buffer.from('\nDROP TABLE important;\n')]) });
    const e = await rejection(loadMigrationDir(d), InvalidEncodingError);
    expect(e.problems).toEqual([{ file: '001_x.sql', line: 2, byteOffset: 28, reason }]);
  });

  it('a sequence cut short by the end of the file', async () => {
    const e = await rejection(loadMigrationDir(dir({ '001_x.sql': Buffer.from([0x53, 0x45, 0x4c, 0xe2, 0x82]) })), InvalidEncodingError);
    expect(e.problems).toEqual([{ file: '001_x.sql', line: 1, byteOffset: 3, reason: 'byte 0xE2 starts a UTF-8 sequence cut short by the end of the file' }]);
  });

  it('text given to the library: a NUL or a lone surrogate is refused the same way', async () => {
    const nul = await rejection(buildMigrationSet([{ name: '001_x.sql', sql: 'SELECT 1;\n\0DROP TABLE t;' }]), InvalidEncodingError);
    expect(nul.problems[0]).toMatchObject({ file: '001_x.sql', line: 2, byteOffset: 10 });
    const lone = await rejection(buildMigrationSet([{ name: '001_x.sql', sql: "SELECT 'é\ud800';" }]), InvalidEncodingError);
    expect(lone.problems[0]).toMatchObject({ file: '001_x.sql', line: 1, byteOffset: 10 });
  });

  it('valid multi-byte text (é, emoji, CJK) reads as written', async () => {
    const sql = "INSERT INTO t VALUES ('Café 🚀 東京');\n";
    const set = await loadMigrationDir(dir({ '001_x.sql': `CREATE TABLE t (v text);\n${sql}` }));
    expect(set.migrations[0]!.statements[1]!.sql).toContain('Café 🚀 東京');
  });
});

describe('the checksum covers the raw bytes', () => {
  it('equals sha256 of the file on disk', async () => {
    const bytes = Buffer.from('CREATE TABLE café (id int);\nINSERT INTO café VALUES (1); -- 🚀\n', 'utf8');
    const set = await loadMigrationDir(dir({ '001_x.sql': bytes }));
    expect(set.migrations[0]!.checksum).toBe(sha256(bytes));
  });

  it('a checksum recorded by the previous version (over the decoded text) still matches an unchanged file', async () => {
    // what flotilla before issue 9 recorded for this file (readFile 'utf8', CRLF -> LF, sha256 of the text)
    const recorded = '1160d0bff2dd37526bf9b29a60517cfe20ab7c88432a80949777c33587ab8d16';
    const text = "CREATE TABLE users (id int, name text);\nINSERT INTO users VALUES (1, 'Zoë');\n";
    const set = await loadMigrationDir(dir({ '001_x.sql': text, '002_crlf.sql': text.replace(/\n/g, '\r\n') }));
    expect(set.migrations.map((m) => m.checksum)).toEqual([recorded, recorded]);
    expect(checksumOf(text)).toBe(recorded);
  });
});

describe('a UTF-8 byte order mark is stripped, as psql does', () => {
  it('a file starting with a BOM parses, its first statement on line 1, checksum as without the BOM', async () => {
    const body = 'CREATE TABLE t (id int);\nCREATE INDEX t_id ON t (id);\n';
    const set = await loadMigrationDir(
      dir({ '001_bom.sql': Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(body)]), '002_plain.sql': body.replace(/t\b/g, 'u') }),
    );
    const m = set.migrations[0]!;
    expect(m.sql).toBe(body);
    expect(m.statements.map((s) => [s.line, s.kind])).toEqual([
      [1, 'CreateStmt'],
      [2, 'IndexStmt'],
    ]);
    expect(m.checksum).toBe(checksumOf(body));
  });

  it('text given to the library with a leading U+FEFF: the same', async () => {
    const set = await buildMigrationSet([{ name: '001_bom.sql', sql: '\ufeffCREATE TABLE t (id int);' }]);
    expect(set.migrations[0]!.statements[0]!.kind).toBe('CreateStmt');
    expect(set.migrations[0]!.checksum).toBe(checksumOf('CREATE TABLE t (id int);'));
  });
});

describe('what is named like a migration is read or refused by name, never skipped', () => {
  it('a symlink to a file is followed', async () => {
    const target = join(root, `shared-${n}.sql`);
    writeFileSync(target, 'CREATE TABLE linked (id int);');
    const d = dir({ '001_a.sql': 'CREATE TABLE a (id int);' });
    symlinkSync(target, join(d, '002_linked.sql'));
    const set = await loadMigrationDir(d);
    expect(set.migrations.map((m) => m.name)).toEqual(['001_a.sql', '002_linked.sql']);
    expect(set.migrations[1]!.statements[0]!.sql).toContain('linked');
  });

  it('a dangling symlink, a directory and a FIFO named like migrations: refused, each named', async () => {
    const d = dir({ '001_a.sql': 'CREATE TABLE a (id int);', 'README.md': 'notes' });
    symlinkSync(join(root, 'nowhere.sql'), join(d, '002_gone.sql'));
    mkdirSync(join(d, '003_folder.sql'));
    execFileSync('mkfifo', [join(d, '004_pipe.sql')]);
    mkdirSync(join(d, 'archive')); // a folder not named like a migration is still ignored
    const e = await rejection(loadMigrationDir(d), NotAMigrationFileError);
    expect(e.kind).toBe('input');
    expect(e.entries).toEqual([
      { file: '002_gone.sql', what: 'a symlink to nothing' },
      { file: '003_folder.sql', what: 'a directory' },
      { file: '004_pipe.sql', what: 'not a regular file' },
    ]);
  });
});

describe('the parser is never handed more than it can take', () => {
  it(`a file over ${MAX_MIGRATION_BYTES} bytes: a size error naming it, before parsing`, async () => {
    const big = `CREATE TABLE t (v text);\n${"INSERT INTO t VALUES ('x');\n".repeat(Math.ceil(MAX_MIGRATION_BYTES / 28) + 1)}`;
    const e = await rejection(loadMigrationDir(dir({ '001_ok.sql': 'SELECT 1;', '002_big.sql': big })), MigrationTooLargeError);
    expect(e).toMatchObject({ kind: 'input', file: '002_big.sql', bytes: Buffer.byteLength(big), limit: MAX_MIGRATION_BYTES });
    expect(e.message).toMatch(/002_big\.sql is 4 MiB .* at most 4 MiB/);
    const lib = await rejection(buildMigrationSet([{ name: '002_big.sql', sql: big }]), MigrationTooLargeError);
    expect(lib.file).toBe('002_big.sql');
  });

  it('the densest input just under the limit parses (the limit is below where the parser dies)', async () => {
    const sql = `SELECT ${'1,'.repeat((MAX_MIGRATION_BYTES - 10) / 2)}1;`;
    expect(Buffer.byteLength(sql)).toBeLessThanOrEqual(MAX_MIGRATION_BYTES);
    const set = await buildMigrationSet([{ name: '001_dense.sql', sql }]);
    expect(set.migrations[0]!.statements).toHaveLength(1);
  }, 120_000);

  it('many statements with multi-byte text before them: each statement its own text and line', async () => {
    await loadParser();
    const lines = Array.from({ length: 3000 }, (_, i) => `INSERT INTO t VALUES (${i}, 'Zoë 🚀 ${i}');`);
    const r = splitStatements(`/* café */\n${lines.join('\n-- é\n')}`);
    if (!('statements' in r)) throw new Error(r.error.message);
    expect(r.statements).toHaveLength(3000);
    for (const i of [0, 1, 1500, 2999]) {
      expect(r.statements[i]!.line).toBe(2 + 2 * i);
      expect(r.statements[i]!.sql.trim().endsWith(`'Zoë 🚀 ${i}')`)).toBe(true);
    }
  });
});

describe('more of the same class', () => {
  it('a UTF-16 file: refused, saying it is UTF-16', async () => {
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('CREATE TABLE t (id int);', 'utf16le')]);
    const e = await rejection(loadMigrationDir(dir({ '001_x.sql': utf16 })), InvalidEncodingError);
    expect(e.problems).toEqual([{ file: '001_x.sql', line: 1, byteOffset: 0, reason: 'a UTF-16 byte order mark: the file is UTF-16, not UTF-8' }]);
  });

  it('files not named like migrations are not read: a Latin-1 README and a FIFO beside the migrations are ignored', async () => {
    const d = dir({ '001_a.sql': 'CREATE TABLE a (id int);', 'README.txt': latin1('Caf\xe9') });
    execFileSync('mkfifo', [join(d, 'data.pipe')]); // reading it would block for ever
    const set = await loadMigrationDir(d);
    expect(set.migrations.map((m) => m.name)).toEqual(['001_a.sql']);
  });
});

describe('the parser giving up is not a syntax error', () => {
  it.each([
    ['an expression nested 200,000 deep', `SELECT ${'('.repeat(200_000)}1${')'.repeat(200_000)};`],
    ['a sum of a million terms (its tree overflows the JS stack)', `SELECT ${'1+'.repeat(1_000_000)}1;`],
  ])(
    '%s: a limit error naming the file, exit 2',
    async (_what, sql) => {
      const e = await rejection(buildMigrationSet([{ name: '001_deep.sql', sql: `SELECT 1;\n${sql}` }]), ParserLimitError);
      expect(e.kind).toBe('input');
      expect(e.message).toMatch(/^001_deep\.sql:\d+: a statement too large or too deeply nested for the SQL parser/);
      expect(e.message).not.toMatch(/syntax error/);
    },
    60_000,
  );

  it('a real syntax error is still one', async () => {
    await rejection(buildMigrationSet([{ name: '001_x.sql', sql: 'SELEC 1;' }]), SqlParseError);
  });
});
