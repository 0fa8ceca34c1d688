/**
 * Issue 9 follow-up: a version recorded by several rows of the tracking table
 * (`1_a.sql` and `001_a.sql`, e.g. from an older runner) is one applied
 * migration (promise 1): not counted twice, not a false rename, not missing,
 * never pending.
 */
import { describe, expect, it } from 'vitest';
import { buildMigrationSet } from '../../src/core/migration-set.js';
import { plan, type AppliedRow } from '../../src/core/plan.js';

const row = (name: string, checksum: string | null, at: number): AppliedRow => ({ name, checksum, appliedAt: new Date(at), durationMs: null, appliedBy: null });

describe('a version recorded twice', () => {
  it('under the file name and a padded twin: one applied migration, a duplicate, no rename', async () => {
    const set = await buildMigrationSet([
      { name: '001_a.sql', sql: 'CREATE TABLE a (id int);' },
      { name: '002_b.sql', sql: 'CREATE TABLE b (id int);' },
    ]);
    const [a, b] = set.migrations;
    const p = plan(set, [row('001_a.sql', a!.checksum, 2), row('002_b.sql', b!.checksum, 3), row('1_a.sql', a!.checksum, 1)]);
    expect(p.applied.map((x) => x.row.name)).toEqual(['001_a.sql', '002_b.sql']);
    expect(p.renamed).toEqual([]);
    expect(p.duplicates).toEqual([{ version: 1n, kept: '001_a.sql', extra: ['1_a.sql'] }]);
    expect(p.missing).toEqual([]);
    expect(p.pending).toEqual([]);
  });

  it("under two names, neither the file's: renamed once (from the earliest row), the other a duplicate", async () => {
    const set = await buildMigrationSet([{ name: '0001_a.sql', sql: 'CREATE TABLE a (id int);' }]);
    const c = set.migrations[0]!.checksum;
    const p = plan(set, [row('001_a.sql', c, 5), row('1_a.sql', c, 1)]);
    expect(p.applied.map((x) => x.row.name)).toEqual(['1_a.sql']);
    expect(p.renamed).toEqual([{ version: 1n, from: '1_a.sql', to: '0001_a.sql' }]);
    expect(p.duplicates).toEqual([{ version: 1n, kept: '1_a.sql', extra: ['001_a.sql'] }]);
    expect(p.pending).toEqual([]);
  });
});
