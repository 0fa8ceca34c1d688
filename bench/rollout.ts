/**
 * `npm run bench -- [--tenants 200] [--workers 2] [--concurrency 2] [--no-peers]
 *                   [--big-rows 1000000] [--scale 1000] [--curve] [--json file] [--keep]`
 *
 * One run, one machine, the same tenant databases (reset between methods):
 *  1. the floor: one pg connection per tenant running migrations/ concatenated,
 *     at Flotilla's total concurrency (workers x concurrency), in process;
 *  2. Flotilla: W worker processes already running, `flotilla rollout --wait`
 *     timed from the command's start to its exit (per-file transactions, the
 *     default, and --single-transaction), then the same rollout again (no-op);
 *  3. peers, one CLI process per tenant via `xargs -P <same concurrency>`:
 *     dbmate and node-pg-migrate;
 * then where Flotilla's time per tenant goes (from the workers' logs), the
 * validation cost on a tenant with big tables (--big-rows), a rollout over many
 * schema-per-tenant tenants (--scale: enqueue time, no-op cost, memory, what
 * Redis and the control database keep), and with --curve the throughput for
 * 1, 2 and 4 worker processes, plotted to docs/performance-curve.svg.
 * Figures go to stdout and, as JSON, to --json (default bench-results.json).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { readMigrationFiles, loadMigrationDir } from '../src/adapters/fs-source.js';
import { takeSnapshot } from '../src/adapters/pg/snapshot.js';
import { buildMigrationSet } from '../src/core/migration-set.js';
import { Migrator } from '../src/migrator.js';
import { REPO, adminQuery, createFleet, dbUrl, spawnWorker, type FleetFixture, type SpawnedWorker } from '../test/helpers/fleet-base.js';
import { runCliTimed } from './cli-run.js';
import { cpuNow, cpuSince, type CpuReading } from './cpu.js';
import { PEER_METHODS, preparePeerMigrations, runPeer } from './peers.js';
import { curveSvg, type CurvePoint } from './curve.js';

const { values } = parseArgs({
  options: {
    tenants: { type: 'string', default: '200' },
    workers: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '2' },
    'no-peers': { type: 'boolean', default: false },
    'big-rows': { type: 'string', default: '1000000' },
    scale: { type: 'string', default: '1000' },
    curve: { type: 'boolean', default: false },
    plot: { type: 'string', default: join(REPO, 'docs', 'performance-curve.svg') },
    json: { type: 'string', default: 'bench-results.json' },
    keep: { type: 'boolean', default: false },
    // database names and Redis prefix: two runs (two commits) can go side by side on one machine
    name: { type: 'string', default: 'flotilla_bench' },
  },
});
const admin = process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `{${values.name!.replace(/_/g, '-')}}`;
const MIGRATIONS = join(REPO, 'migrations');

interface MethodRow {
  method: string;
  tenants: number;
  ok: number;
  totalMs: number;
  msPerTenant: number;
  ratio?: number;
}

const results: Record<string, unknown> = {};
const rows: MethodRow[] = [];
const say = (s = '') => console.log(s);
const sec = (ms: number) => (ms / 1000).toFixed(2);

async function main(): Promise<number> {
  const n = Number(values.tenants);
  const w = Number(values.workers);
  const c = Number(values.concurrency);
  results.machine = { cpus: (await import('node:os')).cpus().length, node: process.version, commit: gitCommit(), at: new Date().toISOString() };
  results.config = { tenants: n, workers: w, concurrency: c };
  let bad = 0;

  const t = performance.now();
  const fleet = await createFleet(admin, values.name!, n, 0);
  const urls = fleet.tenants.map((x) => x.url);
  say(`created ${n} tenant databases in ${sec(performance.now() - t)} s; workers ${w} x concurrency ${c} (total ${w * c})`);
  try {
    // 1. the floor (on tenants reset as for every method after it)
    await resetTenants(urls);
    const cpu: Record<string, CpuReading> = {};
    let at = cpuNow([]);
    const floorMs = await floor(urls, w * c);
    cpu.floor = cpuSince(at, []);
    rows.push({ method: 'floor (pg, concatenated SQL)', tenants: n, ok: n, totalMs: floorMs, msPerTenant: floorMs / n });

    // 2. Flotilla, workers already running
    await resetTenants(urls);
    const env = fleetEnv(fleet);
    await clearRedis();
    const workers = Array.from({ length: w }, () => spawnWorker({ env: countingEnv({ ...env, LOG_LEVEL: 'info' }), concurrency: c }));
    await Promise.all(workers.map((x) => x.started));
    const pids = workers.map((x) => x.pid);
    try {
      at = cpuNow(pids);
      const perFile = await rollout(fleet, env, workers, []);
      cpu.perFile = cpuSince(at, pids);
      rows.push({ method: 'flotilla rollout (validated)', tenants: n, ok: perFile.ok, totalMs: perFile.ms, msPerTenant: perFile.ms / n });
      at = cpuNow(pids);
      const noop = await rollout(fleet, env, workers, []);
      cpu.noop = cpuSince(at, pids);
      rows.push({ method: 'flotilla rollout, no-op rerun', tenants: n, ok: noop.upToDate, totalMs: noop.ms, msPerTenant: noop.ms / n });
      await resetTenants(urls);
      at = cpuNow(pids);
      const single = await rollout(fleet, env, workers, ['--single-transaction']);
      cpu.single = cpuSince(at, pids);
      rows.push({ method: 'flotilla rollout --single-transaction', tenants: n, ok: single.ok, totalMs: single.ms, msPerTenant: single.ms / n });
      bad += [perFile.ok, noop.upToDate, single.ok].filter((x) => x !== n).length;
      // the floor again, last: the machine is shared, so this says how much the load moved during the run
      await resetTenants(urls);
      const again = await floor(urls, w * c);
      rows.push({ method: 'floor again, after the rollouts', tenants: n, ok: n, totalMs: again, msPerTenant: again / n });
      results.enqueueMs = { perFile: perFile.enqueueMs, single: single.enqueueMs };
      results.phases = { perFile: perFile.phases, single: single.phases };
      results.roundTrips = { perFile: perFile.roundTrips, noop: noop.roundTrips, single: single.roundTrips };
      results.workerPeakRssMb = workers.map((x) => Math.round(x.peakRssMb()));
      results.cpuMsPerTenant = Object.fromEntries(
        Object.entries(cpu).map(([k, v]) => [k, Object.fromEntries(Object.entries(v).map(([p, s]) => [p, Math.round((s * 1000 * 10) / n) / 10]))]),
      );
    } finally {
      await Promise.all(workers.map((x) => x.stop()));
    }

    // 3. peers
    if (!values['no-peers']) {
      const dirs = await preparePeerMigrations(MIGRATIONS);
      try {
        for (const method of PEER_METHODS) {
          await resetTenants(urls);
          const r = await runPeer(method, urls, w * c, dirs);
          if (r.failures) {
            bad++;
            say(`${method}: ${r.failures} failures: ${r.errors.join(' | ')}`);
          }
          rows.push({
            method: `${method} (CLI per tenant, xargs -P ${w * c})`,
            tenants: n,
            ok: n - r.failures,
            totalMs: r.totalMs,
            msPerTenant: r.msPerTenant,
          });
        }
      } finally {
        dirs.cleanup();
      }
    }
    for (const r of rows) r.ratio = r.msPerTenant / (floorMs / n);
    results.methods = rows;
    printMethods(w * c);
    printPhases(results.phases as Record<string, Record<string, number>>);
    printRoundTrips(results.roundTrips as Record<string, RoundTrips>);
    printCpu(results.cpuMsPerTenant as Record<string, CpuReading>);
    say(`time to enqueue (rollout command: register, freeze, dispatch, addBulk): ${JSON.stringify(results.enqueueMs)} ms`);
    say(`peak RSS per worker: ${(results.workerPeakRssMb as number[]).map((x) => `${x} MB`).join(', ')}`);

    if (values.curve) await curve(fleet, urls, c);
  } finally {
    if (!values.keep) await fleet.drop();
  }

  if (Number(values['big-rows']) > 0) await bigTenant(Number(values['big-rows']));
  if (Number(values.scale) > 0) bad += await scale(Number(values.scale), w, c);

  writeFileSync(values.json!, `${JSON.stringify(results, null, 2)}\n`);
  say('');
  say(`results written to ${values.json}`);
  return bad ? 1 : 0;
}

/** CPU per tenant by process (bench/cpu.ts): the machine's two cores are what every method shares. */
function printCpu(cpu: Record<string, CpuReading>): void {
  say('');
  say("CPU per tenant, ms (from /proc: the server with its backends, Redis, the worker processes, this process: the floor's client and the rollout command)");
  say(`${'run'.padEnd(12)}${['postgres', 'redis', 'workers', 'bench', 'total'].map((h) => h.padStart(10)).join('')}`);
  for (const [run, v] of Object.entries(cpu)) {
    const total = v.postgres + v.redis + v.workers + v.bench;
    say(`${run.padEnd(12)}${[v.postgres, v.redis, v.workers, v.bench, total].map((x) => x.toFixed(1).padStart(10)).join('')}`);
  }
}

function fleetEnv(fleet: FleetFixture): NodeJS.ProcessEnv {
  return { ...process.env, CONTROL_DATABASE_URL: fleet.controlUrl, REDIS_URL: redisUrl, FLOTILLA_QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn' };
}

/** Where the workers write their round-trip counts (bench/round-trips.ts). */
const countsDir = mkdtempSync(join(tmpdir(), 'flotilla-bench-counts-'));
process.on('exit', () => rmSync(countsDir, { recursive: true, force: true }));

/** A worker's environment with the round-trip counter loaded. */
function countingEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const counter = pathToFileURL(join(REPO, '.bench-dist', 'bench', 'round-trips.js')).href;
  return { ...env, NODE_OPTIONS: `${env.NODE_OPTIONS ?? ''} --import ${counter}`.trim(), FLOTILLA_BENCH_COUNTS: join(countsDir, 'counts') };
}

interface RoundTrips {
  /** per migrated tenant: round trips to its database, sessions opened on it, round trips to the control database */
  tenant: number;
  connects: number;
  control: number;
  /** the tenant database's round trips by the first words of the query, per tenant */
  kinds: Record<string, number>;
  /** the same for the control database */
  controlKinds: Record<string, number>;
}

/** Collect (and reset) the workers' counts since the last call; per tenant of `tenants`. */
async function roundTrips(workers: SpawnedWorker[], fleet: FleetFixture, tenants: number): Promise<RoundTrips> {
  const control = new URL(fleet.controlUrl).pathname.slice(1);
  const sum: RoundTrips = { tenant: 0, connects: 0, control: 0, kinds: {}, controlKinds: {} };
  for (const x of workers) {
    const f = join(countsDir, `counts.${x.pid}`);
    rmSync(f, { force: true });
    x.child.kill('SIGUSR2');
    for (let i = 0; i < 100 && !existsSync(f); i++) await new Promise((r) => setTimeout(r, 20));
    if (!existsSync(f)) continue;
    const counts = JSON.parse(readFileSync(f, 'utf8')) as Record<string, { queries: number; connects: number; kinds: Record<string, number> }>;
    for (const [db, c] of Object.entries(counts)) {
      if (db === control) {
        sum.control += c.queries;
        for (const [k, v] of Object.entries(c.kinds)) sum.controlKinds[k] = (sum.controlKinds[k] ?? 0) + v;
        continue;
      }
      sum.tenant += c.queries;
      sum.connects += c.connects;
      for (const [k, v] of Object.entries(c.kinds)) sum.kinds[k] = (sum.kinds[k] ?? 0) + v;
    }
  }
  const per = (v: number) => Math.round((v / Math.max(1, tenants)) * 100) / 100;
  return {
    tenant: per(sum.tenant),
    connects: per(sum.connects),
    control: per(sum.control),
    kinds: perKind(sum.kinds),
    controlKinds: perKind(sum.controlKinds),
  };
  function perKind(kinds: Record<string, number>): Record<string, number> {
    return Object.fromEntries(
      Object.entries(kinds)
        .map(([k, v]) => [k, per(v)])
        .sort((a, b) => (b[1] as number) - (a[1] as number)),
    );
  }
}

interface RolloutRun {
  ms: number;
  roundTrips: RoundTrips;
  ok: number;
  upToDate: number;
  enqueueMs: number;
  phases: Record<string, number>;
}

/** `flotilla rollout --wait` over the fleet; phases averaged from the workers' log lines of this run. */
async function rollout(fleet: FleetFixture, env: NodeJS.ProcessEnv, workers: SpawnedWorker[], args: string[]): Promise<RolloutRun> {
  const marks = workers.map((x) => x.output().length);
  const r = await runCliTimed(['rollout', '--tenants', fleet.tenantsFile, '--all', '--wait', '--json', ...args], { ...env, LOG_LEVEL: 'info' });
  if (r.code !== 0) say(`rollout exited with ${r.code}: ${r.stderr.slice(-800)}`);
  const view = JSON.parse(r.stdout || '{"tenants":[]}');
  const tenants = view.tenants as { state: string; applied: string[] }[];
  const created = /"enqueueMs":(\d+)/.exec(r.stderr);
  const phases: Record<string, number> = {};
  let count = 0;
  for (const [i, x] of workers.entries()) {
    for (const line of x.output().slice(marks[i]).split('\n')) {
      if (!line.includes('"ms":')) continue;
      try {
        const j = JSON.parse(line) as { msg: string; ms: Record<string, number> };
        if (j.msg !== 'migrated' && j.msg !== 'up to date') continue;
        count++;
        for (const [k, v] of Object.entries(j.ms)) phases[k] = (phases[k] ?? 0) + v;
      } catch {}
    }
  }
  for (const k of Object.keys(phases)) phases[k] = Math.round((phases[k]! / Math.max(1, count)) * 10) / 10;
  return {
    ms: r.ms,
    roundTrips: await roundTrips(workers, fleet, tenants.length),
    ok: tenants.filter((x) => x.state === 'succeeded').length,
    upToDate: tenants.filter((x) => x.state === 'succeeded' && x.applied.length === 0).length,
    enqueueMs: created ? Number(created[1]) : NaN,
    phases,
  };
}

/** The floor: concatenated SQL, one connection per tenant, `concurrency` at a time. */
async function floor(urls: string[], concurrency: number): Promise<number> {
  const sql = (await readMigrationFiles(MIGRATIONS)).map((f) => f.sql).join('\n');
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < urls.length) {
        const client = new pg.Client({ connectionString: urls[next++] });
        await client.connect();
        await client.query(sql);
        await client.end();
      }
    }),
  );
  return performance.now() - started;
}

/**
 * Back to empty: every method created its objects and bookkeeping in schema
 * public. The catalogs are vacuumed too: the dropped objects leave dead rows in
 * pg_class, pg_attribute... that every catalog query of the next method would
 * otherwise wade through (without it, each method ran on more bloated catalogs
 * than the one before, and --single-transaction, run last, looked slower than
 * one transaction per file).
 */
async function resetTenants(urls: string[]): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < urls.length) {
        const client = new pg.Client({ connectionString: urls[next++] });
        await client.connect();
        await client.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public');
        await client.query(`VACUUM ${CATALOGS.map((t) => `pg_catalog.${t}`).join(', ')}`);
        await client.end();
      }
    }),
  );
}

const CATALOGS = [
  'pg_class',
  'pg_attribute',
  'pg_type',
  'pg_constraint',
  'pg_depend',
  'pg_index',
  'pg_attrdef',
  'pg_trigger',
  'pg_proc',
  'pg_namespace',
  'pg_sequence',
];

async function clearRedis(): Promise<number> {
  const redis = new Redis(redisUrl);
  try {
    const keys = await redis.keys(`${prefix}*`);
    for (const key of keys) await redis.del(key);
    return keys.length;
  } finally {
    redis.disconnect();
  }
}

async function redisKeys(): Promise<number> {
  const redis = new Redis(redisUrl);
  try {
    return (await redis.keys(`${prefix}*`)).length;
  } finally {
    redis.disconnect();
  }
}

function printMethods(total: number): void {
  say('');
  say(`bring every tenant from empty to the 8 guide migrations, concurrency ${total} (ratio = ms per tenant / floor's)`);
  say('method                                            tenants       ok   total (s)   ms/tenant   ratio');
  for (const r of rows) {
    say(
      `${r.method.padEnd(48)} ${String(r.tenants).padStart(8)} ${String(r.ok).padStart(8)} ${sec(r.totalMs).padStart(11)} ${r.msPerTenant.toFixed(1).padStart(11)} ${(r.ratio ?? 0).toFixed(2).padStart(7)}`,
    );
  }
}

const PHASES = ['queue', 'claim', 'connect', 'plan', 'lock', 'apply', 'validation', 'ledger', 'checks', 'record'] as const;

function printPhases(phases: Record<string, Record<string, number>>): void {
  say('');
  say('where a worker spends its time per tenant, ms (mean over the migrated tenants; wall time inside one job, jobs overlap)');
  say(`${'run'.padEnd(22)}${PHASES.map((p) => p.padStart(11)).join('')}`);
  for (const [run, p] of Object.entries(phases)) say(`${run.padEnd(22)}${PHASES.map((k) => (p[k] ?? 0).toFixed(1).padStart(11)).join('')}`);
  say(
    'queue: enqueued -> taken; claim/record: control database (+ next dispatch, BullMQ); plan: ledger reads; ledger: tracking rows + COMMIT; checks: post-commit checks',
  );
}

function printRoundTrips(runs: Record<string, RoundTrips>): void {
  say('');
  say('round trips per tenant (counted in the workers: bench/round-trips.ts); the floor: 1 session, 1 round trip');
  say(`${'run'.padEnd(22)}${'tenant db'.padStart(11)}${'sessions'.padStart(11)}${'control db'.padStart(11)}`);
  for (const [run, r] of Object.entries(runs))
    say(`${run.padEnd(22)}${r.tenant.toFixed(2).padStart(11)}${r.connects.toFixed(2).padStart(11)}${r.control.toFixed(2).padStart(11)}`);
  if (process.env.BENCH_ROUND_TRIP_KINDS)
    for (const [run, r] of Object.entries(runs)) {
      say(`  ${run}: tenant database round trips per tenant, by query`);
      for (const [k, v] of Object.entries(r.kinds)) say(`  ${v.toFixed(2).padStart(8)}  ${k}`);
      say(`  ${run}: control database round trips per tenant, by query`);
      for (const [k, v] of Object.entries(r.controlKinds)) say(`  ${v.toFixed(2).padStart(8)}  ${k}`);
    }
}

/** Throughput with 1, 2 and 4 worker processes (and the floor at the same total concurrency); plotted. */
async function curve(fleet: FleetFixture, urls: string[], c: number): Promise<void> {
  const points: CurvePoint[] = [];
  const env = fleetEnv(fleet);
  for (const w of [1, 2, 4]) {
    await resetTenants(urls);
    const floorMs = await floor(urls, w * c);
    await resetTenants(urls);
    await clearRedis();
    const workers = Array.from({ length: w }, () => spawnWorker({ env: countingEnv({ ...env, LOG_LEVEL: 'info' }), concurrency: c }));
    await Promise.all(workers.map((x) => x.started));
    try {
      const r = await rollout(fleet, env, workers, []);
      points.push({
        workers: w,
        flotilla: urls.length / (r.ms / 1000),
        floor: urls.length / (floorMs / 1000),
        rssMb: workers.map((x) => Math.round(x.peakRssMb())),
      });
    } finally {
      await Promise.all(workers.map((x) => x.stop()));
    }
  }
  results.curve = points;
  say('');
  say(`throughput by worker processes (concurrency ${c} each), tenants/s`);
  say('workers   flotilla      floor   peak RSS per worker');
  for (const p of points)
    say(
      `${String(p.workers).padStart(7)} ${p.flotilla.toFixed(1).padStart(10)} ${p.floor.toFixed(1).padStart(10)}   ${p.rssMb.map((x) => `${x} MB`).join(', ')}`,
    );
  const svg = curveSvg(points, urls.length, c);
  writeFileSync(values.plot!, svg);
  say(`plot written to ${values.plot}`);
}

/**
 * Validation cost on a tenant with big tables: users and audit_log hold
 * `rowsN` rows each; a migration that only adds an index to products.
 * Baseline in the same run: a snapshot that counts every table (what a
 * validator without row-count scoping does, twice per migration).
 */
async function bigTenant(rowsN: number): Promise<void> {
  const name = `${values.name}_big`;
  await adminQuery(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await adminQuery(admin, `CREATE DATABASE ${name}`);
  const url = dbUrl(admin, name);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const t = performance.now();
    await new Migrator(client).migrate(await loadMigrationDir(MIGRATIONS));
    await client.query(`INSERT INTO users (email, name) SELECT 'u' || i || '@example.com', 'user ' || i FROM generate_series(1, $1) i`, [rowsN]);
    await client.query(`INSERT INTO audit_log (user_id, action, entity, entity_id) SELECT 1 + i % 1000, 'update', 'invoice', i FROM generate_series(1, $1) i`, [
      rowsN,
    ]);
    await client.query('ANALYZE');
    say('');
    say(`big tenant: users and audit_log with ${rowsN.toLocaleString('en-US')} rows each (loaded in ${sec(performance.now() - t)} s)`);
    const guide = await readMigrationFiles(MIGRATIONS);
    const cases = [
      { label: 'CREATE INDEX on products (validated)', file: { name: '009_products_price.sql', sql: 'CREATE INDEX idx_products_price ON products (price);' } },
      {
        label: 'UPDATE products (validated, counts products)',
        file: { name: '010_products_touch.sql', sql: "UPDATE products SET description = '' WHERE description IS NULL;" },
      },
      { label: 'DELETE FROM users WHERE false (counts users + FK referrers)', file: { name: '011_users_noop.sql', sql: 'DELETE FROM users WHERE id < 0;' } },
    ];
    const out: { label: string; validationMs: number; totalMs: number }[] = [];
    for (const [i, k] of cases.entries()) {
      const set = await buildMigrationSet([...guide, ...cases.slice(0, i + 1).map((x) => x.file)]);
      const started = performance.now();
      const report = await new Migrator(client).migrate(set);
      if (report.failed) throw report.failed.error;
      out.push({ label: k.label, validationMs: report.timings.validation, totalMs: performance.now() - started });
    }
    // the baseline: count every table, once (a validator does it before and after each file)
    const b = performance.now();
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await takeSnapshot(client, { schemas: [], exclude: { schema: 'public', table: 'migrations' } });
    await client.query('COMMIT');
    const everyTable = performance.now() - b;
    results.bigTenant = { rows: rowsN, cases: out, snapshotCountingEveryTableMs: everyTable };
    say('migration                                                  validation (ms)   whole migration (ms)');
    for (const x of out) say(`${x.label.padEnd(58)} ${x.validationMs.toFixed(1).padStart(15)} ${x.totalMs.toFixed(1).padStart(22)}`);
    say(`baseline: one snapshot counting every table: ${everyTable.toFixed(1)} ms (a validator counting everything takes two per migration)`);
  } finally {
    await client.end();
    if (!values.keep) await adminQuery(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
}

/** Many schema-per-tenant tenants: enqueue time, completion, no-op rerun, memory, what Redis and the control database keep. */
async function scale(s: number, w: number, c: number): Promise<number> {
  let t = performance.now();
  const fleet = await createFleet(admin, 'flotilla_scale', 0, s);
  say('');
  say(`scale: ${s} schema-per-tenant tenants in one database (fixture in ${sec(performance.now() - t)} s), ${w} workers x ${c}`);
  const env = { ...fleetEnv(fleet), FLOTILLA_QUEUE_PREFIX: prefix };
  await clearRedis();
  const workers = Array.from({ length: w }, () => spawnWorker({ env: countingEnv({ ...env, LOG_LEVEL: 'info' }), concurrency: c }));
  await Promise.all(workers.map((x) => x.started));
  let bad = 0;
  try {
    t = performance.now();
    const first = await rollout(fleet, env, workers, []);
    const second = await rollout(fleet, env, workers, []);
    const keys = await redisKeys();
    const control = new pg.Client({ connectionString: fleet.controlUrl });
    await control.connect();
    const counts = (
      await control.query(
        `SELECT (SELECT count(*) FROM flotilla.rollout_tenants)::int AS rollout_tenants, (SELECT count(*) FROM flotilla.attempts)::int AS attempts,
                pg_size_pretty(pg_database_size(current_database())) AS size`,
      )
    ).rows[0];
    await control.end();
    const rss = workers.map((x) => Math.round(x.peakRssMb()));
    results.scale = {
      tenants: s,
      migrate: { ms: first.ms, ok: first.ok, enqueueMs: first.enqueueMs, phases: first.phases },
      noop: { ms: second.ms, msPerTenant: second.ms / s, upToDate: second.upToDate, enqueueMs: second.enqueueMs },
      redisKeysAfter: keys,
      control: counts,
      workerPeakRssMb: rss,
    };
    say(`migrate: ${first.ok}/${s} succeeded in ${sec(first.ms)} s (${(first.ms / s).toFixed(1)} ms/tenant); enqueue ${first.enqueueMs} ms`);
    say(
      `no-op rerun: ${second.upToDate}/${s} up to date in ${sec(second.ms)} s = ${(second.ms / s).toFixed(2)} ms/tenant end to end; enqueue ${second.enqueueMs} ms`,
    );
    say(`peak RSS per worker: ${rss.map((x) => `${x} MB`).join(', ')}; Redis keys left under ${prefix}: ${keys}; control database: ${JSON.stringify(counts)}`);
    if (first.ok !== s || second.upToDate !== s) bad++;
  } finally {
    await Promise.all(workers.map((x) => x.stop()));
    if (!values.keep) await fleet.drop();
  }
  return bad;
}

function gitCommit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
