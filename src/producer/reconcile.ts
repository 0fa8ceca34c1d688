/**
 * Reconciling Redis with the control database, which is the source of truth:
 * dispatch what is due, and re-create the job of every tenant that is handed
 * out but has no job in Redis any more (a FLUSHALL, a failover to a stale
 * replica, a crash between commit and enqueue). Idempotent and safe at any
 * time: job ids are deterministic, and the engine re-checks under its lock.
 * Workers run it every few seconds; `flotilla rollout resume <id>` runs it once.
 * Only rollouts of the store's queue prefix (its fleet) are touched: another
 * fleet sharing the control database has its own queue and its own workers.
 */
import type { Queue } from 'bullmq';
import { jobId, type DispatchedJob } from '../core/jobs.js';
import type { ControlStore } from '../control/store.js';
import { dispatchAndEnqueue, enqueue, recordAndDispatch } from './dispatcher.js';

export interface ReconcileResult {
  rollouts: number;
  dispatched: number;
  recreated: number;
  failedJobs: number;
}

export async function reconcile(store: ControlStore, queue: Queue, now: () => Date, only?: string): Promise<ReconcileResult> {
  if (only) {
    // `rollout resume` with another fleet's prefix: refused (exit 2), nothing enqueued into a queue its workers never read
    const r = await store.getRollout(only);
    if (r) store.assertOwn(only, r.queuePrefix);
  }
  const ids = only ? [only] : await store.runningRolloutIds();
  const result: ReconcileResult = { rollouts: ids.length, dispatched: 0, recreated: 0, failedJobs: 0 };
  for (const id of ids) {
    const due = await dispatchAndEnqueue(store, queue, id, now());
    result.dispatched += due.length;
    const missing: DispatchedJob[] = [];
    const inFlight = await store.inFlight(id);
    // job states in chunks of concurrent calls (ioredis pipelines them): a 500-tenant window is a few round trips
    const states: string[] = [];
    for (let i = 0; i < inFlight.length; i += 100) {
      states.push(...(await Promise.all(inFlight.slice(i, i + 100).map((t) => queue.getJobState(jobId(id, t.tenantId, t.generation))))));
    }
    for (const [i, t] of inFlight.entries()) {
      const state = states[i]!;
      if (state === 'unknown') missing.push(t);
      else if (state === 'failed') {
        // a job BullMQ gave up on without the processor recording it (e.g. stalled too often)
        const job = await queue.getJob(jobId(id, t.tenantId, t.generation));
        await recordAndDispatch(
          store,
          queue,
          {
            rolloutId: id,
            tenantId: t.tenantId,
            generation: t.generation,
            attempt: job?.attemptsMade ?? 0,
            state: 'failed',
            applied: [],
            error: {
              code: 'job_lost',
              kind: 'transient',
              message: job?.failedReason ?? 'job failed in the queue',
              hint: 'Run `flotilla rollout retry` for this rollout.',
            },
            worker: 'reconciler',
            startedAt: now(),
            durationMs: 0,
          },
          now(),
        );
        result.failedJobs++;
      }
    }
    await enqueue(queue, missing);
    result.recreated += missing.length;
  }
  return result;
}
