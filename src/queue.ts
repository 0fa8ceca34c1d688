/**
 * BullMQ wiring shared by producer and workers: queue names, the Redis
 * connection and job options. Job payloads and ids are core/jobs.ts; the one
 * place that adds tenant jobs is producer/dispatcher.ts.
 *
 *   queue "migrate": job "migrate", one per tenant and generation (core/jobs.ts)
 *   queue "control": "reconcile" (every few seconds, any worker) and
 *                    "scheduled-rollout" (from `flotilla schedule`)
 */
import { Queue, type JobsOptions, type QueueOptions } from 'bullmq';
import { bullConnection } from './adapters/redis-client.js';

export const MIGRATE_QUEUE = 'migrate';
export const CONTROL_QUEUE = 'control';
// connection options and the default prefix live with the Redis adapter
export { DEFAULT_PREFIX, redisConnection, redisTls } from './adapters/redis.js';

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

/** A queue on a single server or a Redis Cluster (REDIS_URL=redis+cluster://...); `close()` ends its connection either way. */
export function openQueue(name: string, s: QueueSettings): Queue {
  const c = bullConnection(s.redisUrl);
  const q = new OwnedQueue(name, { connection: c.connection, prefix: s.prefix }, c.close);
  q.on('error', () => {});
  return q;
}

/** BullMQ never closes a client it was handed (a cluster's): this queue closes its own after itself. */
class OwnedQueue extends Queue {
  constructor(
    name: string,
    opts: QueueOptions,
    private readonly closeConnection: () => Promise<void>,
  ) {
    super(name, opts);
  }

  override async close(): Promise<void> {
    try {
      await super.close();
    } finally {
      await this.closeConnection();
    }
  }
}
