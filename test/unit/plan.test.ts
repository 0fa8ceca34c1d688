import { beforeAll, describe, expect, it } from 'vitest';
import { buildMigrationSet, type MigrationSet } from '../../src/core/migration-set.js';
import { plan, type AppliedRow } from '../../src/core/plan.js';

let set: MigrationSet;
beforeAll(async () => {
  set = await buildMigrationSet([
    { name: '001_users.sql', sql: 'CREATE TABLE users (id int);' },
    { name: '002_contracts.sql', sql: 'CREATE TABLE contracts (id int);' },
    { name: '003_audit.sql', sql: 'CREATE TABLE audit (id int);' },
    { name: '010_invoices.sql', sql: 'CREATE TABLE invoices (id int);' },
  ]);
});

const checksum = (name: string) => set.migrations.find((m) => m.name === name)?.checksum ?? 'e'.repeat(64);

function row(name: string, over: Partial<AppliedRow> = {}): AppliedRow {
  return { name, checksum: checksum(name), appliedAt: new Date('2025-10-25T10:00:00Z'), durationMs: 12, appliedBy: 'cli test@host', ...over };
}

const names = (ms: { name: string }[]) => ms.map((m) => m.name);

describe('plan', () => {
  it('nothing applied: everything pending, in order', () => {
    const p = plan(set, []);
    expect(p.applied).toEqual([]);
    expect(names(p.pending)).toEqual(['001_users.sql', '002_contracts.sql', '003_audit.sql', '010_invoices.sql']);
    expect(p.changed).toEqual([]);
    expect(p.missing).toEqual([]);
    expect(p.outOfOrder).toEqual([]);
  });

  it('applied and pending, with the rows attached', () => {
    const rows = [row('001_users.sql'), row('002_contracts.sql')];
    const p = plan(set, rows);
    expect(p.applied.map((a) => a.migration.name)).toEqual(['001_users.sql', '002_contracts.sql']);
    expect(p.applied[0]!.row).toBe(rows[0]);
    expect(names(p.pending)).toEqual(['003_audit.sql', '010_invoices.sql']);
    expect(p.outOfOrder).toEqual([]);
  });

  it('everything applied: nothing pending', () => {
    const p = plan(
      set,
      set.migrations.map((m) => row(m.name)),
    );
    expect(p.pending).toEqual([]);
    expect(p.applied).toHaveLength(4);
  });

  it('changed: an applied file whose checksum differs, with both checksums', () => {
    const p = plan(set, [row('001_users.sql'), row('002_contracts.sql', { checksum: 'f'.repeat(64) })]);
    expect(p.changed).toEqual([{ name: '002_contracts.sql', applied: 'f'.repeat(64), current: checksum('002_contracts.sql') }]);
    // still counted as applied, not pending
    expect(p.applied.map((a) => a.migration.name)).toContain('002_contracts.sql');
    expect(names(p.pending)).toEqual(['003_audit.sql', '010_invoices.sql']);
  });

  it("a row written by the guide's older runner (no checksum) is applied, not changed", () => {
    const old = row('001_users.sql', { checksum: null, appliedAt: null, durationMs: null, appliedBy: null });
    const p = plan(set, [old]);
    expect(p.changed).toEqual([]);
    expect(p.applied.map((a) => a.migration.name)).toEqual(['001_users.sql']);
    expect(names(p.pending)).toEqual(['002_contracts.sql', '003_audit.sql', '010_invoices.sql']);
  });

  it('missing: recorded as applied, no file any more', () => {
    const gone = row('004_dropped_file.sql', { checksum: 'a'.repeat(64) });
    const p = plan(set, [row('001_users.sql'), gone]);
    expect(p.missing).toEqual([gone]);
    expect(p.applied.map((a) => a.migration.name)).toEqual(['001_users.sql']);
    expect(p.changed).toEqual([]);
  });

  it('out of order: pending but numbered below the newest applied one', () => {
    const p = plan(set, [row('001_users.sql'), row('010_invoices.sql')]);
    expect(names(p.pending)).toEqual(['002_contracts.sql', '003_audit.sql']);
    expect(names(p.outOfOrder)).toEqual(['002_contracts.sql', '003_audit.sql']);
    // a missing file's number does not make later ones out of order
    const q = plan(set, [row('001_users.sql'), row('099_gone.sql')]);
    expect(q.outOfOrder).toEqual([]);
  });

  it('matches rows by number (promise 1): 1_users.sql beside 001_users.sql is a duplicate row of it, not a missing file nor a rename', () => {
    const p = plan(set, [row('001_users.sql'), { ...row('001_users.sql'), name: '1_users.sql' }]);
    expect(p.applied.map((a) => a.migration.name)).toEqual(['001_users.sql']);
    expect(p.missing).toEqual([]);
    expect(p.renamed).toEqual([]);
    expect(p.duplicates).toEqual([{ version: 1n, kept: '001_users.sql', extra: ['1_users.sql'] }]);
  });
});
