/**
 * The control plane under a hostile reality (promises 7, 11, 13): the control
 * database goes away for a while (ALLOW_CONNECTIONS false, backends
 * terminated) in the middle of a rollout; no worker is listening; a worker
 * dies between committing files and recording them. The commands watching the
 * rollout keep watching, say what is going on once, and end with the right
 * exit code; the report equals the tenants' tracking tables.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { ControlStore } from '../../src/control/store.js';
import { Migrator } from '../../src/migrator.js';
import { rolloutAppliedBy, appliedByRollout } from '../../src/core/rollout-applied.js';
import { startCli as startCliWith } from '../helpers/cli.js';
import { adminQuery } from '../helpers/db.js';
import { migrationDir } from '../helpers/migrations.js';
import { Fleet, trackingRows, waitFor, why, type FleetTenant } from '../helpers/fleet.js';

const SLOW = {
  '001_a.sql': 'CREATE TABLE a (id int);\nSELECT pg_sleep(1.2);\n',
  '002_b.sql': 'CREATE TABLE b (id int);\nSELECT pg_sleep(1.2);\n',
  '003_c.sql': 'CREATE TABLE c (id int);\nSELECT pg_sleep(1.2);\n',
};
const NAMES = Object.keys(SLOW);

interface View {
  id: string;
  state: string;
  tenants: { id: string; state: string; applied: string[] }[];
}

/** A CLI child whose stderr can be watched while it runs. */
const startCli = (args: string[], env: Record<string, string>) => startCliWith(args, { env, timeoutMs: 300_000 });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('control plane: outages, idle queues, lost records', () => {
  let fleet: Fleet;
  const slow = migrationDir(SLOW);
  const ctl = async <R extends pg.QueryResultRow = any>(sql: string, values?: unknown[]) => (await fleet.control.query<R>(sql, values)).rows;
  const latestRollout = async () => (await ctl<{ id: string }>(`SELECT id FROM flotilla.rollouts ORDER BY created_at DESC LIMIT 1`))[0]?.id;
  const controlDown = async () => {
    await adminQuery(`ALTER DATABASE "${fleet.control.name}" ALLOW_CONNECTIONS false`);
    await adminQuery(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [fleet.control.name]);
  };
  const controlUp = () => adminQuery(`ALTER DATABASE "${fleet.control.name}" ALLOW_CONNECTIONS true`);
  /** the report equals the databases: applied = the tracking rows this rollout wrote */
  const expectReportEqualsTenants = async (id: string, tenants: FleetTenant[]) => {
    const rows = await ctl<{ tenant_id: string; state: string; applied: string[] }>(
      `SELECT tenant_id, state, applied FROM flotilla.rollout_tenants WHERE rollout_id = $1`,
      [id],
    );
    for (const t of tenants) {
      const tracking = (await trackingRows(t)) ?? [];
      const truth = appliedByRollout(
        NAMES,
        tracking.map((r) => ({ name: r.name, appliedBy: r.applied_by })),
        id,
      );
      const row = rows.find((r) => r.tenant_id === t.id)!;
      expect(row.state, t.id).toBe('succeeded');
      expect(truth, t.id).toEqual(NAMES);
      expect(row.applied, t.id).toEqual(truth);
    }
  };

  beforeAll(async () => {
    fleet = await Fleet.create({ reconcileEvery: '1s' });
  }, 60_000);
  afterAll(async () => {
    await controlUp().catch(() => {});
    await fleet?.cleanup();
    slow.cleanup();
  }, 60_000);

  it('rollout --wait with no worker listening says so once (FLOTILLA_WAIT_HINT_AFTER), keeps waiting, and ends 0 once a worker comes', async () => {
    const tenants = await fleet.addTenants([{ id: 'hint-1' }]);
    const run = startCli(
      ['rollout', '--dir', slow.dir, '--tenants', fleet.writeTenantsFile(tenants), '--all', '--wait'],
      fleet.cliEnv({ FLOTILLA_WAIT_HINT_AFTER: '2s' }),
    );
    await waitFor('the hint', async () => /no worker has taken a job/.test(run.stderr()), 60_000, 100);
    expect(run.stderr()).toContain(`FLOTILLA_QUEUE_PREFIX=${fleet.prefix}`);
    expect(run.child.exitCode).toBeNull(); // still waiting
    await sleep(2500);
    expect(run.stderr().match(/no worker has taken a job/g)).toHaveLength(1);
    await fleet.startWorker();
    const r = await run.done;
    expect(r.code, why(r)).toBe(0);
    expect(r.stdout).toMatch(/succeeded/);
    expect(r.stderr.match(/no worker has taken a job/g)).toHaveLength(1);
  }, 120_000);

  it('rollout --wait, rollout status, rollouts and the worker ride out an 8 s control-database outage, said once each way; exit 0; the report equals the tenants', async () => {
    const tenants = await fleet.addTenants([{ id: 'out-1' }, { id: 'out-2' }, { id: 'out-3', password: 'env' }]);
    // one worker, whichever test ran before (each test stands alone)
    if (!fleet.workers.some((w) => w.child.exitCode === null)) await fleet.startWorker();
    expect(fleet.workers.filter((w) => w.child.exitCode === null)).toHaveLength(1);
    const before = await latestRollout();
    const run = startCli(['rollout', '--dir', slow.dir, '--tenants', fleet.writeTenantsFile(tenants), '--all', '--wait', '--json'], fleet.cliEnv());
    const id = await waitFor('the rollout', async () => {
      const x = await latestRollout();
      return x !== before ? x : undefined;
    });
    await waitFor(
      'a tenant inside its migration',
      async () => (await ctl(`SELECT 1 FROM flotilla.rollout_tenants WHERE rollout_id = $1 AND state = 'running'`, [id])).length > 0,
      60_000,
      50,
    );

    await controlDown();
    const downAt = Date.now();
    // commands started during the outage wait for the database too
    const status = startCli(['rollout', 'status', id, '--json'], fleet.cliEnv());
    const list = startCli(['rollouts'], fleet.cliEnv());
    await sleep(8000);
    await controlUp();

    const [r, s, l] = await Promise.all([run.done, status.done, list.done]);
    expect(r.code, why(r)).toBe(0);
    expect(r.stderr.match(/control database unreachable/g), r.stderr).toHaveLength(1);
    expect(r.stderr).toMatch(/control database reachable again after \d/);
    expect(r.stderr).not.toMatch(/unexpected error|This is a bug/);
    const view = JSON.parse(r.stdout) as View;
    expect(view.state).toBe('succeeded');
    expect(s.code, why(s)).toBe(0);
    expect((JSON.parse(s.stdout) as View).id).toBe(id);
    expect(l.code, why(l)).toBe(0);
    expect(l.stdout).toContain(id);
    expect(Date.now() - downAt).toBeGreaterThanOrEqual(8000);

    const w = fleet.workers.find((x) => x.child.exitCode === null)!;
    expect(w.child.exitCode, w.output().slice(-2000)).toBeNull();
    expect(w.output().match(/control database unreachable: waiting for it/g)?.length ?? 0, w.output().slice(-3000)).toBe(1);
    expect(w.output()).toMatch(/control database reachable again/);
    await expectReportEqualsTenants(id, tenants);
    for (const t of view.tenants) expect(t.applied, t.id).toEqual(NAMES);
  }, 180_000);

  it('an outage longer than FLOTILLA_CONTROL_RETRY_FOR: exit 3 naming the control database, never "unexpected error"', async () => {
    await controlDown();
    try {
      const started = Date.now();
      const r = await fleet.cli(['rollout', 'status', 'some-id'], { env: { FLOTILLA_CONTROL_RETRY_FOR: '2s' } });
      expect(r.code, why(r)).toBe(3);
      expect(r.stderr).toMatch(/cannot connect to PostgreSQL at .*not currently accepting connections/);
      expect(r.stderr).toMatch(/control database unreachable/);
      expect(r.stderr).not.toMatch(/unexpected error|This is a bug/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    } finally {
      await controlUp();
    }
  }, 60_000);

  it('a worker that committed files but died before recording them: the next attempt records them (applied equals the tracking table)', async () => {
    await Promise.all(fleet.workers.map((w) => fleet.stopWorker(w)));
    const tenants = await fleet.addTenants([{ id: 'lost-1' }, { id: 'lost-2', kind: 'schema' }, { id: 'lost-all' }]);
    const created = await fleet.cliJson<View>(['rollout', '--dir', slow.dir, '--tenants', fleet.writeTenantsFile(tenants), '--all']);
    expect(created.code, why(created)).toBe(0);
    const id = created.json.id;
    // a worker claims each tenant, commits the first file (every file on lost-all), and dies before recording anything
    const store = new ControlStore(fleet.control.url, { queuePrefix: fleet.prefix });
    try {
      for (const t of tenants) {
        const claim = await store.claim(id, t.id, 0, 'doomed');
        expect(claim, t.id).toBeDefined();
        const set = await store.loadMigrationSet(claim!.setChecksum);
        const client = await t.db.client();
        try {
          const all = t.id === 'lost-all';
          const report = await new Migrator(client, {
            ...claim!.options.engine,
            schema: t.schema,
            lockWaitTimeoutMs: 0,
            appliedBy: rolloutAppliedBy('doomed', id),
          }).migrate(set, all ? {} : { only: NAMES[0]! });
          expect(report.applied.map((a) => a.name)).toEqual(all ? NAMES : [NAMES[0]]);
        } finally {
          await client.end();
        }
      }
    } finally {
      await store.close();
    }
    await fleet.startWorker();
    // `rollout resume --wait` (its own --wait): re-creates nothing here, then waits for the end like `rollout --wait`
    const resumed = await fleet.cliJson<View & { resume: { recreated: number } }>(['rollout', 'resume', id, '--wait']);
    expect(resumed.code, why(resumed)).toBe(0);
    expect(resumed.json).toMatchObject({ id, state: 'succeeded', resume: { recreated: 0 } });
    await expectReportEqualsTenants(id, tenants);
    // the post-commit checks the doomed worker never recorded were run by the next attempt, even with nothing left to apply
    const checks = await ctl<{ tenant_id: string; checks: unknown }>(`SELECT tenant_id, checks FROM flotilla.rollout_tenants WHERE rollout_id = $1`, [id]);
    for (const c of checks) expect(c.checks, c.tenant_id).not.toBeNull();
    const status = await fleet.cliJson<View>(['rollout', 'status', id]);
    for (const t of status.json.tenants) expect(t.applied, t.id).toEqual(NAMES);
  }, 180_000);
});
