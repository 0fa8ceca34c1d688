/**
 * BullMQ wiring shared by producer and workers: queue names, the Redis
 * connection, job payloads (ids only, never credentials) and job options.
 *
 *   queue "migrate": jobs "migrate" and "validate", one per tenant and generation
 *   queue "control": "reconcile" (every few seconds, any worker) and
 *                    "scheduled-rollout" (from `flotilla schedule`)
 */
import { Queue, type JobsOptions } from 'bullmq';
import { redisConnection } from './adapters/redis.js';
import { jobId, type JobKind } from './core/rollout-plan.js';
import type { DispatchedJob } from './control/store.js';

export const MIGRATE_QUEUE = 'migrate';
export const CONTROL_QUEUE = 'control';
// connection options and the default prefix live with the Redis adapter
export { DEFAULT_PREFIX, redisConnection, redisTls } from './adapters/redis.js';

export interface TenantJobData {
  rolloutId: string;
  tenantId: string;
  generation: number;
  kind: JobKind;
}

export interface QueueSettings {
  redisUrl: string;
  /** BullMQ key prefix; the hash tag keeps a queue's keys in one Redis Cluster slot */
  prefix: string;
}

/** Transient failures retry with jittered exponential backoff; finished jobs leave Redis (history is in Postgres). */
export const TENANT_JOB_OPTIONS: JobsOptions = {
  attempts: 6,
  backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
  removeOnComplete: { age: 3600, count: 1000 },
  removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
};

export function openQueue(name: string, s: QueueSettings): Queue {
  const q = new Queue(name, { connection: redisConnection(s.redisUrl), prefix: s.prefix });
  q.on('error', () => {});
  return q;
}

/** Enqueue dispatched tenants (chunked addBulk; duplicate job ids are ignored by BullMQ). */
export async function enqueueTenantJobs(queue: Queue, jobs: DispatchedJob[], kind: JobKind = 'migrate'): Promise<void> {
  for (let i = 0; i < jobs.length; i += 1000) {
    await queue.addBulk(
      jobs.slice(i, i + 1000).map((j) => ({
        name: kind,
        data: { rolloutId: j.rolloutId, tenantId: j.tenantId, generation: j.generation, kind } satisfies TenantJobData,
        opts: { ...TENANT_JOB_OPTIONS, jobId: jobId(kind, j.rolloutId, j.tenantId, j.generation), ...(j.delayMs > 0 ? { delay: j.delayMs } : {}) },
      })),
    );
  }
}
