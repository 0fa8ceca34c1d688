/**
 * The one path from the control database to the queue: every caller that
 * records an attempt, dispatches or retries a rollout goes through here, and
 * what the control database handed out is enqueued before the call returns.
 * (The processor, the reconcile job, `rollout create`, `rollout retry` and
 * `rollout resume` used to each remember to enqueue; now none of them can
 * forget.)
 *
 * If this process dies between the control database's commit and the enqueue,
 * nothing is lost: the tenant is recorded as handed out, and the reconcile job
 * re-creates its job (producer/reconcile.ts). Job ids are deterministic, so
 * enqueuing twice is harmless.
 */
import type { Queue } from 'bullmq';
import { jobId, type DispatchedJob, type TenantJobData } from '../core/jobs.js';
import type { ControlStore, RefreshRequest } from '../control/store.js';
import { TENANT_JOB_OPTIONS } from '../queue.js';

/** What the dispatcher needs of the control store. */
export type DispatchStore = Pick<ControlStore, 'dispatch' | 'recordAttempt' | 'retry'>;
/** What the dispatcher needs of the BullMQ queue ("migrate"). */
export type JobQueue = Pick<Queue, 'addBulk'>;

export type AttemptRecord = Parameters<ControlStore['recordAttempt']>[0];

/** Dispatch what is due in a rollout (halt, next wave, free slots) and enqueue it. */
export async function dispatchAndEnqueue(store: DispatchStore, queue: JobQueue, rolloutId: string, now: Date): Promise<DispatchedJob[]> {
  const jobs = await store.dispatch(rolloutId, now);
  await enqueue(queue, jobs);
  return jobs;
}

/** Record a tenant's attempt, dispatch what it frees up, and enqueue that. */
export async function recordAndDispatch(
  store: Pick<DispatchStore, 'recordAttempt'>,
  queue: JobQueue,
  attempt: AttemptRecord,
  now: Date,
): Promise<DispatchedJob[]> {
  const jobs = await store.recordAttempt(attempt, now);
  await enqueue(queue, jobs);
  return jobs;
}

/** `rollout retry`: failed and cancelled tenants run again; what is due now is enqueued. Undefined for an unknown rollout. */
export async function retryAndEnqueue(
  store: DispatchStore,
  queue: JobQueue,
  rolloutId: string,
  now: Date,
  refresh?: RefreshRequest,
): Promise<{ retried: number; jobs: DispatchedJob[] } | undefined> {
  const r = await store.retry(rolloutId, now, refresh);
  if (r) await enqueue(queue, r.jobs);
  return r;
}

/**
 * Enqueue tenants the control database already handed out (chunked addBulk;
 * duplicate job ids are ignored by BullMQ). Called directly only by the
 * reconcile job, for handed-out tenants whose job Redis lost.
 */
export async function enqueue(queue: JobQueue, jobs: DispatchedJob[]): Promise<void> {
  for (let i = 0; i < jobs.length; i += 1000) {
    await queue.addBulk(
      jobs.slice(i, i + 1000).map((j) => ({
        name: 'migrate',
        data: { rolloutId: j.rolloutId, tenantId: j.tenantId, generation: j.generation } satisfies TenantJobData,
        opts: { ...TENANT_JOB_OPTIONS, jobId: jobId(j.rolloutId, j.tenantId, j.generation), ...(j.delayMs > 0 ? { delay: j.delayMs } : {}) },
      })),
    );
  }
}
