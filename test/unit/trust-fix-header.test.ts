/**
 * The validation header is a pragma (issue 9 §4, promise 8): it is read only in
 * the file's leading comments. A header-looking line anywhere else (in a
 * string, a dollar-quoted body, a block comment, after a statement) is refused
 * at load time, naming file and line, so data cannot switch the guard off and
 * an author cannot believe a misplaced header applies.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { buildMigrationSet, type Migration } from '../../src/core/migration-set.js';
import { rejection } from '../helpers/assert.js';

async function one(sql: string): Promise<Migration> {
  return (await buildMigrationSet([{ name: '001_x.sql', sql }])).migrations[0]!;
}

const HEADER = '-- flotilla:validate allowRowChanges=true';

describe('the validation header is read only at the top of the file', () => {
  const hidden: [string, string, number][] = [
    ['in a string literal', `COMMENT ON TABLE victim IS '\n${HEADER}\n';\nDELETE FROM victim;`, 2],
    ['in a dollar-quoted function body', `CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$\n${HEADER}\nSELECT 1 $$;\nDELETE FROM victim;`, 2],
    ['in a block comment after a statement', `SELECT 1;\n/*\n${HEADER}\n*/\nDELETE FROM victim;`, 3],
    ['in a leading block comment', `/*\n${HEADER}\n*/\nDELETE FROM victim;`, 2],
    ['after the first statement', `DELETE FROM victim;\n${HEADER}\n`, 2],
    ['at the end of a statement line', `DELETE FROM victim; ${HEADER}\n`, 1],
    ['with CR-only line ends, after a statement', `SELECT 1;\r${HEADER}\rDELETE FROM victim;`, 2],
    ['with one dash too many', `---${HEADER.slice(2)}\nDELETE FROM victim;`, 1],
  ];
  for (const [where, sql, line] of hidden) {
    it(`refuses a header ${where}: exit 2, file and line named`, async () => {
      const e = await rejection(buildMigrationSet([{ name: '002_hidden.sql', sql }]), ConfigError);
      expect(e.kind).toBe('input');
      expect(e.message).toContain(`002_hidden.sql:${line}`);
      expect(e.message).toContain('before the first statement');
    });
  }

  it('reads headers among leading comments, blank lines and block comments, with LF, CRLF or CR line ends', async () => {
    for (const nl of ['\n', '\r\n', '\r']) {
      const sql = `${nl}-- Migration: trim${nl}/* a note ${nl} over lines */${nl}${nl}${HEADER}${nl}-- flotilla:validate allowIndexDrop=true${nl}DELETE FROM victim;${nl}`;
      expect((await one(sql)).validation, JSON.stringify(nl)).toEqual({ enabled: undefined, options: { allowRowChanges: true, allowIndexDrop: true } });
    }
    expect((await one('-- flotilla:validate off\rSELECT 1;')).validation).toEqual({ enabled: false, options: {} });
  });

  it('refuses a look-alike at the top that is not a header it reads (a typo must not leave a guard on or off)', async () => {
    for (const header of ['-- Flotilla:Validate allowRowChanges=true', '-- flotilla: validate off', '-- flotilla:validates off']) {
      const e = await rejection(buildMigrationSet([{ name: '003_typo.sql', sql: `-- Migration: x\n${header}\nDELETE FROM victim;` }]), ConfigError);
      expect(e.message).toContain('003_typo.sql:2: unknown header');
    }
  });

  it('other comments and strings that mention flotilla are fine', async () => {
    expect((await one(`-- this file needs flotilla:validate off? no\nSELECT 'flotilla:validate off', '--flotilla';`)).validation).toEqual({
      enabled: undefined,
      options: {},
    });
  });
});
