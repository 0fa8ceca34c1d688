/**
 * Issue 9, section 5, through the worker path: a `flotilla worker` (tenant
 * connections and lock sessions from its connection cache) and a CLI on the
 * same tenant while a migration calls pg_advisory_unlock_all(). Whoever comes
 * second waits (the worker: its job is delayed and comes back) and then finds
 * nothing pending; every file is applied once.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCli } from '../helpers/cli.js';
import { migrationDir } from '../helpers/migrations.js';
import { Fleet, trackingRows, waitFor, why, type FleetTenant } from '../helpers/fleet.js';

let fleet: Fleet;
const cleanups: (() => void)[] = [];
const clients: pg.Client[] = [];

beforeAll(async () => {
  fleet = await Fleet.create();
  await fleet.startWorker({ concurrency: 2 });
}, 240_000);

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => {});
  await fleet?.cleanup();
  for (const c of cleanups) c();
}, 120_000);

interface View {
  state: string;
  tenants: { id: string; state: string; applied: string[]; error: string | null; attempts: number }[];
}

/** Files whose 002 releases every advisory lock of its session, then waits at a gate the test holds. */
function files(gate: string): Record<string, string> {
  return {
    '001_a.sql': 'CREATE TABLE a (id int);',
    '002_unlock.sql': `SELECT pg_advisory_unlock_all();\nLOCK TABLE ${gate} IN SHARE MODE;\nCREATE TABLE b (id int);`,
    '003_c.sql': 'CREATE TABLE c (id int);',
  };
}

const spawnCli = (args: string[]) => {
  const c = startCli(args, { timeoutMs: 90_000 });
  return { output: c.stdout, done: c.done };
};

async function gateWaiters(t: FleetTenant): Promise<number> {
  const r = await t.query(
    `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%LOCK TABLE public.gate%'`,
  );
  return Number(r.rows[0].n);
}

async function closedGate(t: FleetTenant): Promise<pg.Client> {
  await t.query('CREATE TABLE IF NOT EXISTS public.gate (id int)');
  const c = await t.db.client();
  clients.push(c);
  await c.query('BEGIN; LOCK TABLE public.gate IN ACCESS EXCLUSIVE MODE');
  return c;
}

function cliArgs(t: FleetTenant, dir: string): string[] {
  return ['pending', '--dir', dir, '--database-url', t.urlTemplate, ...(t.schema ? ['--schema', t.schema] : []), '--lock-timeout', '60s'];
}

describe('the worker path', () => {
  it("a CLI holds the tenant, its file unlocks everything: the worker's job waits, then finds nothing pending", async () => {
    const [t] = await fleet.addTenants([{ id: 'lk-cli-first' }]);
    const dir = migrationDir(files('public.gate'));
    cleanups.push(dir.cleanup);
    const gate = await closedGate(t!);
    const cli = spawnCli(cliArgs(t!, dir.dir));
    await waitFor('the CLI at the gate', async () => (await gateWaiters(t!)) === 1);
    const rollout = fleet.cliJson<View>(['rollout', '--dir', dir.dir, '--tenants', fleet.writeTenantsFile([t!]), '--all', '--lock-timeout', '60s', '--wait'], {
      timeoutMs: 120_000,
    });
    // the worker came and was sent away (or, with a lost lock, is at the gate too)
    await waitFor('the worker to meet the lock', async () => /locked by another runner/.test(fleet.workerLogs()) || (await gateWaiters(t!)) === 2);
    await gate.query('COMMIT');
    const one = await cli.done;
    const r = await rollout;
    expect(one.code, one.stdout + one.stderr).toBe(0);
    expect(one.stdout).toContain('Completed: 3 applied, 0 failed');
    expect(r.code, why(r)).toBe(0);
    expect(r.json.state).toBe('succeeded');
    expect(r.json.tenants[0]).toMatchObject({ state: 'succeeded', applied: [] });
    expect((await trackingRows(t!))!.map((x) => x.name)).toEqual(Object.keys(files('')));
  });

  it('the worker holds a schema tenant, its file unlocks everything: a CLI waits, then finds nothing pending', async () => {
    const [t, other] = await fleet.addTenants([
      { id: 'lk-worker-first', kind: 'schema' },
      { id: 'lk-worker-other', kind: 'schema' },
    ]);
    const dir = migrationDir(files('public.gate'));
    cleanups.push(dir.cleanup);
    const gate = await closedGate(t!);
    const rollout = fleet.cliJson<View>(
      ['rollout', '--dir', dir.dir, '--tenants', fleet.writeTenantsFile([t!, other!]), '--all', '--lock-timeout', '60s', '--wait'],
      { timeoutMs: 120_000 },
    );
    // both tenants share the database and the gate: both jobs wait there
    await waitFor('the worker at the gate', async () => (await gateWaiters(t!)) === 2, 90_000);
    const cli = spawnCli(cliArgs(t!, dir.dir));
    await waitFor('the CLI to wait for the lock', async () => cli.output().includes('Waiting for the migration lock') || (await gateWaiters(t!)) === 3, 60_000);
    await gate.query('COMMIT');
    const [two, r] = [await cli.done, await rollout];
    expect(r.code, why(r)).toBe(0);
    expect(r.json.tenants.map((x) => [x.id, x.state, x.applied.length])).toEqual([
      [t!.id, 'succeeded', 3],
      [other!.id, 'succeeded', 3],
    ]);
    expect(two.code, two.stdout + two.stderr).toBe(0);
    expect(two.stdout).toContain('Waiting for the migration lock');
    expect(two.stdout).toContain('Found 0 pending migrations');
    for (const x of [t!, other!]) expect((await trackingRows(x))!.map((y) => y.name)).toEqual(Object.keys(files('')));
  });
});
