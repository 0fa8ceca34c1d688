/**
 * `npm run bench -- [--tenants 100] [--workers 2] [--concurrency 2] [--schema-tenants 0] [--keep]`
 * In one run, on fresh tenant databases each time:
 *  1. the floor: one pg connection per tenant running migrations/ concatenated,
 *     at the same total concurrency (workers x concurrency), in process;
 *  2. Flotilla: W worker processes already running, `flotilla rollout --wait
 *     --json` timed from start to exit;
 *  3. a second, no-op rollout over the same (now up-to-date) tenants.
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { readMigrationFiles } from '../adapters/fs-source.js';
import { REPO, createFleet, dbUrl, runCli, startWorkerProcess, type FleetFixture } from './fleet.js';

const { values } = parseArgs({
  options: {
    tenants: { type: 'string', default: '100' },
    'schema-tenants': { type: 'string', default: '0' },
    workers: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '2' },
    keep: { type: 'boolean', default: false },
  },
});
const admin = process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = '{flotilla-bench}';

async function main(): Promise<number> {
  const n = Number(values.tenants);
  const s = Number(values['schema-tenants']);
  const w = Number(values.workers);
  const c = Number(values.concurrency);
  let t = performance.now();
  const floorFleet = await createFleet(admin, 'flotilla_bench', n, 0);
  console.log(`created ${n} tenant databases in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const floorMs = await floor(floorFleet, w * c);
  await floorFleet.drop();
  t = performance.now();
  const fleet = await createFleet(admin, 'flotilla_bench', n, s);
  console.log(`created ${n} tenant databases + ${s} schema tenants in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const redis = new Redis(redisUrl);
  for (const key of await redis.keys(`${prefix}*`)) await redis.del(key);
  redis.disconnect();
  const env = { ...process.env, CONTROL_DATABASE_URL: fleet.controlUrl, REDIS_URL: redisUrl, FLOTILLA_QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn' };
  const workers = Array.from({ length: w }, () => startWorkerProcess({ ...env, LOG_LEVEL: 'info' }, c));
  await Promise.all(workers.map((x) => x.ready));
  try {
    const first = await runCli(['rollout', '--tenants', fleet.tenantsFile, '--wait', '--json'], env);
    const view = JSON.parse(first.stdout);
    const ok = view.tenants.filter((x: { state: string }) => x.state === 'succeeded').length;
    const second = await runCli(['rollout', '--tenants', fleet.tenantsFile, '--wait', '--json'], env);
    const view2 = JSON.parse(second.stdout);
    const ok2 = view2.tenants.filter((x: { state: string; applied: string[] }) => x.state === 'succeeded' && x.applied.length === 0).length;
    const rss = workers.map((x) => x.peakRssMb());
    const total = n + s;
    console.log('');
    console.log(`method                  tenants  succeeded  wall (s)  tenants/s  ms/tenant  ratio to floor`);
    console.log(`floor (pg, concat SQL) ${String(n).padStart(8)}  ${String(n).padStart(9)}  ${(floorMs / 1000).toFixed(2).padStart(8)}  ${(n / (floorMs / 1000)).toFixed(1).padStart(9)}  ${(floorMs / n).toFixed(1).padStart(9)}  ${'1.00'.padStart(14)}`);
    console.log(`migrate 8 files        ${String(total).padStart(8)}  ${String(ok).padStart(9)}  ${(first.ms / 1000).toFixed(2).padStart(8)}  ${(total / (first.ms / 1000)).toFixed(1).padStart(9)}  ${(first.ms / total).toFixed(1).padStart(9)}  ${(first.ms / total / (floorMs / n)).toFixed(2).padStart(14)}`);
    console.log(`no-op (up to date)     ${String(total).padStart(8)}  ${String(ok2).padStart(9)}  ${(second.ms / 1000).toFixed(2).padStart(8)}  ${(total / (second.ms / 1000)).toFixed(1).padStart(9)}  ${(second.ms / total).toFixed(1).padStart(9)}`);
    console.log(`workers: ${w} x concurrency ${c}; peak RSS per worker: ${rss.map((r) => `${r.toFixed(0)} MB`).join(', ')}`);
    return ok === total && ok2 === total ? 0 : 1;
  } finally {
    await Promise.all(workers.map((x) => x.stop()));
    if (!values.keep) await fleet.drop();
  }
}

/** The floor: concatenated SQL, one connection per tenant, `concurrency` at a time. */
async function floor(fleet: FleetFixture, concurrency: number): Promise<number> {
  const sql = (await readMigrationFiles(join(REPO, 'migrations'))).map((f) => f.sql).join('\n');
  const urls = fleet.databases.filter((d) => /_t\d+$/.test(d)).map((d) => dbUrl(admin, d));
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

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
