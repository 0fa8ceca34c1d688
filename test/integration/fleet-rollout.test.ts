/**
 * Fleet rollouts end to end: the CLI creates rollouts in a control database,
 * two `flotilla worker` processes migrate the tenants from Redis.
 * One fleet (control database, prefix, two workers) for the whole file; each
 * test has its own tenants.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, GUIDE_MIGRATIONS, why, GUIDE_TABLES, relationExists, schemaExists, tablesIn, trackingRows, type FleetTenant } from '../helpers/fleet.js';

let fleet: Fleet;

beforeAll(async () => {
  fleet = await Fleet.create();
  await fleet.startWorkers(2);
}, 240_000);

afterAll(async () => {
  await fleet?.cleanup();
}, 120_000);

interface View {
  id: string;
  state: string;
  haltReason: string | null;
  dryRun: boolean;
  counts: Record<string, number>;
  tenants: { id: string; state: string; applied: string[]; error: string | null; attempts: number }[];
}

const createdRollouts: { id: string; state: string }[] = [];

describe('fleet rollout', () => {
  let full: FleetTenant[];
  let fullId: string;

  it('migrates 4 database tenants and 2 schema-per-tenant tenants with two workers', async () => {
    full = await fleet.addTenants([
      { id: 'db-a', tags: ['canary'] },
      { id: 'db-b' },
      { id: 'db-c', password: 'env' },
      { id: 'db-d' },
      { id: 'sch-a', kind: 'schema' },
      { id: 'sch-b', kind: 'schema', password: 'env' },
    ]);
    const file = fleet.writeTenantsFile(full);
    const r = await fleet.cliJson<View>(['rollout', '--tenants', file, '--all', '--wait']);
    expect(r.stderr, why(r)).toBe('');
    expect(r.code, why(r)).toBe(0);
    const v = r.json;
    expect(v.id).toMatch(/^r\d{8}-\d{6}-[0-9a-f]{6}$/);
    expect(v.state).toBe('succeeded');
    expect(v.dryRun).toBe(false);
    expect(v.tenants.map((t) => t.id)).toEqual(full.map((t) => t.id));
    for (const t of v.tenants) {
      expect(t).toMatchObject({ id: expect.any(String), state: 'succeeded', applied: GUIDE_MIGRATIONS, error: null });
    }
    expect(v.counts).toMatchObject({ succeeded: 6, failed: 0, cancelled: 0, running: 0, pending: 0, scheduled: 0 });
    fullId = v.id;
    createdRollouts.push({ id: v.id, state: 'succeeded' });

    // the databases really hold what the rollout reports
    for (const t of full) {
      const rows = await trackingRows(t);
      expect(
        rows?.map((x) => x.name),
        t.id,
      ).toEqual(GUIDE_MIGRATIONS);
      expect(
        rows?.every((x) => x.applied_by.startsWith('worker ')),
        t.id,
      ).toBe(true);
      expect(await tablesIn(t), t.id).toEqual([...GUIDE_TABLES, 'migrations'].sort());
    }
    // schema tenants: everything in their own schema, nothing in public of the shared database
    const shared = full.find((t) => t.schema)!;
    expect(await tablesIn(shared, 'public')).toEqual([]);
    expect(await relationExists(shared, 'migrations', 'public')).toBe(false);
    expect(full.filter((t) => t.schema).map((t) => t.db.name)).toEqual([shared.db.name, shared.db.name]);

    // done by this fleet's worker processes (which of the two took which tenant is BullMQ's business)
    const ours = new Set(fleet.workers.map((w) => w.id));
    for (const x of (await fleet.tenantStates(v.id)).values()) expect(ours.has(x.worker!), `${x.tenant_id} by ${x.worker}`).toBe(true);

    // status agrees with what --wait printed
    const status = await fleet.cliJson<View>(['rollout', 'status', v.id]);
    expect(status.code, why(status)).toBe(0);
    expect(status.json).toEqual(v);
  }, 300_000);

  it('a rollout over up-to-date tenants succeeds with nothing applied and changes nothing', async () => {
    expect(fullId).toBeDefined();
    const before = new Map<string, unknown>();
    for (const t of full) before.set(t.id, await trackingRows(t));
    const r = await fleet.cliJson<View>(['rollout', '--tenants', fleet.writeTenantsFile(full), '--all', '--wait']);
    expect(r.code, why(r)).toBe(0);
    expect(r.json.id).not.toBe(fullId);
    expect(r.json.state).toBe('succeeded');
    expect(r.json.tenants).toHaveLength(6);
    for (const t of r.json.tenants) expect(t).toMatchObject({ state: 'succeeded', applied: [], error: null });
    for (const t of full) expect(await trackingRows(t), t.id).toEqual(before.get(t.id));
    createdRollouts.push({ id: r.json.id, state: 'succeeded' });
  }, 300_000);

  it('a dry run succeeds and leaves fresh tenants untouched: no tables, no tracking table, no schema', async () => {
    const fresh = await fleet.addTenants([{ id: 'dry-a' }, { id: 'dry-b', password: 'env' }, { id: 'dry-s', kind: 'schema' }]);
    const r = await fleet.cliJson<View>(['rollout', '--tenants', fleet.writeTenantsFile(fresh), '--all', '--dry-run', '--wait']);
    expect(r.stderr, why(r)).toBe('');
    expect(r.code, why(r)).toBe(0);
    expect(r.json.state).toBe('succeeded');
    expect(r.json.dryRun).toBe(true);
    // a dry run reports what it would apply
    for (const t of r.json.tenants) expect(t).toMatchObject({ state: 'succeeded', applied: GUIDE_MIGRATIONS, error: null });
    for (const t of fresh) {
      expect(await trackingRows(t), t.id).toBeNull();
      if (t.schema) expect(await schemaExists(t, t.schema), t.id).toBe(false);
      else expect(await tablesIn(t, 'public'), t.id).toEqual([]);
    }
    createdRollouts.push({ id: r.json.id, state: 'succeeded' });
  }, 300_000);

  it('`rollouts --json` lists the rollouts, newest first, with their counts', async () => {
    expect(createdRollouts).toHaveLength(3);
    const r = await fleet.cliJson<(View & { counts: Record<string, number> })[]>(['rollouts']);
    expect(r.code, why(r)).toBe(0);
    expect(r.json.map((x) => ({ id: x.id, state: x.state }))).toEqual([...createdRollouts].reverse());
    const byId = new Map(r.json.map((x) => [x.id, x]));
    expect(byId.get(createdRollouts[0]!.id)!.counts).toMatchObject({ succeeded: 6, failed: 0 });
    expect(byId.get(createdRollouts[2]!.id)!.counts).toMatchObject({ succeeded: 3, failed: 0 });
  }, 300_000);

  it('`rollout status` of an unknown id exits 2', async () => {
    const json = await fleet.cliJson<{ error: { code: string; kind: string } }>(['rollout', 'status', 'nope']);
    expect(json.code, why(json)).toBe(2);
    expect(json.json.error).toMatchObject({ code: 'rollout_not_found', kind: 'input' });
  }, 300_000);
});
