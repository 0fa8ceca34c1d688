/**
 * BullMQ wiring shared by producer and workers: queue names, the Redis
 * connection and job options. Job payloads and ids are core/jobs.ts; the one
 * place that adds tenant jobs is producer/dispatcher.ts.
 *
 *   queue "migrate": job "migrate", one per tenant and generation (core/jobs.ts)
 *   queue "control": "reconcile" (every few seconds, any worker) and
 *                    "scheduled-rollout" (from `flotilla schedule`)
 */
import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';

export const MIGRATE_QUEUE = 'migrate';
export const CONTROL_QUEUE = 'control';
export const DEFAULT_PREFIX = '{flotilla}';

export interface QueueSettings {
  redisUrl: string;
  /** BullMQ key prefix; the hash tag keeps a queue's keys in one Redis Cluster slot */
  prefix: string;
}

/**
 * `rediss://` turns TLS on for every connection we make (queues, workers, checks). ioredis does
 * it for the URL too; saying it here keeps it true whoever builds the client. The server
 * certificate is verified against Node's CAs: add a private CA with NODE_EXTRA_CA_CERTS=<file>.
 */
export function redisTls(url: string): { tls?: Record<string, never> } {
  return /^rediss:\/\//i.test(url) ? { tls: {} } : {};
}

export function redisConnection(url: string): ConnectionOptions {
  return { url, maxRetriesPerRequest: null, enableOfflineQueue: true, connectionName: 'flotilla', ...redisTls(url) };
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
