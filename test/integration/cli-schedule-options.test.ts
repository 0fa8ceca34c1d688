/**
 * `flotilla schedule --max-failures 10%` stored 0 (the schedule rebuilt the rollout options by
 * hand and kept counts only). A schedule now freezes the options a `rollout` with the same
 * flags over the same tenants freezes: read both rows back from the control database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, why, type FleetTenant } from '../helpers/fleet.js';

let fleet: Fleet;
let tenants: FleetTenant[];
let file: string;

beforeAll(async () => {
  fleet = await Fleet.create();
  tenants = await fleet.addTenants([1, 2, 3, 4].map((i) => ({ id: `so-${i}`, kind: 'schema' as const, tags: ['eu'] })));
  file = fleet.writeTenantsFile(tenants);
}, 240_000);

afterAll(async () => {
  await fleet?.cleanup();
}, 120_000);

const scheduleOptions = async (name: string) => (await fleet.controlQuery('SELECT options FROM flotilla.schedules WHERE name = $1', [name])).rows[0]?.options;
const rolloutOptions = async (id: string) => (await fleet.controlQuery('SELECT options FROM flotilla.rollouts WHERE id = $1', [id])).rows[0]?.options;

describe('schedule: the rollout options a rollout with the same flags gets', () => {
  it('--max-failures 10% / 50% of 4 tenants are 1 / 2 failures (not 0), with --concurrency and --per-server', async () => {
    for (const [name, maxFailures, expected] of [
      ['ten', '10%', 1],
      ['half', '50%', 2],
    ] as const) {
      const flags = ['--max-failures', maxFailures, '--concurrency', '3', '--per-server', '2'];
      const s = await fleet.cli(['schedule', '--name', name, '--cron', '0 3 1 1 *', '--tenants', file, '--tag', 'eu', ...flags]);
      expect(s.code, why(s)).toBe(0);
      const stored = await scheduleOptions(name);
      expect(stored).toMatchObject({ canary: false, maxFailures: expected, concurrency: 3, perServer: 2, dryRun: false });

      const r = await fleet.cliJson<{ id: string }>(['rollout', '--tag', 'eu', ...flags]);
      expect(r.code, why(r)).toBe(0);
      expect(stored).toEqual(await rolloutOptions(r.json.id));
      await fleet.cli(['rollout', 'cancel', r.json.id]);
    }
  }, 240_000);
});
