/**
 * Phase 3 of a chaos run: tenants that exhausted their attempts get
 * `flotilla rollout retry` (up to three rounds), then the workers are drained
 * and what Redis still holds is counted.
 */
import { Queue } from 'bullmq';
import type { ChaosRun } from './context.js';
import type { FirstPass } from './rollout.js';

export async function retryExhausted(run: ChaosRun, { watch, counts: firstCounts }: FirstPass): Promise<void> {
  const { o, figures, env } = run;
  const retryStarted = performance.now();
  let counts = firstCounts;
  const needing = new Set<string>();
  for (let round = 0; round < 3 && (counts.succeeded ?? 0) < o.tenants && !run.aborted; round++) {
    await watch.readState();
    for (const x of watch.state.rows) if (x.state === 'failed' || x.state === 'cancelled') needing.add(x.tenant_id);
    figures.retryRounds++;
    run.log(
      `retry: flotilla rollout retry ${watch.id} --wait (${watch.state.rows
        .filter((x) => x.state === 'failed' || x.state === 'cancelled')
        .map((x) => x.tenant_id)
        .join(', ')})`,
    );
    const r = await run.runCli(['rollout', 'retry', watch.id, '--wait', '--json'], env, Math.max(1000, o.timeoutMs - (performance.now() - run.t0)));
    try {
      counts = JSON.parse(r.stdout).counts;
    } catch {
      throw new Error(`flotilla rollout retry: exit ${r.code}, no JSON: ${r.stderr.slice(-1000)}`);
    }
    run.log(`retry: exit ${r.code}: ${counts.succeeded} succeeded, ${counts.failed} failed`);
  }
  figures.tenantsNeedingRetry = needing.size;
  figures.seconds.retry = (performance.now() - retryStarted) / 1000;
}

/** Stop the workers (drain; SIGKILL after 20 s), then count the jobs Redis still holds. */
export async function drainWorkers(run: ChaosRun, redisUrl: string): Promise<void> {
  await Promise.all(
    run.workers
      .filter((w) => run.alive(w))
      .map(async (w) => {
        w.stopping = true;
        const force = setTimeout(() => w.proc.child.kill('SIGKILL'), 20_000);
        await w.proc.stop('SIGTERM');
        clearTimeout(force);
      }),
  );
  const q = new Queue('migrate', { connection: { url: redisUrl, maxRetriesPerRequest: 1 }, prefix: '{chaos}' });
  q.on('error', () => {});
  run.figures.redisLeft = (await q.getJobCounts('active', 'waiting', 'delayed', 'prioritized', 'failed', 'completed').catch(() => ({}))) as Record<
    string,
    number
  >;
  await q.close().catch(() => {});
}
