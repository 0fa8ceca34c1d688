/**
 * `npm run bench:control [-- --tenants 50000 --history 300 --workers 100,150,200 --connections 24 --seconds 8]`:
 * the control plane alone, no tenant database and no Redis. Two control
 * databases, same rows, same run: one at this commit (control migration 006:
 * counters, dispatch lock taken without waiting) and one migrated to 005 and
 * driven by the code path before it (bench/control-baseline.ts: record_attempt
 * locks the rollout row, a full dispatch counts the rollout's tenants).
 *
 * Rows are created directly: a rollout of --tenants tenants, a rollout of
 * 1,000 (to show what grows with the size) and --history finished rollouts of
 * 200 tenants each (finished 1 to --history days ago). Then it times: dispatch
 * per finished tenant (claim, record, dispatch when due; one worker), one full
 * dispatch, `rollout status` (in process and the CLI end to end), `rollouts`,
 * `rollouts prune`, and the ceiling in completions per second of 100-200
 * concurrent simulated workers (claim + record + dispatch against the control
 * database, an in-memory queue instead of BullMQ), checking afterwards that no
 * tenant was claimed twice, the window (500) was never exceeded and the
 * counters equal a count of the rows. Finally the old database is upgraded to
 * 006 (the counters backfilled) and checked the same way.
 */
import { spawnSync } from 'node:child_process';
import { loadavg, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { ControlStore } from '../src/control/store.js';
import { CONTROL_MIGRATIONS, CONTROL_SCHEMA, CONTROL_TRACKING_TABLE } from '../src/control/schema.js';
import { Migrator } from '../src/migrator.js';
import { trustedMigrationSet } from '../src/core/migration-set.js';
import { assignWaves, rolloutOptions, type RolloutOptions } from '../src/core/rollout-plan.js';
import type { DispatchedJob } from '../src/core/jobs.js';
import type { Tenant } from '../src/core/tenants.js';
import { DISPATCH_WINDOW } from '../src/core/dispatch.js';
import { rolloutView, rolloutViewOf, printRollout } from '../src/cli/print/rollout.js';
import { jsonReplacer, type Output } from '../src/cli/output.js';
import { CLI, adminQuery, dbUrl } from '../test/helpers/fleet-base.js';
import { oldDispatch, oldRecordAttempt } from './control-baseline.js';

const { values } = parseArgs({
  options: {
    tenants: { type: 'string', default: '50000' },
    history: { type: 'string', default: '300' },
    workers: { type: 'string', default: '100,150,200' },
    connections: { type: 'string', default: '24' },
    seconds: { type: 'string', default: '8' },
    sequential: { type: 'string', default: '1000' },
  },
});
const admin = process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const N = Number(values.tenants);
const HISTORY = Number(values.history);
const CONNECTIONS = Number(values.connections);
const SECONDS = Number(values.seconds);
const PREFIX = '{flotilla}';
const ENGINE: RolloutOptions['engine'] = {
  trackingTable: 'migrations',
  lockTimeoutMs: 10_000,
  statementTimeoutMs: 3_600_000,
  validate: true,
  validation: {},
  singleTransaction: false,
};
const SET = trustedMigrationSet([{ name: '001_bench.sql', sql: 'SELECT 1' }]);

type Path = 'new' | 'old';
interface Db {
  path: Path;
  url: string;
  store: ControlStore;
}

const ms = (t: number) => `${t < 10 ? t.toFixed(2) : t < 100 ? t.toFixed(1) : Math.round(t)} ms`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timeIt<T>(fn: () => Promise<T>, runs = 5): Promise<{ ms: number; value: T }> {
  const times: number[] = [];
  let value!: T;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    value = await fn();
    times.push(performance.now() - t);
  }
  return { ms: median(times), value };
}

async function controlDb(path: Path): Promise<Db> {
  const name = `flotilla_bench_control_${path}`;
  await adminQuery(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await adminQuery(admin, `CREATE DATABASE ${name}`);
  const url = dbUrl(admin, name);
  const store = new ControlStore(url, { max: CONNECTIONS, queuePrefix: PREFIX });
  if (path === 'new') await store.migrate();
  else await migrateTo(store.pool, 5);
  return { path, url, store };
}

/** The control schema up to migration `n` (as control/migrate.ts, with fewer files). */
async function migrateTo(pool: pg.Pool, n: number): Promise<void> {
  const client = await pool.connect();
  try {
    const report = await new Migrator(
      client,
      { schema: CONTROL_SCHEMA, trackingTable: CONTROL_TRACKING_TABLE, validate: false, appliedBy: 'bench', lockWaitTimeoutMs: 60_000 },
      undefined,
      { lockSessions: { target: 'bench', open: () => pool.connect(), release: async (c) => (c as pg.PoolClient).release() } },
    ).migrate(trustedMigrationSet(CONTROL_MIGRATIONS.slice(0, n)));
    if (report.failed) throw report.failed.error;
  } finally {
    client.release();
  }
}

function tenants(n: number, tag: string): Tenant[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${tag}${String(i).padStart(6, '0')}`,
    databaseUrl: `postgres://app:\${PW}@db-${i % 20}:5432/t${i}`,
    tags: [],
  }));
}

async function createRollout(db: Db, id: string, n: number, waves = true): Promise<void> {
  const ts = tenants(n, 't');
  const { assignments, waveCount } = waves ? assignWaves(ts, { count: 10 }, { percent: 25 }) : assignWaves(ts, undefined, undefined);
  await db.store.createRollout({
    id,
    setChecksum: SET.checksum,
    options: rolloutOptions({}, n, false, ENGINE),
    waveCount,
    createdBy: 'bench',
    assignments,
  });
}

/** --history finished rollouts of 200 tenants (one attempt each), rollout g finished g days ago. */
async function seedHistory(db: Db): Promise<void> {
  const opts = JSON.stringify(rolloutOptions({}, 200, false, ENGINE));
  await db.store.pool.query(
    `INSERT INTO flotilla.rollouts (id, set_checksum, state, options, wave_count, created_by, created_at, finished_at, queue_prefix)
     SELECT 'h' || lpad(g::text, 5, '0'), $1, 'succeeded', $2, 1, 'bench', now() - make_interval(days => g, mins => 10), now() - make_interval(days => g), $4
       FROM generate_series(1, $3) g`,
    [SET.checksum, opts, HISTORY, PREFIX],
  );
  await db.store.pool.query(
    `INSERT INTO flotilla.rollout_tenants (rollout_id, tenant_id, position, wave, server, state, database_url, dispatched_at, attempts, started_at, finished_at, duration_ms)
     SELECT r.id, 't' || lpad(i::text, 6, '0'), i, 0, 'db-' || (i % 20) || ':5432', 'succeeded', 'postgres://app@db/t', r.created_at, 1, r.created_at, r.finished_at, 1000
       FROM flotilla.rollouts r, generate_series(0, 199) i WHERE r.id LIKE 'h%'`,
  );
  await db.store.pool.query(
    `INSERT INTO flotilla.attempts (rollout_id, tenant_id, generation, attempt, kind, state, worker, started_at, finished_at, duration_ms)
     SELECT rollout_id, tenant_id, 0, 1, 'migrate', 'succeeded', 'bench', started_at, finished_at, 1000 FROM flotilla.rollout_tenants WHERE rollout_id LIKE 'h%'`,
  );
  await db.store.pool.query('ANALYZE');
}

function dispatch(db: Db, id: string): Promise<DispatchedJob[]> {
  return db.path === 'new' ? db.store.dispatch(id, new Date()) : oldDispatch(db.store.pool, id, new Date(), PREFIX);
}

/** One tenant finishes: claim, record (succeeded), dispatch when due. Returns the jobs handed out. */
async function finish(db: Db, j: DispatchedJob, worker: string): Promise<DispatchedJob[] | undefined> {
  const claim = await db.store.claim(j.rolloutId, j.tenantId, j.generation, worker);
  if (!claim) return undefined;
  const a = {
    rolloutId: j.rolloutId,
    tenantId: j.tenantId,
    generation: j.generation,
    attempt: claim.attempt,
    state: 'succeeded' as const,
    worker,
    startedAt: new Date(),
    durationMs: 1,
  };
  return db.path === 'new' ? db.store.recordAttempt({ ...a, applied: [] }, new Date()) : oldRecordAttempt(db.store.pool, a, new Date(), PREFIX);
}

/** Finished tenants one after another (one worker): mean ms per finished tenant. */
async function sequential(db: Db, id: string, count: number): Promise<number> {
  // what is already handed out (an earlier run, the old code path before an upgrade), then what is due
  const queue: DispatchedJob[] = [...(await db.store.inFlight(id)).filter((j) => j.state !== 'scheduled'), ...(await dispatch(db, id))];
  let done = 0;
  const t = performance.now();
  while (done < count && queue.length) {
    const next = await finish(db, queue.shift()!, 'seq');
    if (next) {
      done++;
      queue.push(...next);
    }
  }
  return (performance.now() - t) / done;
}

/** A queue in memory (BullMQ's place): workers wait for a job without spinning. */
class JobQueue {
  private jobs: DispatchedJob[] = [];
  private waiters: (() => void)[] = [];
  push(js: DispatchedJob[]) {
    this.jobs.push(...js);
    for (const w of this.waiters.splice(0, js.length)) w();
  }
  async take(stop: () => boolean): Promise<DispatchedJob | undefined> {
    while (!stop()) {
      const j = this.jobs.shift();
      if (j) return j;
      await new Promise<void>((res) => {
        this.waiters.push(res);
        setTimeout(res, 50);
      });
    }
    return undefined;
  }
}

interface Concurrent {
  perSecond: number;
  completions: number;
  maxInFlight: number;
  claimedTwice: number;
}

/** `workers` simulated workers for SECONDS on a fresh rollout: completions per second (after 1 s of warm-up). */
async function concurrent(db: Db, workers: number): Promise<Concurrent> {
  const id = `c-${db.path}-${workers}`;
  await createRollout(db, id, 40_000, false);
  const queue = new JobQueue();
  queue.push(await dispatch(db, id));
  let stop = false;
  let completions = 0;
  let counted = 0;
  let maxInFlight = 0;
  const watch = new pg.Client({ connectionString: db.url });
  await watch.connect();
  const sampler = (async () => {
    while (!stop) {
      // handed out and not finished, counted from the rows (both paths)
      const r = await watch.query(
        `SELECT count(*)::int AS n FROM flotilla.rollout_tenants WHERE rollout_id = $1 AND (state = 'running' OR (state = 'pending' AND dispatched_at IS NOT NULL))`,
        [id],
      );
      maxInFlight = Math.max(maxInFlight, r.rows[0].n);
      await new Promise((res) => setTimeout(res, 200));
    }
  })();
  let measuring = false;
  const loops = Array.from({ length: workers }, async (_, i) => {
    for (;;) {
      const j = await queue.take(() => stop);
      if (!j) return;
      const next = await finish(db, j, `w${i}`);
      if (!next) continue;
      completions++;
      if (measuring) counted++;
      queue.push(next);
    }
  });
  await new Promise((res) => setTimeout(res, 1000));
  measuring = true;
  const t = performance.now();
  await new Promise((res) => setTimeout(res, SECONDS * 1000));
  const elapsed = (performance.now() - t) / 1000;
  measuring = false;
  stop = true;
  await Promise.all(loops);
  await sampler;
  const twice = await watch.query(`SELECT count(*)::int AS n FROM flotilla.rollout_tenants WHERE rollout_id = $1 AND attempts > 1`, [id]);
  await watch.end();
  return { perSecond: counted / elapsed, completions, maxInFlight, claimedTwice: twice.rows[0].n };
}

/** The counters (006) against a count of the rows, for every rollout: the number of rollouts where they differ. */
async function countersMismatch(db: Db): Promise<number> {
  const r = await db.store.pool.query(`
    WITH rows AS (
      SELECT rollout_id, wave, count(*) FILTER (WHERE state = 'pending' AND dispatched_at IS NULL) AS waiting,
             count(*) FILTER (WHERE state = 'pending' AND dispatched_at IS NOT NULL) AS queued, count(*) FILTER (WHERE state = 'scheduled') AS scheduled,
             count(*) FILTER (WHERE state = 'running') AS running, count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
             count(*) FILTER (WHERE state = 'failed') AS failed, count(*) FILTER (WHERE state = 'cancelled') AS cancelled
        FROM flotilla.rollout_tenants GROUP BY 1, 2),
    counters AS (
      SELECT rollout_id, wave, sum(waiting) AS waiting, sum(queued) AS queued, sum(scheduled) AS scheduled, sum(running) AS running,
             sum(succeeded) AS succeeded, sum(failed) AS failed, sum(cancelled) AS cancelled
        FROM flotilla.rollout_counts GROUP BY 1, 2)
    SELECT count(DISTINCT coalesce(a.rollout_id, b.rollout_id))::int AS n FROM rows a FULL JOIN counters b USING (rollout_id, wave)
     WHERE (a.waiting, a.queued, a.scheduled, a.running, a.succeeded, a.failed, a.cancelled)
           IS DISTINCT FROM (b.waiting, b.queued, b.scheduled, b.running, b.succeeded, b.failed, b.cancelled)`);
  return r.rows[0].n;
}

function capture(json: boolean): Output & { size: () => number } {
  let size = 0;
  return {
    json,
    line: (t = '') => void (size += t.length + 1),
    data: (v) => void (size += JSON.stringify(v, jsonReplacer, 2).length),
    error: () => {},
    size: () => size,
  };
}

/** `rollout status` in process: new = counters + lock waits + a page (text) or every tenant (--json); old = every tenant, counted while listed. */
async function status(db: Db, id: string, json: boolean): Promise<number> {
  const s = db.store;
  const out = capture(json);
  const r = (await s.getRollout(id))!;
  if (db.path === 'old') {
    const rows = await s.pool.query(`SELECT * FROM flotilla.rollout_tenants WHERE rollout_id = $1 ORDER BY position`, [id]);
    const view = rolloutView(
      r,
      rows.rows.map((x) => ({ ...x, tenantId: x.tenant_id, applied: x.applied ?? [], durationMs: x.duration_ms, lockWaitMs: null, lockTimeouts: null })),
    );
    if (json) out.data(view);
    else printRollout(out, view);
    return out.size();
  }
  // what `rollout status` runs (cli/commands/rollout-status.ts): a page of 50 in text, every tenant in --json
  const view = (await rolloutViewOf(s, id, { offset: 0, ...(json ? {} : { limit: 50 }) }))!;
  if (json) out.data(view);
  else printRollout(out, view);
  return out.size();
}

function cli(args: string[], url: string): number {
  const env = { ...process.env, CONTROL_DATABASE_URL: url, DATABASE_URL: url, REDIS_URL: 'redis://127.0.0.1:6379' };
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    const r = spawnSync(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 28 });
    if (r.status !== 0) throw new Error(`flotilla ${args.join(' ')}: ${r.stderr}`);
    times.push(performance.now() - t);
  }
  return median(times);
}

function nodeFloor(): number {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    times.push(performance.now() - t);
  }
  return median(times);
}

async function listRollouts(db: Db, limit: number): Promise<number> {
  if (db.path === 'new') return (await db.store.listRollouts(limit)).length;
  const r = await db.store.pool.query(
    `SELECT r.*, (SELECT jsonb_object_agg(state, n) FROM (SELECT state, count(*) n FROM flotilla.rollout_tenants WHERE rollout_id = r.id GROUP BY state) s) AS counts
       FROM flotilla.rollouts r ORDER BY created_at DESC, id DESC LIMIT $1`,
    [limit],
  );
  return r.rows.length;
}

function gitCommit(): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  return r.stdout.trim() || 'unknown';
}

async function main(): Promise<void> {
  const started = performance.now();
  console.log(
    `bench:control · commit ${gitCommit()} · ${new Date().toISOString()} · ${cpus().length} cpus · load ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} · ${N} tenants, ${HISTORY} past rollouts, ${CONNECTIONS} control connections`,
  );
  const dbs = { new: await controlDb('new'), old: await controlDb('old') };
  const rows: [string, string, string][] = [];
  const row = (what: string, a: string, b: string) => {
    rows.push([what, a, b]);
    console.log(`  ${what.padEnd(58)} ${a.padStart(14)} ${b.padStart(14)}`);
  };
  for (const db of Object.values(dbs)) {
    await db.store.saveMigrationSet(SET);
    await seedHistory(db);
    await createRollout(db, 'big', N);
    await createRollout(db, 'small', 1000);
    await db.store.pool.query('ANALYZE');
  }
  console.log(`  rows created in ${Math.round((performance.now() - started) / 1000)} s`);
  console.log(`  ${''.padEnd(58)} ${'this commit'.padStart(14)} ${'before (005)'.padStart(14)}`);

  // dispatch per finished tenant, one worker
  for (const [id, size] of [
    ['small', 1000],
    ['big', N],
  ] as const) {
    const a = await sequential(dbs.new, id, Number(values.sequential) / (id === 'small' ? 2 : 1));
    const b = await sequential(dbs.old, id, Number(values.sequential) / (id === 'small' ? 2 : 1));
    row(`per finished tenant (claim+record+dispatch), ${size} tenants`, ms(a), ms(b));
  }
  for (const [id, size] of [
    ['small', 1000],
    ['big', N],
  ] as const) {
    const a = await timeIt(() => dispatch(dbs.new, id), 7);
    const b = await timeIt(() => dispatch(dbs.old, id), 7);
    row(`one full dispatch, ${size}-tenant rollout`, ms(a.ms), ms(b.ms));
  }

  // rollout status at N tenants
  const st = await timeIt(() => status(dbs.new, 'big', false));
  const so = await timeIt(() => status(dbs.old, 'big', false));
  row(`rollout status (text, in process), ${N} tenants`, ms(st.ms), ms(so.ms));
  const jt = await timeIt(() => status(dbs.new, 'big', true), 3);
  const jo = await timeIt(() => status(dbs.old, 'big', true), 3);
  row(`rollout status --json (every tenant, in process), ${(jt.value / 1e6).toFixed(1)} MB`, ms(jt.ms), ms(jo.ms));
  const floor = nodeFloor();
  row(`CLI: flotilla rollout status big (end to end; node -e 0: ${ms(floor)})`, ms(cli(['rollout', 'status', 'big'], dbs.new.url)), 'n/a');
  row(`CLI: flotilla rollout status big --json (end to end)`, ms(cli(['rollout', 'status', 'big', '--json'], dbs.new.url)), 'n/a');

  // rollouts with hundreds of past rollouts
  for (const limit of [20, 500]) {
    const a = await timeIt(() => listRollouts(dbs.new, limit));
    const b = await timeIt(() => listRollouts(dbs.old, limit));
    row(`rollouts --limit ${limit} (${HISTORY + 2} rollouts, ${a.value} listed)`, ms(a.ms), ms(b.ms));
  }
  row(`CLI: flotilla rollouts (end to end)`, ms(cli(['rollouts'], dbs.new.url)), 'n/a');

  // concurrent workers
  for (const w of values.workers.split(',').map(Number)) {
    const a = await concurrent(dbs.new, w);
    const b = await concurrent(dbs.old, w);
    row(`${w} concurrent workers: completions per second`, `${Math.round(a.perSecond)}/s`, `${Math.round(b.perSecond)}/s`);
    row(`  max in flight seen (window ${DISPATCH_WINDOW}) · claimed twice`, `${a.maxInFlight} · ${a.claimedTwice}`, `${b.maxInFlight} · ${b.claimedTwice}`);
  }
  row('counters equal a count of the rows (rollouts differing)', String(await countersMismatch(dbs.new)), 'n/a');

  // prune: rollouts finished more than 30% of the history's days ago
  const days = Math.floor(HISTORY * 0.3);
  const before = new Date(Date.now() - days * 86_400_000);
  const dry = await timeIt(() => dbs.new.store.prune(before, true), 1);
  const real = await timeIt(() => dbs.new.store.prune(before, false), 1);
  row(
    `rollouts prune --older-than ${days}d: ${real.value.rollouts.length} rollouts, ${real.value.tenantRows} tenant rows, ${real.value.attempts} attempts`,
    ms(real.ms),
    'no command',
  );
  row(`rollouts prune --older-than ${days}d --dry-run`, ms(dry.ms), 'no command');
  row(`rollouts --limit 20 after prune`, ms((await timeIt(() => listRollouts(dbs.new, 20))).ms), '');

  // the old database upgraded to 006: counters backfilled
  const up = await timeIt(() => dbs.old.store.migrate(), 1);
  row(`upgrade of the old control database to 006 (backfill)`, ms(up.ms), '');
  dbs.old.path = 'new';
  row('  after the upgrade, counters equal a count of the rows (rollouts differing)', String(await countersMismatch(dbs.old)), '');
  const resumed = await timeIt(() => sequential(dbs.old, 'big', 200), 1);
  row('  after the upgrade, per finished tenant on the big rollout', ms(resumed.value), '');

  const size = await dbs.new.store.pool.query(`SELECT pg_size_pretty(pg_database_size(current_database())) AS s`);
  console.log(`  control database size (this commit, after prune): ${size.rows[0].s}`);
  console.log(
    `  load after: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} · ${Math.round((performance.now() - started) / 1000)} s`,
  );
  for (const db of Object.values(dbs)) await db.store.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
