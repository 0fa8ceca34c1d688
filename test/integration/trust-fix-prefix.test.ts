/**
 * Issue 9, control plane: the queue prefix keeps fleets apart (promises 3 and
 * 12). Two real workers on two prefixes share one control database and one
 * Redis. A rollout (and a schedule) belongs to the prefix it was created with:
 * the other fleet's worker never reconciles, claims, dispatches or restores
 * it, `rollout --wait` says that no worker took a job, and retry / resume /
 * cancel run with the other prefix are refused (exit 2, naming both).
 * Control migration 005 gives rows made before it the default prefix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { ControlStore } from '../../src/control/store.js';
import { Migrator } from '../../src/migrator.js';
import { trustedMigrationSet } from '../../src/core/migration-set.js';
import { CONTROL_MIGRATIONS, CONTROL_SCHEMA, CONTROL_TRACKING_TABLE } from '../../src/control/schema.js';
import { startCli } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/db.js';
import { migrationDir } from '../helpers/migrations.js';
import { deleteKeys, redisUrl, testPrefix } from '../helpers/redis.js';
import { Fleet, trackingRows, waitFor, why, type WorkerProcess } from '../helpers/fleet.js';

const FILES = { '001_a.sql': 'CREATE TABLE a (id int);\n', '002_b.sql': 'CREATE TABLE b (id int);\n' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the queue prefix keeps fleets sharing a control database apart', () => {
  let fleet: Fleet;
  let other: string;
  let otherWorker: WorkerProcess;
  const dir = migrationDir(FILES);
  const otherEnv = () => ({ FLOTILLA_QUEUE_PREFIX: other });
  const ctl = async (sql: string, values?: unknown[]) => (await fleet.control.query(sql, values)).rows;
  const otherQueue = (name: string) => new Queue(name, { connection: { url: redisUrl() }, prefix: other });

  beforeAll(async () => {
    fleet = await Fleet.create({ reconcileEvery: '1s' });
    other = testPrefix();
    // the other fleet's worker: same control database, same Redis, same tenant password, another prefix
    otherWorker = await fleet.startWorker({ env: otherEnv() });
  }, 120_000);
  afterAll(async () => {
    await fleet?.cleanup();
    await deleteKeys(other).catch(() => {});
    dir.cleanup();
  }, 60_000);

  it("a worker of another prefix never takes a rollout's tenants; rollout --wait says no worker took a job; its own fleet's worker runs it", async () => {
    const tenants = await fleet.addTenants([{ id: 'pfx-1' }, { id: 'pfx-2', password: 'env' }, { id: 'pfx-3', kind: 'schema' }]);
    const run = startCli(['rollout', '--dir', dir.dir, '--tenants', fleet.writeTenantsFile(tenants), '--all', '--wait', '--json'], {
      env: fleet.cliEnv({ FLOTILLA_WAIT_HINT_AFTER: '2s' }),
      timeoutMs: 120_000,
    });
    await waitFor('the hint', async () => /no worker has taken a job/.test(run.stderr()), 60_000, 100);
    await sleep(3000); // the other worker reconciles every second
    const id = (await ctl(`SELECT id FROM flotilla.rollouts ORDER BY created_at DESC LIMIT 1`))[0].id as string;
    expect(await ctl(`SELECT queue_prefix FROM flotilla.rollouts WHERE id = $1`, [id])).toEqual([{ queue_prefix: fleet.prefix }]);
    const rows = await ctl(
      `SELECT tenant_id, state, attempts, worker, dispatched_at IS NOT NULL AS dispatched FROM flotilla.rollout_tenants WHERE rollout_id = $1`,
      [id],
    );
    for (const r of rows) expect(r, r.tenant_id).toMatchObject({ state: 'pending', attempts: 0, worker: null });
    for (const t of tenants) expect((await trackingRows(t)) ?? [], t.id).toEqual([]);
    const q = otherQueue('migrate');
    try {
      expect(Object.values(await q.getJobCounts()).reduce((a, b) => a + b, 0)).toBe(0);
    } finally {
      await q.close();
    }
    expect(otherWorker.output()).not.toContain(id);

    const own = await fleet.startWorker();
    const r = await run.done;
    expect(r.code, why(r)).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ id, state: 'succeeded' });
    const done = await ctl(`SELECT DISTINCT worker FROM flotilla.rollout_tenants WHERE rollout_id = $1`, [id]);
    expect(done).toEqual([{ worker: own.id }]);
    await fleet.stopWorker(own);
  }, 180_000);

  it('rollout retry / resume / cancel with another prefix are refused (exit 2, both prefixes named); nothing changes', async () => {
    const tenants = await fleet.addTenants([{ id: 'pfx-idle' }]);
    const created = await fleet.cliJson(['rollout', '--dir', dir.dir, '--tenants', fleet.writeTenantsFile(tenants), '--all']);
    expect(created.code, why(created)).toBe(0);
    const id = created.json.id as string;
    const before = await ctl(
      `SELECT r.state, t.state AS t_state, t.generation, t.dispatched_at FROM flotilla.rollouts r JOIN flotilla.rollout_tenants t ON t.rollout_id = r.id WHERE r.id = $1`,
      [id],
    );
    for (const cmd of [
      ['rollout', 'cancel', id],
      ['rollout', 'resume', id],
      ['rollout', 'retry', id],
      ['rollout', 'retry', id, '--refresh'],
    ]) {
      const r = await fleet.cli(cmd, { env: otherEnv() });
      expect(r.code, `${cmd.join(' ')}: ${why(r)}`).toBe(2);
      expect(r.stderr + r.stdout).toContain(fleet.prefix);
      expect(r.stderr + r.stdout).toContain(other);
      expect(r.stderr + r.stdout).not.toMatch(/This is a bug/);
      const j = await fleet.cliJson(cmd, { env: otherEnv() });
      expect(j.code).toBe(2);
      expect(j.json.error).toMatchObject({ code: 'queue_prefix_mismatch', kind: 'input' });
    }
    expect(
      await ctl(
        `SELECT r.state, t.state AS t_state, t.generation, t.dispatched_at FROM flotilla.rollouts r JOIN flotilla.rollout_tenants t ON t.rollout_id = r.id WHERE r.id = $1`,
        [id],
      ),
    ).toEqual(before);
    const q = otherQueue('migrate');
    try {
      expect(Object.values(await q.getJobCounts()).reduce((a, b) => a + b, 0)).toBe(0);
    } finally {
      await q.close();
    }
    // with its own prefix the same command works
    const cancelled = await fleet.cliJson(['rollout', 'cancel', id]);
    expect(cancelled.code, why(cancelled)).toBe(0);
    expect(cancelled.json.state).toBe('cancelled');
  }, 120_000);

  it("schedules belong to their prefix: the other fleet's worker does not restore them, lists do not mix, a name is per fleet", async () => {
    const tenants = await fleet.addTenants([{ id: 'pfx-sched' }]);
    const file = fleet.writeTenantsFile(tenants);
    const mine = await fleet.cli(['schedule', '--name', 'nightly', '--cron', '0 2 * * *', '--dir', dir.dir, '--tenants', file, '--all']);
    expect(mine.code, why(mine)).toBe(0);
    const theirs = await fleet.cli(['schedule', '--name', 'nightly', '--cron', '0 3 * * *', '--dir', dir.dir, '--tenants', file, '--all'], { env: otherEnv() });
    expect(theirs.code, why(theirs)).toBe(0);
    const onlyMine = await fleet.cli(['schedule', '--name', 'only-mine', '--cron', '0 4 * * *', '--dir', dir.dir, '--tenants', file, '--all']);
    expect(onlyMine.code, why(onlyMine)).toBe(0);
    expect(await ctl(`SELECT queue_prefix, name, cron FROM flotilla.schedules ORDER BY name, cron`)).toEqual([
      { queue_prefix: fleet.prefix, name: 'nightly', cron: '0 2 * * *' },
      { queue_prefix: other, name: 'nightly', cron: '0 3 * * *' },
      { queue_prefix: fleet.prefix, name: 'only-mine', cron: '0 4 * * *' },
    ]);
    const listOther = await fleet.cliJson(['schedule', 'list'], { env: otherEnv() });
    expect(listOther.json.map((s: { name: string; cron: string }) => [s.name, s.cron])).toEqual([['nightly', '0 3 * * *']]);

    await sleep(3000); // the other fleet's worker checks its schedulers every second
    const control = otherQueue('control');
    try {
      expect(await control.getJobScheduler('schedule.only-mine')).toBeFalsy();
      expect((await control.getJobScheduler('schedule.nightly'))?.pattern).toBe('0 3 * * *');
    } finally {
      await control.close();
    }
    // removing one fleet's schedule leaves the other's
    const removed = await fleet.cli(['schedule', 'remove', 'nightly'], { env: otherEnv() });
    expect(removed.code, why(removed)).toBe(0);
    expect(await ctl(`SELECT queue_prefix, name FROM flotilla.schedules ORDER BY name`)).toEqual([
      { queue_prefix: fleet.prefix, name: 'nightly' },
      { queue_prefix: fleet.prefix, name: 'only-mine' },
    ]);
  }, 120_000);
});

describe('control migration 005_queue_prefix', () => {
  it('gives existing rollouts and schedules the default prefix; only a store of that prefix reconciles and claims them', async () => {
    const db = await createTestDatabase('ctl');
    try {
      const c = await db.client();
      try {
        const before = trustedMigrationSet(CONTROL_MIGRATIONS.filter((m) => m.name < '005'));
        const report = await new Migrator(c, { schema: CONTROL_SCHEMA, trackingTable: CONTROL_TRACKING_TABLE, validate: false, appliedBy: 'test' }).migrate(
          before,
        );
        expect(report.failed).toBeUndefined();
        await c.query(`
          INSERT INTO flotilla.migration_sets (checksum, files) VALUES ('abc', '[]');
          INSERT INTO flotilla.rollouts (id, set_checksum, state, options, wave_count) VALUES ('r-old', 'abc', 'running', '{"dryRun":false}', 1);
          INSERT INTO flotilla.rollout_tenants (rollout_id, tenant_id, position, wave, server, database_url) VALUES ('r-old', 'a', 0, 0, 'prod:5432', 'postgres://prod/a');
          INSERT INTO flotilla.schedules (name, cron, tz, set_checksum, selection, options) VALUES ('old', '0 2 * * *', 'UTC', 'abc', '{"all":true}', '{}');
        `);
      } finally {
        await c.end();
      }
      const mine = new ControlStore(db.url);
      const theirs = new ControlStore(db.url, { queuePrefix: '{elsewhere}' });
      try {
        await mine.migrate();
        expect((await db.query(`SELECT queue_prefix FROM flotilla.rollouts`)).rows).toEqual([{ queue_prefix: '{flotilla}' }]);
        expect((await db.query(`SELECT queue_prefix FROM flotilla.schedules`)).rows).toEqual([{ queue_prefix: '{flotilla}' }]);
        expect(await theirs.runningRolloutIds()).toEqual([]);
        expect(await theirs.listSchedules()).toEqual([]);
        expect(await theirs.claim('r-old', 'a', 0, 'w')).toBeUndefined();
        expect(await theirs.dispatch('r-old', new Date())).toEqual([]);
        await expect(theirs.cancel('r-old', 'x')).rejects.toMatchObject({ code: 'queue_prefix_mismatch', kind: 'input' });
        expect(await mine.runningRolloutIds()).toEqual(['r-old']);
        expect((await mine.listSchedules()).map((s) => s.name)).toEqual(['old']);
        expect(await mine.claim('r-old', 'a', 0, 'w')).toMatchObject({ tenant: { id: 'a' } });
      } finally {
        await mine.close();
        await theirs.close();
      }
    } finally {
      await db.drop();
    }
  }, 60_000);
});
