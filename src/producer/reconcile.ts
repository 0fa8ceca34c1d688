/**
 * Reconciling Redis with the control database, which is the source of truth:
 * dispatch what is due, and re-create the job of every tenant that is handed
 * out but has no job in Redis any more (a FLUSHALL, a failover to a stale
 * replica, a crash between commit and enqueue). Idempotent and safe at any
 * time: job ids are deterministic, and the engine re-checks under its lock.
 * Workers run it every few seconds; `flotilla rollout resume <id>` runs it once.
 */
import type { Queue } from 'bullmq';
import { jobId } from '../core/rollout-plan.js';
import type { ControlStore, DispatchedJob } from '../control/store.js';
import { enqueueTenantJobs } from '../queue.js';

export interface ReconcileResult {
  rollouts: number;
  dispatched: number;
  recreated: number;
  failedJobs: number;
}

export async function reconcile(store: ControlStore, queue: Queue, now: () => Date, only?: string): Promise<ReconcileResult> {
  const ids = only ? [only] : await store.runningRolloutIds();
  const result: ReconcileResult = { rollouts: ids.length, dispatched: 0, recreated: 0, failedJobs: 0 };
  for (const id of ids) {
    const due = await store.dispatch(id, now());
    await enqueueTenantJobs(queue, due);
    result.dispatched += due.length;
    const missing: DispatchedJob[] = [];
    const inFlight = await store.inFlight(id);
    // job states in chunks of concurrent calls (ioredis pipelines them): a 500-tenant window is a few round trips
    const states: [string, string][] = [];
    for (let i = 0; i < inFlight.length; i += 100) {
      states.push(
        ...(await Promise.all(
          inFlight.slice(i, i + 100).map((t) =>
            Promise.all([queue.getJobState(jobId('migrate', id, t.tenantId, t.generation)), queue.getJobState(jobId('validate', id, t.tenantId, t.generation))]),
          ),
        )),
      );
    }
    for (const [i, t] of inFlight.entries()) {
      const [m, v] = states[i]!;
      if (m === 'unknown' && v === 'unknown') missing.push(t);
      else if ((m === 'failed' && v === 'unknown') || v === 'failed') {
        // a job BullMQ gave up on without the processor recording it (e.g. stalled too often)
        const job = await queue.getJob(jobId(v === 'failed' ? 'validate' : 'migrate', id, t.tenantId, t.generation));
        const next = await store.recordAttempt(
          {
            rolloutId: id, tenantId: t.tenantId, generation: t.generation, attempt: job?.attemptsMade ?? 0, kind: v === 'failed' ? 'validate' : 'migrate',
            state: 'failed', applied: [], error: { code: 'job_lost', kind: 'transient', message: job?.failedReason ?? 'job failed in the queue', hint: 'Run `flotilla rollout retry` for this rollout.' },
            worker: 'reconciler', startedAt: now(), durationMs: 0,
          },
          now(),
        );
        await enqueueTenantJobs(queue, next);
        result.failedJobs++;
      }
    }
    await enqueueTenantJobs(queue, missing);
    result.recreated += missing.length;
  }
  return result;
}
