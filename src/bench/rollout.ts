/**
 * `npm run bench:rollout -- [--tenants 100] [--workers 2] [--concurrency 2] [--schema-tenants 0] [--keep]`
 * A measured fleet rollout: fresh tenant databases, W worker processes already
 * running, `flotilla rollout --wait --json` timed from start to exit; then a
 * second, no-op rollout over the same (now up-to-date) tenants.
 */
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createFleet, runCli, startWorkerProcess } from './fleet.js';

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
    console.log(`rollout                 tenants  succeeded  wall (s)  tenants/s  ms/tenant`);
    console.log(`migrate 8 files        ${String(total).padStart(8)}  ${String(ok).padStart(9)}  ${(first.ms / 1000).toFixed(2).padStart(8)}  ${(total / (first.ms / 1000)).toFixed(1).padStart(9)}  ${(first.ms / total).toFixed(1).padStart(9)}`);
    console.log(`no-op (up to date)     ${String(total).padStart(8)}  ${String(ok2).padStart(9)}  ${(second.ms / 1000).toFixed(2).padStart(8)}  ${(total / (second.ms / 1000)).toFixed(1).padStart(9)}  ${(second.ms / total).toFixed(1).padStart(9)}`);
    console.log(`workers: ${w} x concurrency ${c}; peak RSS per worker: ${rss.map((r) => `${r.toFixed(0)} MB`).join(', ')}`);
    return ok === total && ok2 === total ? 0 : 1;
  } finally {
    await Promise.all(workers.map((x) => x.stop()));
    if (!values.keep) await fleet.drop();
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
