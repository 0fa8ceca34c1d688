/**
 * Issue 9, section "Targets and selectors", the pure rules: selection flags
 * (promise 10), schedules' zone and cron, --canary against the fleet, and the
 * comparisons behind `retry`/`resume` notices and `retry --refresh` (promise 3).
 */
import { describe, expect, it } from 'vitest';
import { buildMigrationSet } from '../../src/core/migration-set.js';
import { assignWaves } from '../../src/core/rollout-plan.js';
import { ConfigError } from '../../src/core/errors.js';
import { EmptySelectionError, SelectorError, parseSelectorFlags, scheduleProblems, selectTenants, type Tenant } from '../../src/core/tenants.js';
import { diffSets, filesReplacedBy, isSameSet, refreshBlockers, targetChanges, targetNotices } from '../../src/core/frozen.js';

const fleet: Tenant[] = [
  { id: 'a', databaseUrl: 'postgres://h/a', tags: ['eu'] },
  { id: 'b', databaseUrl: 'postgres://h/b', tags: [] },
];

describe('selection flags: no input ever means everything', () => {
  const refused: [string, Record<string, unknown>, RegExp][] = [
    ['nothing at all', {}, /no tenant selector/],
    ['a tenants file alone', { tenants: 't.yaml' }, /no tenant selector/],
    ['a query alone', { tenantsQuery: 'SELECT 1' }, /no tenant selector/],
    ['--tenants ""', { tenants: '', all: true }, /--tenants: an empty file name/],
    ['--tenants "  "', { tenants: '  ', all: true }, /--tenants: an empty file name/],
    ['--tenants-query ""', { tenantsQuery: '', all: true }, /--tenants-query: an empty query/],
    ['--only ""', { only: '' }, /--only: an empty tenant id/],
    ['--only ","', { only: ',' }, /--only: an empty tenant id/],
    ['--only "a,,b"', { only: 'a,,b' }, /--only: an empty tenant id/],
    ['--tag ""', { tag: [''] }, /--tag: an empty tag/],
    ['--tag with no value', { tag: [] }, /--tag: an empty tag/],
    ['--all with --only', { all: true, only: 'a' }, /not both/],
    ['--all with --tag', { all: true, tag: ['eu'] }, /not both/],
    ['a file and a query', { tenants: 't.yaml', tenantsQuery: 'SELECT 1', all: true }, /not both/],
  ];
  for (const [what, flags, message] of refused) {
    it(`refuses ${what}`, () => {
      expect(() => parseSelectorFlags(flags)).toThrow(SelectorError);
      expect(() => parseSelectorFlags(flags)).toThrow(message);
    });
  }

  it('reports every problem at once, exit 2 (input)', () => {
    try {
      parseSelectorFlags({ tenants: '', only: '' });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(SelectorError);
      expect((e as SelectorError).kind).toBe('input');
      expect((e as SelectorError).problems).toHaveLength(2);
    }
  });

  it('accepts explicit selectors and names the source', () => {
    expect(parseSelectorFlags({ all: true })).toEqual({ source: { kind: 'registry' }, selection: { all: true } });
    expect(parseSelectorFlags({ tenants: 't.yaml', only: ' a , b ' })).toEqual({ source: { kind: 'file', path: 't.yaml' }, selection: { ids: ['a', 'b'] } });
    expect(parseSelectorFlags({ tenantsQuery: 'SELECT 1', tag: ['eu'] })).toEqual({ source: { kind: 'query', sql: 'SELECT 1' }, selection: { tags: ['eu'] } });
  });

  it('selectTenants applies the same rules to any selection value (a stored schedule too)', () => {
    expect(() => selectTenants(fleet, {})).toThrow(SelectorError);
    expect(() => selectTenants(fleet, { ids: [''] })).toThrow(SelectorError);
    expect(() => selectTenants(fleet, { tags: ['us'] })).toThrow(EmptySelectionError);
    expect(() => selectTenants(fleet, { tags: ['us'] })).toThrow('no tenant matches --tag us (no tenant has the tag "us")');
    expect(() => selectTenants([], { all: true })).toThrow(EmptySelectionError);
    expect(selectTenants(fleet, { all: true }).map((t) => t.id)).toEqual(['a', 'b']);
  });
});

describe('--canary and the fleet', () => {
  it('refuses a canary count larger than the selection', () => {
    expect(() => assignWaves(fleet, { count: 3 }, undefined)).toThrow(ConfigError);
    expect(() => assignWaves(fleet, { count: 3 }, undefined)).toThrow(/--canary: 3 canary tenants asked for, but the selection has only 2/);
    expect(assignWaves(fleet, { count: 2 }, undefined).waveCount).toBe(1);
  });
});

describe('schedule zone and cron', () => {
  it('refuses unknown or empty zones and bad cron expressions, all at once', () => {
    expect(scheduleProblems('0 2 * * SUN', 'Europe/Paris')).toEqual([]);
    expect(scheduleProblems('0 2 * * SUN', 'UTC')).toEqual([]);
    expect(scheduleProblems('0 2 * * SUN', 'Mars/Olympus')).toEqual([expect.stringMatching(/^--tz: unknown time zone "Mars\/Olympus"/)]);
    expect(scheduleProblems('0 2 * * SUN', '')).toHaveLength(1);
    expect(scheduleProblems('0 2 * * SUN', undefined)).toHaveLength(1);
    expect(scheduleProblems('', 'UTC')).toEqual(['--cron: required, e.g. "0 2 * * SUN"']);
    expect(scheduleProblems('0 25 * * *', 'UTC')).toEqual([expect.stringMatching(/^--cron: invalid cron expression "0 25 \* \* \*"/)]);
    expect(scheduleProblems('H 2 * * *', 'UTC')).toEqual([expect.stringMatching(/uses "H"/)]);
    expect(scheduleProblems('0 2 31 2 *', 'UTC')).toHaveLength(1); // never fires
    expect(scheduleProblems('61 2 * * *', 'Nowhere/Land')).toHaveLength(2);
  });
});

describe('frozen targets and sets', () => {
  it('finds the tenants whose registry target moved, and prints them without secrets', () => {
    const registry = new Map([
      ['a', { databaseUrl: 'postgres://app:s3cret@staging/a' }],
      ['b', { databaseUrl: 'postgres://h/b', schema: 'tenant_b' }],
      ['c', { databaseUrl: 'postgres://h/c' }],
    ]);
    const changes = targetChanges(
      [
        { tenantId: 'a', databaseUrl: 'postgres://app:${A_PW}@prod/a' },
        { tenantId: 'b', databaseUrl: 'postgres://h/b' },
        { tenantId: 'c', databaseUrl: 'postgres://h/c', schema: undefined },
        { tenantId: 'gone', databaseUrl: 'postgres://h/gone' },
      ],
      registry,
    );
    expect(changes.map((c) => c.tenantId)).toEqual(['a', 'b']);
    const text = targetNotices(changes).join('\n');
    expect(text).toContain(
      'tenant a: the tenants registry now has another target (postgres://app:***@staging/a) than when this rollout was created (postgres://app:${A_PW}@prod/a); this rollout keeps its own.',
    );
    expect(text).not.toContain('s3cret');
    expect(targetNotices(changes, 1)).toEqual([expect.any(String), '... and 1 more tenants whose registry target changed']);
  });

  it('compares sets by version: changed, added, removed; a rename with the same bytes is no difference', async () => {
    const frozen = await buildMigrationSet([
      { name: '001_a.sql', sql: 'CREATE TABLE a (id int);' },
      { name: '002_b.sql', sql: 'CREATE TABLE b (id int);' },
      { name: '003_c.sql', sql: 'CREATE TABLE c (id int);' },
    ]);
    const disk = await buildMigrationSet([
      { name: '1_a.sql', sql: 'CREATE TABLE a (id int);' },
      { name: '002_b.sql', sql: 'CREATE TABLE b (id bigint);' },
      { name: '004_d.sql', sql: 'CREATE TABLE d (id int);' },
    ]);
    const d = diffSets(frozen, disk);
    expect(d).toEqual({ changed: ['002_b.sql'], added: ['004_d.sql'], removed: ['003_c.sql'] });
    expect(isSameSet(diffSets(frozen, frozen))).toBe(true);
    expect(filesReplacedBy(frozen, d)).toEqual(['002_b.sql', '003_c.sql']);
  });

  it('--refresh is blocked by a tenant that applied a replaced file, and by every tenant that already succeeded', () => {
    const tenants = [
      { tenantId: 'ran-old', state: 'failed', applied: ['001_a.sql', '002_b.sql'] },
      { tenantId: 'failed-before', state: 'failed', applied: ['001_a.sql'] },
      { tenantId: 'done', state: 'succeeded', applied: ['001_a.sql'] },
    ];
    expect(refreshBlockers(['002_b.sql'], [], tenants)).toEqual([
      { tenantId: 'ran-old', reason: 'applied 002_b.sql' },
      { tenantId: 'done', reason: 'succeeded with the frozen 002_b.sql' },
    ]);
    expect(refreshBlockers([], ['004_d.sql'], tenants)).toEqual([{ tenantId: 'done', reason: 'succeeded without the added file 004_d.sql' }]);
    // a succeeded tenant has every frozen file, even one this rollout did not apply (a CLI did, earlier)
    expect(refreshBlockers(['003_c.sql'], [], tenants)).toEqual([{ tenantId: 'done', reason: 'succeeded with the frozen 003_c.sql' }]);
    expect(
      refreshBlockers(
        ['003_c.sql'],
        [],
        tenants.filter((t) => t.state !== 'succeeded'),
      ),
    ).toEqual([]);
  });
});
