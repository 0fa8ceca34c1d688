/** A migration whose file name is not UTF-8 is refused for that reason, not as "a symlink to nothing" (found by the outside trial). */
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readMigrationFiles } from '../../src/adapters/fs-source.js';

const dir = mkdtempSync(join(tmpdir(), 'flotilla-fname-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('file names', () => {
  it('a Latin-1 byte in the name: refused, saying the name is not UTF-8', async () => {
    const sub = mkdtempSync(join(dir, 'l1-'));
    writeFileSync(Buffer.concat([Buffer.from(`${sub}/001_caf`), Buffer.from([0xe9]), Buffer.from('.sql')]), 'CREATE TABLE t (id int);');
    await expect(readMigrationFiles(sub)).rejects.toThrow(/001_caf\uFFFD\.sql \(its name is not valid UTF-8: rename the file\)/);
  });

  it('a dangling symlink is still reported as one', async () => {
    const sub = mkdtempSync(join(dir, 'dl-'));
    symlinkSync(join(sub, 'nowhere.sql'), join(sub, '001_a.sql'));
    await expect(readMigrationFiles(sub)).rejects.toThrow(/001_a\.sql \(a symlink to nothing\)/);
  });
});
