/**
 * Issue 9, "Bytes on disk": a migration is its version number (promise 1). Rows of the tracking
 * table match files by the number in their name, so a file renamed or zero-padded after it was
 * applied is applied, reported as renamed, and never pending again.
 */
import { describe, expect, it } from 'vitest';
import { ChangedMigrationError } from '../../src/core/errors.js';
import { buildMigrationSet } from '../../src/core/migration-set.js';
import { plan, type AppliedRow } from '../../src/core/plan.js';

const row = (name: string, checksum: string | null): AppliedRow => ({ name, checksum, appliedAt: null, durationMs: null, appliedBy: null });
const names = (ms: { name: string }[]) => ms.map((m) => m.name);

describe('a migration is its version number', () => {
  it.each([
    ['zero-padded', '1_seed.sql', '001_seed.sql'],
    ['padding removed', '0001_seed.sql', '1_seed.sql'],
    ['described differently', '001_seed.sql', '001_seed_users.sql'],
  ])('%s (%s applied, %s on disk): applied, reported renamed, not pending', async (_what, applied, onDisk) => {
    const set = await buildMigrationSet([
      { name: onDisk, sql: 'INSERT INTO users VALUES (1);' },
      { name: '002_next.sql', sql: 'CREATE TABLE next (id int);' },
    ]);
    const p = plan(set, [row(applied, set.migrations[0]!.checksum)]);
    expect(names(p.pending)).toEqual(['002_next.sql']);
    expect(p.applied.map((a) => [a.migration.name, a.row.name])).toEqual([[onDisk, applied]]);
    expect(p.renamed).toEqual([{ version: 1n, from: applied, to: onDisk }]);
    expect(p.missing).toEqual([]);
    expect(p.changed).toEqual([]);
    expect(p.outOfOrder).toEqual([]);
  });

  it('renamed and edited: the checksum check still applies, naming both names', async () => {
    const set = await buildMigrationSet([{ name: '001_seed.sql', sql: 'INSERT INTO users VALUES (2);' }]);
    const p = plan(set, [row('1_seed.sql', 'e'.repeat(64))]);
    expect(p.changed).toEqual([{ name: '001_seed.sql', applied: 'e'.repeat(64), current: set.migrations[0]!.checksum, recordedAs: '1_seed.sql' }]);
    expect(new ChangedMigrationError(p.changed).message).toContain('001_seed.sql (recorded as 1_seed.sql)');
    expect(p.pending).toEqual([]);
  });

  it("a version recorded under two names (applied twice before): the row of the file's own name is the match, the other a duplicate (not a rename)", async () => {
    const set = await buildMigrationSet([{ name: '001_seed.sql', sql: 'SELECT 1;' }]);
    const c = set.migrations[0]!.checksum;
    const p = plan(set, [row('1_seed.sql', c), row('001_seed.sql', c)]);
    expect(p.applied.map((a) => a.row.name)).toEqual(['001_seed.sql']);
    expect(p.renamed).toEqual([]);
    expect(p.duplicates).toEqual([{ version: 1n, kept: '001_seed.sql', extra: ['1_seed.sql'] }]);
    expect(p.missing).toEqual([]);
  });

  it('rows whose version has no file, or whose name has no version, are missing; out-of-order uses versions', async () => {
    const set = await buildMigrationSet([
      { name: '002_b.sql', sql: 'SELECT 2;' },
      { name: '003_c.sql', sql: 'SELECT 3;' },
    ]);
    const p = plan(set, [row('1_a.sql', null), row('03_c.sql', null), row('legacy-init', null)]);
    expect(names(p.missing)).toEqual(['1_a.sql', 'legacy-init']);
    expect(names(p.pending)).toEqual(['002_b.sql']);
    expect(names(p.outOfOrder)).toEqual(['002_b.sql']);
    expect(p.renamed).toEqual([{ version: 3n, from: '03_c.sql', to: '003_c.sql' }]);
  });
});
