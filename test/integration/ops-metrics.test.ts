/**
 * Issue 12 §2: a worker's Prometheus metrics (`flotilla worker --metrics-port`) match what a real
 * rollout did, as the control database records it. Two workers with metrics; one rollout where
 * three tenants succeed, one fails (its table already exists: 42P07, not retried) and one hits
 * lock_timeout once (55P03, retried, then succeeds); the two endpoints are scraped, parsed and
 * summed. Then the per-rollout gauges of an active rollout (a tenant waiting for its window)
 * against `rollout status`, and gone once it is cancelled. No URL or password in any scrape.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { Fleet, SECRET, waitFor, why, type WorkerProcess } from '../helpers/fleet.js';
import { spawnWorker } from '../helpers/fleet-base.js';
import { migrationDir } from '../helpers/migrations.js';
import { freePort } from '../helpers/ops-redis-cluster.js';
import { scrape, total, type Sample } from '../helpers/ops-prometheus.js';
import { REPO, runCli } from '../helpers/cli.js';

const FILES = {
  '001_a.sql': 'CREATE TABLE a (id int);\n',
  '002_held.sql': 'CREATE TABLE IF NOT EXISTS held (id int);\nALTER TABLE held ADD COLUMN IF NOT EXISTS x int;\n',
};

let fleet: Fleet;
const dir = migrationDir(FILES);
const urls: string[] = [];

async function startMetricsWorker(): Promise<string> {
  const port = await freePort();
  const proc = spawnWorker({
    env: fleet.workerEnv(),
    concurrency: 2,
    args: ['--drain-timeout', '5s', '--metrics-port', String(port), '--metrics-host', '127.0.0.1'],
  });
  const id = await proc.started;
  fleet.workers.push({ ...proc, id } as WorkerProcess);
  expect(proc.output()).toContain(`metrics on http://127.0.0.1:${port}/metrics`);
  return `http://127.0.0.1:${port}/metrics`;
}

const scrapeAll = async () => Promise.all(urls.map(scrape));

beforeAll(async () => {
  fleet = await Fleet.create({ reconcileEvery: '1s' });
  urls.push(...(await Promise.all([startMetricsWorker(), startMetricsWorker()])));
}, 120_000);

afterAll(async () => {
  await fleet?.cleanup();
  dir.cleanup();
}, 120_000);

describe('worker metrics', { timeout: 120_000 }, () => {
  it('the endpoints add up to the finished rollout: outcomes, attempts per phase, lock_timeout hits, retries by SQLSTATE', async () => {
    // schema tenants but one (each database the fleet drops at the end costs a checkpoint)
    const tenants = await fleet.addTenants([
      { id: 'm-1', password: 'env' },
      { id: 'm-2', kind: 'schema' },
      { id: 'm-3', kind: 'schema' },
      { id: 'm-bad', kind: 'schema' },
      { id: 'm-held', kind: 'schema' },
    ]);
    const bad = fleet.tenant('m-bad');
    await bad.query(`CREATE SCHEMA ${bad.tableSchema}; CREATE TABLE ${bad.tableSchema}.a (id int)`);
    const held = fleet.tenant('m-held');
    await held.query(`CREATE SCHEMA ${held.tableSchema}; CREATE TABLE ${held.tableSchema}.held (id int)`);
    // an open transaction holding ACCESS SHARE on `held`: the ALTER waits, then hits lock_timeout
    const blocker = new pg.Client({ connectionString: held.db.url });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query(`SELECT * FROM ${held.tableSchema}.held`);
    const before = await scrapeAll();
    expect(
      total(
        before.map((s) => s.samples),
        'flotilla_tenants_finished_total',
      ),
    ).toBe(0);

    const run = runCli(
      [
        'rollout',
        '--dir',
        dir.dir,
        '--tenants',
        fleet.writeTenantsFile(tenants),
        '--all',
        '--max-failures',
        '1',
        '--lock-timeout',
        '300ms',
        '--wait',
        '--json',
      ],
      { env: fleet.cliEnv(), timeoutMs: 120_000 },
    );
    await waitFor(
      'the held tenant to fail once on lock_timeout',
      async () => (await fleet.controlQuery(`SELECT 1 FROM flotilla.attempts WHERE tenant_id = 'm-held' AND state = 'retrying'`)).rowCount,
      60_000,
    );
    await blocker.query('COMMIT');
    await blocker.end();
    const r = await run;
    expect(r.code, why(r)).toBe(1);
    const view = JSON.parse(r.stdout);
    const byId = Object.fromEntries(view.tenants.map((t: { id: string; state: string }) => [t.id, t.state]));
    expect(byId).toEqual({ 'm-1': 'succeeded', 'm-2': 'succeeded', 'm-3': 'succeeded', 'm-bad': 'failed', 'm-held': 'succeeded' });

    const scrapes = await scrapeAll();
    const samples = scrapes.map((s) => s.samples);
    for (const s of scrapes) {
      expect(s.text).not.toContain(SECRET);
      expect(s.text).not.toMatch(/postgres(ql)?:\/\/|rediss?:\/\//);
    }
    // the control database's record of the rollout
    const attempts = (
      await fleet.controlQuery<{ state: string; code: string | null }>(
        `SELECT state, error->'pg'->>'code' AS code FROM flotilla.attempts WHERE rollout_id = $1`,
        [view.id],
      )
    ).rows;
    const counts = view.counts as Record<string, number>;
    expect(total(samples, 'flotilla_tenants_finished_total', { outcome: 'succeeded' })).toBe(counts.succeeded);
    expect(total(samples, 'flotilla_tenants_finished_total', { outcome: 'failed' })).toBe(counts.failed);
    const retried = attempts.filter((a) => a.state === 'retrying');
    expect(retried.length).toBeGreaterThanOrEqual(1);
    expect(retried.every((a) => a.code === '55P03')).toBe(true);
    expect(total(samples, 'flotilla_retries_total', { sqlstate: '55P03' })).toBe(retried.length);
    expect(total(samples, 'flotilla_retries_total')).toBe(retried.length);
    expect(total(samples, 'flotilla_lock_timeouts_total')).toBe(retried.length);
    expect(total(samples, 'flotilla_attempts_total', { outcome: 'retrying' })).toBe(retried.length);
    expect(total(samples, 'flotilla_attempts_total', { outcome: 'migrated' })).toBe(counts.succeeded);
    expect(total(samples, 'flotilla_attempts_total', { outcome: 'failed' })).toBe(attempts.filter((a) => a.state === 'failed').length);
    // every recorded attempt connected and ran the engine: one observation each, in the phases they all pass through
    for (const phase of ['connect', 'plan', 'lock_wait', 'apply', 'validation', 'ledger', 'claim', 'queue']) {
      expect(total(samples, 'flotilla_attempt_phase_seconds_count', { phase }), phase).toBe(attempts.length);
      expect(total(samples, 'flotilla_attempt_phase_seconds_bucket', { phase, le: '+Inf' }), phase).toBe(attempts.length);
    }
    // the apply phase of the held tenant's first attempt waited about 300 ms for its lock
    expect(total(samples, 'flotilla_attempt_phase_seconds_sum', { phase: 'apply' })).toBeGreaterThan(0.25);
    // post-commit checks and the record ran for the attempts that succeeded
    expect(total(samples, 'flotilla_attempt_phase_seconds_count', { phase: 'checks' })).toBe(counts.succeeded);
    expect(total(samples, 'flotilla_attempt_phase_seconds_count', { phase: 'record' })).toBe(counts.succeeded);
    expect(total(samples, 'flotilla_jobs_active')).toBe(0);
    // the rollout is over: no progress gauge for it
    expect(samples.flat().filter((s: Sample) => s.labels.rollout === view.id)).toEqual([]);
    expect(samples.flat().some((s) => s.name === 'flotilla_process_resident_memory_bytes')).toBe(true);

    // the Grafana dashboard queries only metrics a worker really serves
    const dashboard = readFileSync(join(REPO, 'docs', 'grafana-dashboard.json'), 'utf8');
    // (declared names: a gauge of active rollouts has no sample once none is active; a histogram serves _bucket, _sum, _count)
    const declared = scrapes.flatMap((x) => [...x.text.matchAll(/^# TYPE (\S+) (\S+)$/gm)]);
    const served = new Set(declared.flatMap((m) => (m[2] === 'histogram' ? ['_bucket', '_sum', '_count'].map((x) => m[1]! + x) : [m[1]!])));
    const queried = new Set(
      [
        ...JSON.parse(dashboard)
          .panels.flatMap((p: { targets: { expr: string }[] }) => p.targets.map((t) => t.expr))
          .join(' ')
          .matchAll(/flotilla_\w+/g),
      ].map((m) => m[0]),
    );
    expect(queried.size).toBeGreaterThan(8);
    for (const name of queried) expect(served.has(name), `${name} (docs/grafana-dashboard.json)`).toBe(true);
  });

  it('an active rollout has progress gauges equal to `rollout status`; cancelled, it drops out', async () => {
    const tenants = await fleet.addTenants([
      { id: 'g-now', kind: 'schema' },
      { id: 'g-later', kind: 'schema', window: { cron: '0 3 1 1 *', durationMinutes: 1 } },
    ]);
    const created = await fleet.cliJson(['rollout', '--dir', dir.dir, '--tenants', fleet.writeTenantsFile(tenants), '--all']);
    expect(created.code, why(created)).toBe(0);
    const id = created.json.id as string;
    await waitFor('g-now succeeded and g-later scheduled', async () => {
      const s = await fleet.tenantStates(id);
      return s.get('g-now')?.state === 'succeeded' && s.get('g-later')?.state === 'scheduled';
    });
    const status = await fleet.cliJson(['rollout', 'status', id]);
    const samples = (await scrapeAll()).map((s) => s.samples);
    for (const one of samples) {
      // every worker reports the same progress (read from the control database)
      const mine = one.filter((s) => s.name === 'flotilla_rollout_tenants' && s.labels.rollout === id);
      expect(Object.fromEntries(mine.map((s) => [s.labels.state, s.value]))).toEqual(status.json.counts);
      expect(one.find((s) => s.name === 'flotilla_rollout_waves' && s.labels.rollout === id)?.value).toBe(1);
      expect(one.find((s) => s.name === 'flotilla_queue_jobs' && s.labels.state === 'delayed')?.value).toBeGreaterThanOrEqual(1);
    }
    const cancelled = await fleet.cli(['rollout', 'cancel', id]);
    expect(cancelled.code, why(cancelled)).toBe(0);
    const after = (await scrapeAll()).map((s) => s.samples);
    expect(after.flat().filter((s) => s.labels.rollout === id)).toEqual([]);
  });

  it('a metrics port in use is refused (exit 2); --metrics-host alone is refused', async () => {
    const port = new URL(urls[0]!).port;
    const busy = await runCli(['worker', '--metrics-port', port, '--metrics-host', '127.0.0.1'], { env: fleet.cliEnv(), timeoutMs: 60_000 });
    expect(busy.code, why(busy)).toBe(2);
    expect(busy.stderr).toContain(`--metrics-port ${port}`);
    const hostOnly = await runCli(['worker', '--metrics-host', '127.0.0.1'], { env: fleet.cliEnv() });
    expect(hostOnly.code, why(hostOnly)).toBe(2);
    const notFound = await fetch(urls[0]!.replace('/metrics', '/nothing'));
    expect(notFound.status).toBe(404);
  });
});
