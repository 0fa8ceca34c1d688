/**
 * When tenants fail: the canary gate, the failure budget (--max-failures),
 * `rollout retry` after a fix, and `rollout cancel`.
 * One fleet (control database, prefix, two workers) for the whole file; each
 * test has its own tenants. A tenant is "broken" by a pre-existing table that
 * conflicts with a migration (`products (id text)`: the index on
 * products(name) fails).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationDir } from '../helpers/migrations.js';
import { Fleet, GUIDE_MIGRATIONS, relationExists, tablesIn, trackingRows, waitFor, why, type FleetTenant } from '../helpers/fleet.js';

let fleet: Fleet;
const dirs: { cleanup(): void }[] = [];

beforeAll(async () => {
  fleet = await Fleet.create();
  await fleet.startWorkers(2);
}, 240_000);

afterAll(async () => {
  await fleet?.cleanup();
  for (const d of dirs) d.cleanup();
}, 120_000);

interface View {
  id: string;
  state: string;
  haltReason: string | null;
  finishedAt: string | null;
  counts: Record<string, number>;
  tenants: { id: string; state: string; applied: string[]; error: string | null; wave: number; attempts: number }[];
}

const byId = (v: View) => new Map(v.tenants.map((t) => [t.id, t]));

async function breakTenant(t: FleetTenant): Promise<void> {
  await t.query('CREATE TABLE products (id text)');
}

/** A small set (fast on a slow machine) whose 002 fails on a tenant with a conflicting `products` table. */
const SMALL = {
  '001_create_accounts.sql': 'CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL);\n',
  '002_create_products.sql':
    'CREATE TABLE IF NOT EXISTS products (id serial PRIMARY KEY, name text NOT NULL);\nCREATE INDEX products_name ON products (name);\n',
  '003_add_accounts_name.sql': 'ALTER TABLE accounts ADD COLUMN name text;\n',
};
const SMALL_NAMES = Object.keys(SMALL);

describe('fleet failures', () => {
  it('a failed canary halts the rollout: the other tenants are cancelled and untouched', async () => {
    const tenants = await fleet.addTenants([
      { id: 'can-bad', tags: ['canary'] },
      { id: 'can-1' },
      { id: 'can-2', password: 'env' },
      { id: 'can-3', kind: 'schema' },
    ]);
    await breakTenant(tenants[0]!);
    const r = await fleet.cliJson<View>(['rollout', '--tenants', fleet.writeTenantsFile(tenants), '--all', '--canary', 'canary', '--wait']);
    expect(r.code, why(r)).toBe(1);
    const v = r.json;
    expect(v.state).toBe('halted');
    expect(v.haltReason).toBe('a canary tenant failed');
    const t = byId(v);
    const bad = t.get('can-bad')!;
    expect(bad).toMatchObject({ state: 'failed', wave: 1, attempts: 1 });
    expect(bad.error).toContain('005_create_products_table.sql failed');
    expect(bad.error).toContain('42703');
    // 001-004 committed before 005 failed (one transaction per file): the report says so, as does the database
    expect(bad.applied).toEqual(GUIDE_MIGRATIONS.slice(0, 4));
    expect((await trackingRows(tenants[0]!))?.map((x) => x.name)).toEqual(GUIDE_MIGRATIONS.slice(0, 4));
    for (const other of tenants.slice(1)) {
      expect(t.get(other.id), other.id).toMatchObject({ state: 'cancelled', wave: 2, attempts: 0, applied: [], error: null });
      expect(await relationExists(other, 'migrations'), other.id).toBe(false);
      expect(await tablesIn(other), other.id).toEqual([]);
    }
    expect(v.counts).toMatchObject({ failed: 1, cancelled: 3, succeeded: 0, running: 0, pending: 0 });
    expect(v.finishedAt).not.toBeNull();
  }, 300_000);

  let mf: FleetTenant[];
  let mfId: string;
  const small = migrationDir(SMALL);
  dirs.push(small);

  it('--max-failures 1: the second failure halts the rollout and the tenants not started are cancelled', async () => {
    mf = await fleet.addTenants([
      { id: 'mf-ok1' },
      { id: 'mf-ok2' },
      { id: 'mf-bad1' },
      { id: 'mf-ok3', kind: 'schema' },
      { id: 'mf-bad2', password: 'env' },
      { id: 'mf-ok4' },
    ]);
    await breakTenant(fleet.tenant('mf-bad1'));
    await breakTenant(fleet.tenant('mf-bad2'));
    // --concurrency 1: one tenant at a time, in file order, so "not started" is deterministic
    const r = await fleet.cliJson<View>([
      'rollout',
      '--dir',
      small.dir,
      '--tenants',
      fleet.writeTenantsFile(mf),
      '--all',
      '--concurrency',
      '1',
      '--max-failures',
      '1',
      '--wait',
    ]);
    expect(r.code, why(r)).toBe(1);
    const v = r.json;
    mfId = v.id;
    expect(v.state).toBe('halted');
    expect(v.haltReason).toBe('2 tenants failed (--max-failures 1)');
    const t = byId(v);
    expect(Object.fromEntries([...t].map(([id, x]) => [id, x.state]))).toEqual({
      'mf-ok1': 'succeeded',
      'mf-ok2': 'succeeded',
      'mf-bad1': 'failed',
      'mf-ok3': 'succeeded',
      'mf-bad2': 'failed',
      'mf-ok4': 'cancelled',
    });
    for (const id of ['mf-bad1', 'mf-bad2']) {
      expect(t.get(id)!.error, id).toContain('002_create_products.sql failed');
      expect(t.get(id)!.applied, id).toEqual(['001_create_accounts.sql']);
    }
    expect(t.get('mf-ok4')).toMatchObject({ attempts: 0, applied: [] });
    expect(await relationExists(fleet.tenant('mf-ok4'), 'migrations')).toBe(false);
    for (const id of ['mf-ok1', 'mf-ok2', 'mf-ok3']) {
      expect(t.get(id)!.applied, id).toEqual(SMALL_NAMES);
      expect(
        (await trackingRows(fleet.tenant(id)))?.map((x) => x.name),
        id,
      ).toEqual(SMALL_NAMES);
    }
  }, 300_000);

  it('retry after fixing the broken tenants re-runs only the failed and cancelled ones', async () => {
    expect(mfId, 'the --max-failures test made the rollout').toBeDefined();
    const okIds = ['mf-ok1', 'mf-ok2', 'mf-ok3'];
    const trackingBefore = new Map<string, unknown>();
    for (const id of okIds) trackingBefore.set(id, await trackingRows(fleet.tenant(id)));
    const controlBefore = await fleet.tenantStates(mfId);
    const attemptsBefore = (await fleet.controlQuery(`SELECT tenant_id, count(*)::int AS n FROM flotilla.attempts WHERE rollout_id = $1 GROUP BY 1`, [mfId]))
      .rows;

    for (const id of ['mf-bad1', 'mf-bad2']) await fleet.tenant(id).query('DROP TABLE products');
    const r = await fleet.cliJson<View>(['rollout', 'retry', mfId, '--wait']);
    expect(r.code, why(r)).toBe(0);
    const v = r.json;
    expect(v.id).toBe(mfId);
    expect(
      v.state,
      `${why(r)}\ncontrol: ${JSON.stringify(await fleet.rolloutRow(mfId))} ${JSON.stringify([...(await fleet.tenantStates(mfId)).values()])}`,
    ).toBe('succeeded');
    expect(v.haltReason).toBeNull();
    expect(v.tenants.every((x) => x.state === 'succeeded' && x.error === null)).toBe(true);
    const t = byId(v);
    // everything the rollout applied to them, the first generation's file included (the tracking table's truth)
    expect(t.get('mf-bad1')!.applied).toEqual(SMALL_NAMES);
    expect(t.get('mf-bad2')!.applied).toEqual(SMALL_NAMES);
    expect(t.get('mf-ok4')!.applied).toEqual(SMALL_NAMES);
    for (const id of ['mf-bad1', 'mf-bad2', 'mf-ok4']) {
      expect(
        (await trackingRows(fleet.tenant(id)))?.map((x) => x.name),
        id,
      ).toEqual(SMALL_NAMES);
    }

    // the succeeded tenants were not run again: same tracking rows (applied_at included), same control rows
    const controlAfter = await fleet.tenantStates(mfId);
    for (const id of okIds) {
      expect(await trackingRows(fleet.tenant(id)), id).toEqual(trackingBefore.get(id));
      expect(controlAfter.get(id), id).toEqual(controlBefore.get(id));
      expect(controlAfter.get(id)!.generation, id).toBe(0);
    }
    for (const id of ['mf-bad1', 'mf-bad2', 'mf-ok4']) expect(controlAfter.get(id)!.generation, id).toBe(1);
    const attemptsAfter = (await fleet.controlQuery(`SELECT tenant_id, count(*)::int AS n FROM flotilla.attempts WHERE rollout_id = $1 GROUP BY 1`, [mfId]))
      .rows;
    for (const id of okIds)
      expect(
        attemptsAfter.find((x) => x.tenant_id === id),
        id,
      ).toEqual(attemptsBefore.find((x) => x.tenant_id === id));
  }, 300_000);

  it('cancel: tenants not started are cancelled, the running one finishes, then the rollout is finished', async () => {
    // the migration waits at a gate (an advisory lock the test holds on cx-1's database only), so cx-1 is
    // still running when the cancel lands, however long the CLI takes to start on a busy machine
    const gated = migrationDir({
      '001_gated.sql':
        'CREATE TABLE gated_marker (at timestamptz NOT NULL DEFAULT now());\n' +
        'DO $$ BEGIN WHILE NOT pg_try_advisory_xact_lock(4242, 4242) LOOP PERFORM pg_sleep(0.1); END LOOP; END $$;\n',
    });
    dirs.push(gated);
    const tenants = await fleet.addTenants([{ id: 'cx-1' }, { id: 'cx-2' }, { id: 'cx-3' }]);
    const gate = await tenants[0]!.db.client();
    let id = '';
    try {
      await gate.query('SELECT pg_advisory_lock(4242, 4242)');
      const created = await fleet.cliJson<View>(['rollout', '--dir', gated.dir, '--tenants', fleet.writeTenantsFile(tenants), '--all', '--concurrency', '1']);
      expect(created.code, why(created)).toBe(0);
      id = created.json.id;
      expect(created.json.state).toBe('running');

      await waitFor(
        'cx-1 to wait at the gate inside its migration',
        async () => {
          const r = await fleet.controlQuery(
            `SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'flotilla-worker%' AND query ILIKE '%pg_try_advisory_xact_lock%' AND state = 'active'`,
            [tenants[0]!.db.name],
          );
          return r.rowCount! > 0;
        },
        120_000,
        250,
      );
      const c = await fleet.cliJson<View>(['rollout', 'cancel', id]);
      expect(c.code, why(c)).toBe(0);
      expect(c.json.state).toBe('cancelled');
      expect(c.json.haltReason).toMatch(/^cancelled by /);
      expect(Object.fromEntries(c.json.tenants.map((x) => [x.id, x.state]))).toEqual({ 'cx-1': 'running', 'cx-2': 'cancelled', 'cx-3': 'cancelled' });
      // not finished while a tenant still runs
      expect(c.json.finishedAt).toBeNull();
      expect((await fleet.rolloutRow(id)).finished_at).toBeNull();
    } finally {
      await gate.end(); // open the gate
    }

    await waitFor('cx-1 to finish', async () => (await fleet.tenantStates(id)).get('cx-1')!.state !== 'running', 120_000, 250);
    const states = await fleet.tenantStates(id);
    expect(states.get('cx-1')!.state).toBe('succeeded');
    const rollout = await waitFor(
      'the rollout to be marked finished',
      async () => {
        const row = await fleet.rolloutRow(id);
        return row.finished_at ? row : undefined;
      },
      30_000,
      250,
    );
    expect(rollout.state).toBe('cancelled');
    expect(rollout.finished_at!.getTime()).toBeGreaterThanOrEqual(states.get('cx-1')!.finished_at!.getTime());
    expect((await trackingRows(tenants[0]!))?.map((x) => x.name)).toEqual(['001_gated.sql']);
    for (const other of tenants.slice(1)) {
      expect(states.get(other.id)!.state, other.id).toBe('cancelled');
      expect(states.get(other.id)!.attempts, other.id).toBe(0);
      expect(await relationExists(other, 'migrations'), other.id).toBe(false);
    }

    const unknown = await fleet.cliJson<{ error: { code: string } }>(['rollout', 'cancel', 'nope']);
    expect(unknown.code, why(unknown)).toBe(2);
    expect(unknown.json.error.code).toBe('rollout_not_found');
  }, 300_000);
});
