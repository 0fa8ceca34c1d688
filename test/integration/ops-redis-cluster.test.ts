/**
 * Issue 11 §6: the distributed engine on a real Redis Cluster. Three masters started here
 * (test/helpers/ops-redis-cluster.ts); the CLI and two `flotilla worker` processes get
 * REDIS_URL=redis+cluster://...; a rollout completes with every tenant succeeded, its keys all
 * live on the cluster in the slot of the prefix's hash tag (none on the ordinary Redis), and the
 * other Redis uses (schedules, `rollout resume`'s reconcile, the workers' reconcile schedule and
 * flush watchdog) work there too. A prefix without a hash tag is refused before anything is
 * touched (exit 2); a cluster that does not answer is exit 3.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { Fleet, GUIDE_MIGRATIONS, trackingRows, waitFor, why, type WorkerProcess } from '../helpers/fleet.js';
import { spawnWorker } from '../helpers/fleet-base.js';
import { scrape, total } from '../helpers/ops-prometheus.js';
import { redisUrl } from '../helpers/redis.js';
import { freePort, startCluster, type LocalCluster } from '../helpers/ops-redis-cluster.js';

let cluster: LocalCluster;
let fleet: Fleet;
let metricsPort: number;

beforeAll(async () => {
  cluster = await startCluster();
  fleet = await Fleet.create({ reconcileEvery: '1s' });
  // one plain worker, one serving metrics (its queue figures come from the cluster)
  metricsPort = await freePort();
  const withMetrics = spawnWorker({
    env: fleet.workerEnv({ REDIS_URL: cluster.url }),
    concurrency: 2,
    args: ['--drain-timeout', '5s', '--metrics-port', String(metricsPort), '--metrics-host', '127.0.0.1'],
  });
  const [, id] = await Promise.all([fleet.startWorker({ env: { REDIS_URL: cluster.url } }), withMetrics.started]);
  fleet.workers.push({ ...withMetrics, id } as WorkerProcess);
}, 120_000);

afterAll(async () => {
  await fleet?.cleanup();
  await cluster?.stop();
}, 120_000);

/** Every key of the fleet's prefix, per cluster node. */
async function keysPerNode(): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const p of cluster.ports) {
    const r = new Redis({ host: '127.0.0.1', port: p, lazyConnect: true });
    await r.connect();
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await r.scan(cursor, 'MATCH', `${fleet.prefix}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    r.disconnect();
    out.set(p, keys);
  }
  return out;
}

describe('Redis Cluster', { timeout: 120_000 }, () => {
  it('a rollout completes on a three-master cluster, every tenant succeeded, its keys in the slot of the hash tag', async () => {
    const tenants = await fleet.addTenants([
      { id: 'rc-1', tags: ['canary'], password: 'env' },
      { id: 'rc-2', kind: 'schema' },
      { id: 'rc-3', kind: 'schema' },
      { id: 'rc-4', kind: 'schema' },
    ]);
    const r = await fleet.cliJson(['rollout', '--tenants', fleet.writeTenantsFile(tenants), '--all', '--canary', 'canary', '--wave-size', '2', '--wait'], {
      env: { REDIS_URL: cluster.url },
    });
    expect(r.code, why(r)).toBe(0);
    expect(r.json.state).toBe('succeeded');
    expect(r.json.tenants.map((t: { id: string; state: string }) => [t.id, t.state])).toEqual(tenants.map((t) => [t.id, 'succeeded']));
    for (const t of tenants)
      expect(
        (await trackingRows(t))?.map((x) => x.name),
        t.id,
      ).toEqual(GUIDE_MIGRATIONS);

    // the queue lived on the cluster: all its keys on the one node serving the tag's slot, none on the plain Redis
    const perNode = await keysPerNode();
    const nodesWithKeys = [...perNode.entries()].filter(([, k]) => k.length > 0);
    expect(nodesWithKeys.length).toBe(1);
    const keys = nodesWithKeys[0]![1];
    expect(keys.some((k) => k.startsWith(`${fleet.prefix}:migrate:`))).toBe(true);
    expect(keys.some((k) => k.startsWith(`${fleet.prefix}:control:`))).toBe(true);
    const slots = new Set(await Promise.all(keys.slice(0, 20).map((k) => cluster.cli(cluster.ports[0]!, 'cluster', 'keyslot', k))));
    expect(slots.size).toBe(1);
    const plain = new Redis(redisUrl());
    try {
      expect(await plain.keys(`${fleet.prefix}*`)).toEqual([]);
    } finally {
      plain.disconnect();
    }

    // the metrics read the queue on the cluster: no scrape error, and the tenants finished there
    const scraped = (await scrape(`http://127.0.0.1:${metricsPort}/metrics`)).samples;
    expect(total([scraped], 'flotilla_metrics_scrape_errors_total')).toBe(0);
    expect(
      scraped
        .filter((x) => x.name === 'flotilla_queue_jobs')
        .map((x) => x.labels.state)
        .sort(),
    ).toEqual(['active', 'delayed', 'prioritized', 'wait', 'waiting-children']);
    expect(total([scraped], 'flotilla_queue_jobs')).toBe(0);

    // `rollout resume` reconciles on the cluster (job states, re-creation): nothing to do, exit 0
    const resumed = await fleet.cli(['rollout', 'resume', r.json.id], { env: { REDIS_URL: cluster.url } });
    expect(resumed.code, why(resumed)).toBe(0);
  });

  it('schedules live on the cluster, and a worker restores them when the cluster lost its data', async () => {
    const s = await fleet.cli(['schedule', '--name', 'nightly', '--cron', '0 3 * * *', '--tz', 'UTC', '--all'], { env: { REDIS_URL: cluster.url } });
    expect(s.code, why(s)).toBe(0);
    const schedulerKey = async () => [...(await keysPerNode()).values()].flat().filter((k) => k.includes('schedule.nightly') || k.endsWith(':control:repeat'));
    expect((await schedulerKey()).length).toBeGreaterThan(0);
    // the cluster loses everything: the workers' watchdog puts the reconcile schedule and `nightly` back
    for (const p of cluster.ports) await cluster.cli(p, 'flushall');
    await waitFor(
      'schedules restored on the cluster',
      async () => {
        const keys = [...(await keysPerNode()).values()].flat();
        return keys.some((k) => k.includes('schedule.nightly')) && keys.some((k) => k.includes('reconcile'));
      },
      30_000,
      250,
    );
  });

  it('a prefix without a hash tag is refused on a cluster (exit 2), before anything is touched', async () => {
    const r = await fleet.cli(['rollout', '--all', '--tenants', fleet.writeTenantsFile([fleet.tenant('rc-1')])], {
      env: { REDIS_URL: cluster.url, FLOTILLA_QUEUE_PREFIX: 'plainprefix' },
    });
    expect(r.code, why(r)).toBe(2);
    expect(r.stderr).toMatch(/FLOTILLA_QUEUE_PREFIX: "plainprefix" has no hash tag/);
    const bad = await fleet.cli(['rollouts'], { env: { REDIS_URL: 'redis+cluster://127.0.0.1:notaport' } });
    expect(bad.code, why(bad)).toBe(2);
    expect(bad.stderr).toMatch(/REDIS_URL/);
    expect([...(await keysPerNode()).values()].flat().filter((k) => k.startsWith('plainprefix'))).toEqual([]);
    // a cluster nobody answers on: exit 3 (try again), naming the node, not a URL with its password
    const dead = await freePort();
    const down = await fleet.cli(['rollout', '--all', '--tenants', fleet.writeTenantsFile([fleet.tenant('rc-1')])], {
      env: { REDIS_URL: `redis+cluster://:pw-s3cret@127.0.0.1:${dead}` },
    });
    expect(down.code, why(down)).toBe(3);
    expect(down.stderr).toContain(`cannot connect to Redis at 127.0.0.1:${dead}`);
    expect(down.stderr).not.toContain('pw-s3cret');
    // a single Redis named as a cluster: a setting to fix (exit 2), the hint names redis://
    const plain = new URL(redisUrl());
    const notCluster = await fleet.cli(['rollout', '--all', '--tenants', fleet.writeTenantsFile([fleet.tenant('rc-1')])], {
      env: { REDIS_URL: `redis+cluster://${plain.hostname}:${plain.port || 6379}` },
    });
    expect(notCluster.code, why(notCluster)).toBe(2);
    expect(notCluster.stderr).toContain('this Redis is not a cluster');
  });
});
