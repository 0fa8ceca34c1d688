/**
 * The pure parts of drift, baseline and revert: down files in a migration set,
 * which migrations a revert undoes, what a baseline records, a revert rollout's
 * plan, and the drift report (normalised items, differences, majority).
 */
import { describe, expect, it } from 'vitest';
import { baselineAppliedBy, isBaselineRow, parseUpTo, planBaseline } from '../../src/core/baseline.js';
import { describeDifferences, driftReport, fingerprintOf, normaliseItems, type TenantSchema } from '../../src/core/drift.js';
import {
  BaselineRefusedError,
  ChangedMigrationError,
  DownWithoutUpError,
  DuplicateVersionError,
  MissingDownError,
  RevertBlockedError,
  RevertRefusedError,
} from '../../src/core/errors.js';
import { jobKindOf } from '../../src/core/jobs.js';
import { buildMigrationSet, type MigrationSet } from '../../src/core/migration-set.js';
import type { AppliedRow } from '../../src/core/plan.js';
import { rolloutAppliedBy } from '../../src/core/rollout-applied.js';
import { pairsOf, planRevert, planRolloutRevert } from '../../src/core/revert.js';

/** The error a call throws or a promise rejects with (undefined when it does not). */
function rejection(f: (() => unknown) | Promise<unknown>): any {
  if (typeof f !== 'function')
    return f.then(
      () => undefined,
      (e: unknown) => e,
    );
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

const FILES = {
  '001_users.sql': 'CREATE TABLE users (id int);',
  '001_users.down.sql': 'DROP TABLE users;',
  '002_note.sql': 'ALTER TABLE users ADD COLUMN note text;',
  '002_note.down.sql': 'ALTER TABLE users DROP COLUMN note;',
  '003_idx.sql': 'CREATE INDEX CONCURRENTLY users_note ON users (note);',
};

async function set(files: Record<string, string> = FILES): Promise<MigrationSet> {
  return buildMigrationSet(Object.entries(files).map(([name, sql]) => ({ name, sql })));
}

function row(s: MigrationSet, name: string, appliedBy = 'cli me@host', checksum?: string): AppliedRow {
  const m = s.migrations.find((x) => x.name === name);
  return { name, checksum: checksum ?? m?.checksum ?? null, appliedAt: new Date(0), durationMs: 1, appliedBy };
}

describe('down files in a migration set', () => {
  it('are the down of their version, never up migrations, and not part of the set checksum', async () => {
    const s = await set();
    expect(s.migrations.map((m) => m.name)).toEqual(['001_users.sql', '002_note.sql', '003_idx.sql']);
    expect(s.downs?.map((m) => [m.name, m.version])).toEqual([
      ['001_users.down.sql', 1n],
      ['002_note.down.sql', 2n],
    ]);
    const upsOnly = await set(Object.fromEntries(Object.entries(FILES).filter(([n]) => !n.includes('.down.'))));
    expect(upsOnly.checksum).toBe(s.checksum);
    expect(upsOnly.downs).toBeUndefined();
  });

  it('a down without its up is refused, every one named; two downs of one version too', async () => {
    const e = await rejection(set({ ...FILES, '007_x.down.sql': 'SELECT 1;', '009_y.down.sql': 'SELECT 1;' }));
    expect(e).toBeInstanceOf(DownWithoutUpError);
    expect((e as DownWithoutUpError).files).toEqual(['007_x.down.sql', '009_y.down.sql']);
    expect(await rejection(set({ ...FILES, '2_other.down.sql': 'SELECT 1;' }))).toBeInstanceOf(DuplicateVersionError);
  });

  it('a down file is parsed and checked like an up file', async () => {
    const e = await rejection(set({ ...FILES, '002_note.down.sql': 'ALTER TABLE users DROP COLUM note;' }));
    expect((e as Error).message).toContain('002_note.down.sql');
  });
});

describe('planRevert', () => {
  it('default: the newest applied migration only; --to: every one above', async () => {
    const s = await set({ ...FILES, '003_idx.down.sql': 'DROP INDEX CONCURRENTLY users_note;' });
    const rows = ['001_users.sql', '002_note.sql', '003_idx.sql'].map((n) => row(s, n));
    expect(planRevert(pairsOf(s), rows, { last: true }).map((x) => x.down.name)).toEqual(['003_idx.down.sql']);
    expect(planRevert(pairsOf(s), rows, { to: 1n }).map((x) => x.down.name)).toEqual(['003_idx.down.sql', '002_note.down.sql']);
    expect(planRevert(pairsOf(s), rows, { to: 0n }).map((x) => [x.name, x.rows])).toEqual([
      ['003_idx.sql', ['003_idx.sql']],
      ['002_note.sql', ['002_note.sql']],
      ['001_users.sql', ['001_users.sql']],
    ]);
    expect(planRevert(pairsOf(s), rows, { to: 3n })).toEqual([]);
    expect(planRevert(pairsOf(s), [], { last: true })).toEqual([]);
  });

  it('refuses, naming every version, when a down file (or the file itself) is missing', async () => {
    const s = await set();
    const rows = [...['001_users.sql', '002_note.sql', '003_idx.sql'].map((n) => row(s, n)), row(s, '004_gone.sql', 'x', 'abc')];
    const e = rejection(() => planRevert(pairsOf(s), rows, { to: 0n }));
    expect(e).toBeInstanceOf(MissingDownError);
    expect((e as MissingDownError).migrations).toEqual(['003_idx.sql', '004_gone.sql (no file)']);
  });

  it('refuses an applied file that changed since (its down was written for another up)', async () => {
    const s = await set();
    const rows = [row(s, '001_users.sql'), row(s, '002_note.sql', 'x', 'other')];
    expect(rejection(() => planRevert(pairsOf(s), rows, { last: true }))).toBeInstanceOf(ChangedMigrationError);
  });

  it('a rollout: only what it applied, refused when a later migration would stay on top', async () => {
    const s = await set({ ...FILES, '003_idx.down.sql': 'DROP INDEX CONCURRENTLY users_note;' });
    const mine = rolloutAppliedBy('w1', 'r1');
    const rows = [row(s, '001_users.sql'), row(s, '002_note.sql', mine), row(s, '003_idx.sql', rolloutAppliedBy('w2', 'r1'))];
    expect(planRevert(pairsOf(s), rows, { rollout: 'r1' }).map((x) => x.name)).toEqual(['003_idx.sql', '002_note.sql']);
    const later = [row(s, '001_users.sql'), row(s, '002_note.sql', mine), row(s, '003_idx.sql', 'cli me@host')];
    const e = rejection(() => planRevert(pairsOf(s), later, { rollout: 'r1' }));
    expect(e).toBeInstanceOf(RevertBlockedError);
    expect((e as RevertBlockedError).above).toEqual(['003_idx.sql']);
    expect(planRevert(pairsOf(s), [row(s, '001_users.sql')], { rollout: 'r1' })).toEqual([]);
  });
});

describe('baseline', () => {
  it('records what is pending up to the version; marker in applied_by with no duration', async () => {
    const s = await set();
    const p = planBaseline(s, [row(s, '001_users.sql')], 2n);
    expect(p.record.map((m) => m.name)).toEqual(['002_note.sql']);
    expect(p.already).toEqual(['001_users.sql']);
    expect(isBaselineRow({ appliedBy: baselineAppliedBy('cli me@host'), durationMs: null })).toBe(true);
    expect(isBaselineRow({ appliedBy: baselineAppliedBy('cli me@host'), durationMs: 3 })).toBe(false);
    expect(isBaselineRow({ appliedBy: 'cli baseline@host', durationMs: null })).toBe(false);
  });

  it('refuses a version no file has, and a file recorded with another checksum', async () => {
    const s = await set();
    const e = rejection(() => planBaseline(s, [row(s, '001_users.sql', 'x', 'other')], 9n));
    expect(e).toBeInstanceOf(BaselineRefusedError);
    expect((e as BaselineRefusedError).problems).toEqual([
      'no migration file numbered 9 in the directory',
      '001_users.sql is already recorded with another checksum',
    ]);
    // a changed file above the version is not the baseline's business
    expect(planBaseline(s, [row(s, '002_note.sql', 'x', 'other')], 1n).record.map((m) => m.name)).toEqual(['001_users.sql']);
    expect(parseUpTo('--up-to', '003_idx.sql')).toBe(3n);
    expect(rejection(() => parseUpTo('--up-to', ''))).toBeInstanceOf(BaselineRefusedError);
  });
});

describe('planRolloutRevert', () => {
  it('the down files of what some tenant applied, and those tenants', async () => {
    const s = await set({ ...FILES, '003_idx.down.sql': 'DROP INDEX CONCURRENTLY users_note;' });
    const p = planRolloutRevert({ id: 'r1', state: 'succeeded', dryRun: false }, s.migrations, s, [
      { id: 'a', state: 'succeeded', applied: ['002_note.sql', '003_idx.sql'] },
      { id: 'b', state: 'succeeded', applied: [] },
      { id: 'c', state: 'failed', applied: ['002_note.sql'] },
    ]);
    expect(p.downs.map((d) => d.name)).toEqual(['002_note.down.sql', '003_idx.down.sql']);
    expect(p.ups.map((u) => u.version)).toEqual(['2', '3']);
    expect(p.tenants).toEqual(['a', 'c']);
    expect(jobKindOf({ revert: { of: 'r1', ups: p.ups } })).toBe('revert');
    expect(jobKindOf({})).toBe('migrate');
  });

  it('refuses, naming them, missing down files, changed up files, a running rollout', async () => {
    const s = await set();
    const changed = await set({ ...FILES, '002_note.sql': 'ALTER TABLE users ADD COLUMN note varchar(10);' });
    const e = rejection(() =>
      planRolloutRevert({ id: 'r1', state: 'running', dryRun: false }, s.migrations, changed, [
        { id: 'a', state: 'succeeded', applied: ['001_users.sql', '002_note.sql', '003_idx.sql'] },
      ]),
    );
    expect(e).toBeInstanceOf(RevertRefusedError);
    expect((e as RevertRefusedError).problems).toEqual([
      'it is still running: wait for its end or cancel it (flotilla rollout cancel r1)',
      'no down file for 003_idx.sql',
      'the up file on disk differs from the one the rollout ran (or is gone): 002_note.sql',
    ]);
    const none = rejection(() =>
      planRolloutRevert({ id: 'r2', state: 'succeeded', dryRun: false }, s.migrations, s, [{ id: 'a', state: 'succeeded', applied: [] }]),
    );
    expect((none as RevertRefusedError).problems).toEqual(['no tenant applied a file in it']);
  });
});

describe('drift', () => {
  const raw = (schema: string, extra: [string, string, string][] = []): [string, string, string][] => [
    ['relation', 'orders', 'r'],
    ['column', 'orders.id', `integer not null default nextval('${schema}.orders_id_seq'::regclass)`],
    ['column', 'orders.note', 'character varying(200)'],
    ['constraint', 'orders', 'PRIMARY KEY (id)'],
    ['index', 'orders', `CREATE INDEX orders_note_idx ON ${schema}.orders USING btree (note)`],
    ...extra,
  ];

  it('made-up names and the schema name do not count', () => {
    const a = normaliseItems(raw('public'), 'public');
    const b = normaliseItems(
      raw('tenant_b').map(([k, o, v]) => [k, o, v.replace('orders_note_idx', 'orders_note_idx1').replace('orders_id_seq', 'orders_id_seq1')]),
      'tenant_b',
    );
    expect(fingerprintOf(a)).toBe(fingerprintOf(b));
    expect(describeDifferences(a, b)).toEqual([]);
  });

  it('differences read as what changed, against the majority', () => {
    const majority = normaliseItems(raw('public'), 'public');
    const other = normaliseItems(
      raw('public', [['constraint', 'orders', "CHECK ((note <> ''::text))"]])
        .filter(([k]) => k !== 'index')
        .map(([k, o, v]) => [k, o, o === 'orders.note' ? 'text' : v]),
      'public',
    );
    expect(describeDifferences(majority, other)).toEqual([
      'column orders.note: text, majority character varying(200)',
      "constraint extra on orders: CHECK ((note <> ''::text))",
      'index missing: INDEX ON orders USING btree (note)',
    ]);
  });

  it('groups by applied version; the majority and each outlier; a tie calls nobody drifted', () => {
    const ok = normaliseItems(raw('public'), 'public');
    const odd = normaliseItems(raw('public', [['index', 'orders', 'CREATE INDEX x ON public.orders USING btree (id, note)']]), 'public');
    const t = (id: string, applied: string[], items: typeof ok): TenantSchema => ({ id, applied, items, fingerprint: fingerprintOf(items) });
    const r = driftReport([
      t('a', ['001_a.sql', '002_b.sql'], ok),
      t('b', ['001_a.sql', '002_b.sql'], odd),
      t('c', ['002_b.sql', '001_a.sql'], ok),
      t('d', ['001_a.sql'], ok),
      t('e', ['001_a.sql'], odd),
    ]);
    expect(r.drifted).toEqual(['b']);
    expect(r.groups.map((g) => [g.version, g.tenants, g.majority.tenants, g.tie])).toEqual([
      ['002_b.sql', ['a', 'b', 'c'], ['a', 'c'], false],
      ['001_a.sql', ['d', 'e'], ['d'], true],
    ]);
    expect(r.groups[0]!.outliers).toEqual([{ id: 'b', fingerprint: fingerprintOf(odd), differences: ['index extra: INDEX ON orders USING btree (id, note)'] }]);
  });
});
