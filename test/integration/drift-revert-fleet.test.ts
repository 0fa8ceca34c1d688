/**
 * Revert and --skip-drifted on a fleet with real `flotilla worker` processes:
 * `rollout revert <id>` refused while a down file is missing (nothing created),
 * then a revert rollout (canary first) that undoes on each tenant only what
 * the reverted rollout applied there, shown as a revert of it; a rollout with
 * --skip-drifted leaves out the tenant altered by hand and says so.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, relationExists, trackingRows, why } from '../helpers/fleet.js';
import { migrationDir } from '../helpers/migrations.js';
import { runCli } from '../helpers/cli.js';

let fleet: Fleet;
const dirs: { cleanup(): void }[] = [];

beforeAll(async () => {
  fleet = await Fleet.create();
  await fleet.startWorkers(1, { concurrency: 4 });
}, 240_000);

afterAll(async () => {
  for (const d of dirs) d.cleanup();
  await fleet?.cleanup();
}, 120_000);

const UPS = {
  '001_users.sql': 'CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);\n',
  '002_orders.sql': 'CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users (id), note varchar(200));\n',
  '003_orders_idx.sql': 'CREATE INDEX CONCURRENTLY orders_user_idx ON orders (user_id);\n',
};
const DOWNS = {
  '001_users.down.sql': '-- flotilla:validate allowTableDrop=true\nDROP TABLE users;\n',
  '002_orders.down.sql': '-- flotilla:validate allowTableDrop=true allowConstraintModification=true\nDROP TABLE orders;\n',
};

describe('rollout revert', { timeout: 240_000 }, () => {
  it('refuses without a down file, then reverts what the rollout applied, tenant by tenant, canary first', async () => {
    const tenants = await fleet.addTenants([{ id: 'rv-a', tags: ['canary'] }, { id: 'rv-b' }, { id: 'rv-c', kind: 'schema', password: 'env' }]);
    const d = migrationDir({ ...UPS, ...DOWNS });
    dirs.push(d);
    // rv-b had 001 before the rollout (by the CLI): the rollout applied only 002 and 003 there
    const b = tenants[1]!;
    const pre = await runCli(['run', '001_users.sql', '--dir', d.dir, '--database-url', b.db.url]);
    expect(pre.code, why(pre)).toBe(0);
    const file = fleet.writeTenantsFile(tenants);
    const up = await fleet.cliJson(['rollout', '--tenants', file, '--all', '--dir', d.dir, '--wait']);
    expect(up.code, why(up)).toBe(0);
    const id = up.json.id as string;

    const before = (await fleet.controlQuery('SELECT count(*)::int AS n FROM flotilla.rollouts')).rows[0].n;
    const refused = await fleet.cli(['rollout', 'revert', id, '--dir', d.dir]);
    expect(refused.code, why(refused)).toBe(2);
    expect(refused.stderr).toContain(`cannot revert rollout ${id}: no down file for 003_orders_idx.sql`);
    expect((await fleet.controlQuery('SELECT count(*)::int AS n FROM flotilla.rollouts')).rows[0].n).toBe(before);

    d.write('003_orders_idx.down.sql', 'DROP INDEX CONCURRENTLY orders_user_idx;\n');
    // a dry run first: each tenant tries its down files in a transaction, rolled back
    const dry = await fleet.cliJson(['rollout', 'revert', id, '--dir', d.dir, '--dry-run', '--wait']);
    expect(dry.code, why(dry)).toBe(0);
    expect(dry.json).toMatchObject({ state: 'succeeded', revertOf: id, dryRun: true });
    for (const t of tenants) expect(await relationExists(t, 'orders'), t.id).toBe(true);
    const r = await fleet.cliJson(['rollout', 'revert', id, '--dir', d.dir, '--canary', 'canary', '--wait']);
    expect(r.code, why(r)).toBe(0);
    expect(r.json).toMatchObject({ state: 'succeeded', revertOf: id, waves: 2 });
    expect(r.json.tenants.map((t: { id: string; wave: number; applied: string[] }) => [t.id, t.wave, t.applied])).toEqual([
      ['rv-a', 1, ['003_orders_idx.down.sql', '002_orders.down.sql', '001_users.down.sql']],
      ['rv-b', 2, ['003_orders_idx.down.sql', '002_orders.down.sql']],
      ['rv-c', 2, ['003_orders_idx.down.sql', '002_orders.down.sql', '001_users.down.sql']],
    ]);
    // the databases: everything the rollout applied is gone; what was there before it stays
    for (const t of tenants) {
      expect(await relationExists(t, 'orders'), t.id).toBe(false);
      expect(await relationExists(t, 'users'), t.id).toBe(t.id === 'rv-b');
    }
    expect((await trackingRows(b))?.map((x) => x.name)).toEqual(['001_users.sql']);
    expect(await trackingRows(tenants[0]!)).toEqual([]);
    // workers knew the jobs were reverts
    const kinds = await fleet.controlQuery('SELECT DISTINCT kind FROM flotilla.attempts WHERE rollout_id = $1', [r.json.id]);
    expect(kinds.rows).toEqual([{ kind: 'revert' }]);

    const status = await fleet.cli(['rollout', 'status', r.json.id]);
    expect(status.stdout.split('\n')[0]).toBe(`Rollout ${r.json.id} (revert of ${id}): succeeded · wave 2/2`);
    const list = await fleet.cli(['rollouts']);
    expect(list.stdout).toContain(`revert of ${id}`);
    // a revert is not reverted; the registry's targets were left as they were
    const again = await fleet.cli(['rollout', 'revert', r.json.id, '--dir', d.dir]);
    expect(again.code, why(again)).toBe(2);
    expect(again.stderr).toContain('it is itself a revert');
    // its frozen down files are what a retry runs: the files on disk never replace them
    const refresh = await fleet.cli(['rollout', 'retry', r.json.id, '--refresh', '--dir', d.dir]);
    expect(refresh.code, why(refresh)).toBe(2);
    expect(refresh.stderr).toContain(`reverts ${id} with the down files it froze`);

    // the files apply again on top (the tenant is back where it was before the rollout)
    const redo = await fleet.cliJson(['rollout', '--tenants', file, '--all', '--dir', d.dir, '--wait']);
    expect(redo.code, why(redo)).toBe(0);
    expect(redo.json.tenants.map((t: { applied: string[] }) => t.applied.length)).toEqual([3, 2, 3]);
  });
});

describe('rollout --skip-drifted', { timeout: 240_000 }, () => {
  it('leaves out the tenant altered by hand, reported as skipped in the output and the status', async () => {
    const tenants = await fleet.addTenants([{ id: 'sd-a' }, { id: 'sd-b' }, { id: 'sd-c' }, { id: 'sd-d', kind: 'schema' }]);
    const d = migrationDir(UPS);
    dirs.push(d);
    const file = fleet.writeTenantsFile(tenants);
    const first = await fleet.cliJson(['rollout', '--tenants', file, '--all', '--dir', d.dir, '--wait']);
    expect(first.code, why(first)).toBe(0);
    await tenants[2]!.query('ALTER TABLE orders ALTER COLUMN note TYPE text');
    d.write('004_users_name.sql', 'ALTER TABLE users ADD COLUMN name text;\n');
    // the CLI reads the tenants itself: it needs what the workers need to resolve the URLs
    const r = await fleet.cliJson(['rollout', '--tenants', file, '--all', '--dir', d.dir, '--skip-drifted', '--wait'], {
      env: { TENANT_PW: 'unused' },
    });
    expect(r.code, why(r)).toBe(0);
    expect(r.json.tenants.map((t: { id: string }) => t.id)).toEqual(['sd-a', 'sd-b', 'sd-d']);
    expect(r.json.skipped).toEqual([{ id: 'sd-c', reason: 'schema drift at 003_orders_idx.sql: column orders.note: text, majority character varying(200)' }]);
    expect((await trackingRows(tenants[2]!))?.map((x) => x.name)).toEqual(Object.keys(UPS));
    const status = await fleet.cli(['rollout', 'status', r.json.id]);
    expect(status.stdout).toMatch(/⊘ sd-c\s+skipped\s+schema drift at 003_orders_idx.sql/);
    expect(status.stdout).toContain('1 skipped');
  });
});
