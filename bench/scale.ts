/**
 * `npm run bench:scale -- [--schemas 2000] [--databases 50] [--workers 2] [--concurrency 2] [--json file]`
 *
 * Is the rollout rate flat in the size of the catalog? `--schemas` schema-per-tenant
 * tenants in one database, the guide's 8 migrations, W worker processes already
 * running: `flotilla rollout --wait` timed from start to exit, then the rate
 * of each quarter of the tenants (from their finished_at in the control
 * database; the ratio last/first is what matters on a shared machine), then the
 * same rollout again, every tenant up to date (the no-op cost per tenant end to
 * end), worker peak RSS (VmHWM), Redis keys left, the control database's size.
 * Then `--databases` database tenants: migrated, then the no-op rerun per tenant.
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { REPO, createFleet, spawnWorker, type FleetFixture, type SpawnedWorker } from '../test/helpers/fleet-base.js';
import { runCliTimed } from './cli-run.js';

const { values } = parseArgs({
  options: {
    schemas: { type: 'string', default: '2000' },
    databases: { type: 'string', default: '50' },
    workers: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '2' },
    json: { type: 'string', default: 'bench-scale.json' },
    keep: { type: 'boolean', default: false },
  },
});
const admin = process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = '{flotilla-scale}';
const say = (s = '') => console.log(s);
const sec = (ms: number) => (ms / 1000).toFixed(2);
const results: Record<string, unknown> = {};

async function redis<T>(fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis(redisUrl);
  try {
    return await fn(r);
  } finally {
    r.disconnect();
  }
}
const clearRedis = () => redis(async (r) => Promise.all((await r.keys(`${prefix}*`)).map((k) => r.del(k))));
const redisKeys = () => redis(async (r) => (await r.keys(`${prefix}*`)).length);

async function control<T>(fleet: FleetFixture, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: fleet.controlUrl });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Tenants per second in each quarter of the latest rollout's tenants, by finish time. */
async function quarters(fleet: FleetFixture): Promise<number[]> {
  return control(fleet, async (c) => {
    const r = await c.query<{ t: number }>(
      `WITH last AS (SELECT rollout_id FROM flotilla.rollout_tenants GROUP BY 1 ORDER BY max(finished_at) DESC LIMIT 1)
       SELECT extract(epoch FROM x)::float8 AS t FROM (
         SELECT min(started_at) AS x FROM flotilla.rollout_tenants WHERE rollout_id = (SELECT rollout_id FROM last)
         UNION ALL (SELECT finished_at FROM flotilla.rollout_tenants WHERE rollout_id = (SELECT rollout_id FROM last) AND finished_at IS NOT NULL ORDER BY 1)) s`,
    );
    const times = r.rows.map((x) => x.t);
    const start = times[0]!;
    const done = times.slice(1);
    const n = done.length;
    const out: number[] = [];
    let prev = start;
    for (let q = 1; q <= 4; q++) {
      const end = done[Math.round((q * n) / 4) - 1]!;
      out.push(Math.round(((Math.round((q * n) / 4) - Math.round(((q - 1) * n) / 4)) / Math.max(0.001, end - prev)) * 10) / 10);
      prev = end;
    }
    return out;
  });
}

async function rollout(fleet: FleetFixture, env: NodeJS.ProcessEnv) {
  const r = await runCliTimed(['rollout', '--tenants', fleet.tenantsFile, '--all', '--wait', '--json'], env);
  if (r.code !== 0) say(`rollout exited with ${r.code}: ${r.stderr.slice(-600)}`);
  const tenants = (JSON.parse(r.stdout || '{"tenants":[]}').tenants ?? []) as { state: string; applied: string[] }[];
  return {
    ms: r.ms,
    ok: tenants.filter((x) => x.state === 'succeeded').length,
    upToDate: tenants.filter((x) => x.state === 'succeeded' && x.applied.length === 0).length,
  };
}

async function fleetRun(label: string, dbTenants: number, schemaTenants: number, w: number, c: number) {
  const n = dbTenants + schemaTenants;
  let t = performance.now();
  const fleet = await createFleet(admin, `flotilla_scale_${label}`, dbTenants, schemaTenants);
  say(
    `\n${label}: ${n} tenants (${dbTenants} databases, ${schemaTenants} schemas; fixture ${sec(performance.now() - t)} s), ${w} workers x ${c}; load ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  const env = { ...process.env, CONTROL_DATABASE_URL: fleet.controlUrl, REDIS_URL: redisUrl, FLOTILLA_QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn' };
  await clearRedis();
  const workers: SpawnedWorker[] = Array.from({ length: w }, () => spawnWorker({ env: { ...env, LOG_LEVEL: 'info' }, concurrency: c }));
  await Promise.all(workers.map((x) => x.started));
  try {
    t = performance.now();
    const first = await rollout(fleet, env);
    const q = await quarters(fleet);
    const second = await rollout(fleet, env);
    const keys = await redisKeys();
    const db = await control(
      fleet,
      async (cl) => (await cl.query(`SELECT pg_size_pretty(pg_database_size(current_database())) AS size`)).rows[0].size as string,
    );
    const rss = workers.map((x) => Math.round(x.peakRssMb()));
    const cpu = workers.map((x) => Math.round(x.cpuSeconds() * 10) / 10);
    const out = {
      tenants: n,
      migrate: { ms: Math.round(first.ms), ok: first.ok, perSecond: Math.round((n / (first.ms / 1000)) * 10) / 10 },
      quarters: q,
      lastOverFirst: Math.round((q[3]! / q[0]!) * 100) / 100,
      noop: { ms: Math.round(second.ms), upToDate: second.upToDate, msPerTenant: Math.round((second.ms / n) * 100) / 100 },
      workerPeakRssMb: rss,
      workerCpuSeconds: cpu,
      redisKeys: keys,
      controlDatabase: db,
      load: loadavg().map((x) => Math.round(x * 100) / 100),
    };
    say(`migrate: ${first.ok}/${n} succeeded in ${sec(first.ms)} s; tenants/s by quarter ${q.join(', ')} (last/first ${out.lastOverFirst})`);
    say(`no-op rerun: ${second.upToDate}/${n} up to date in ${sec(second.ms)} s = ${out.noop.msPerTenant} ms/tenant end to end`);
    say(
      `worker peak RSS ${rss.map((x) => `${x} MB`).join(', ')}; worker CPU ${cpu.map((x) => `${x} s`).join(', ')}; Redis keys ${keys}; control database ${db}; load ${out.load.join(' ')}`,
    );
    return { out, bad: first.ok !== n || second.upToDate !== n };
  } finally {
    await Promise.all(workers.map((x) => x.stop()));
    if (!values.keep) await fleet.drop();
  }
}

async function main(): Promise<number> {
  const w = Number(values.workers);
  const c = Number(values.concurrency);
  let commit: string | undefined;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
  } catch {}
  results.machine = { commit, at: new Date().toISOString(), load: loadavg() };
  let bad = 0;
  if (Number(values.schemas) > 0) {
    const r = await fleetRun('schemas', 0, Number(values.schemas), w, c);
    results.schemas = r.out;
    bad += r.bad ? 1 : 0;
  }
  if (Number(values.databases) > 0) {
    const r = await fleetRun('dbs', Number(values.databases), 0, w, c);
    results.databases = r.out;
    bad += r.bad ? 1 : 0;
  }
  writeFileSync(values.json!, `${JSON.stringify(results, null, 2)}\n`);
  say(`\nresults written to ${values.json}`);
  return bad;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
