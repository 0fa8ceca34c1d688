/**
 * A worker process: BullMQ workers for tenant jobs and control jobs
 * (reconcile, scheduled rollouts), sharing one control-database pool.
 * SIGTERM/SIGINT drain: no new jobs, running migrations get `drainTimeoutMs`
 * to finish; after that the worker closes without waiting, its tenant
 * connections end with the process (Postgres rolls their transactions back),
 * and another worker picks the jobs up once their BullMQ locks expire.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Worker, type Job } from 'bullmq';
import { ConnectionCache } from '../adapters/pg/connection-cache.js';
import { ControlStore } from '../control/store.js';
import { reconcile } from '../producer/reconcile.js';
import { restoreSchedules, startScheduledRollout } from '../producer/schedule.js';
import { CONTROL_QUEUE, MIGRATE_QUEUE, openQueue, type QueueSettings } from '../queue.js';
import { bullConnection } from '../adapters/redis-client.js';
import type { Logger } from '../logger.js';
import { systemClock } from '../adapters/clock.js';
import { FleetFingerprints } from './ports.js';
import { tenantProcessor } from './processor.js';
import { WorkerMetrics, activeRolloutProgress, serveMetrics } from './metrics.js';
import { Notifier } from '../notify/sender.js';

export interface WorkerSettings extends QueueSettings {
  controlUrl: string;
  concurrency: number;
  /** BullMQ job lock: a killed worker's job is picked up again after about this long */
  lockDurationMs: number;
  reconcileEveryMs: number;
  drainTimeoutMs: number;
  /** how long a control-database call keeps retrying through an outage (default 90 s) */
  controlRetryMs?: number;
  /** serve Prometheus metrics on this host and port (worker/metrics.ts); none when absent */
  metrics?: { host: string; port: number };
}

export interface RunningWorker {
  id: string;
  /** where the metrics are served (with `metrics` in the settings) */
  metricsUrl?: string;
  close(): Promise<void>;
}

export async function startWorker(s: WorkerSettings, logger: Logger, env: Record<string, string | undefined> = process.env): Promise<RunningWorker> {
  const id = `${hostname()}-${process.pid}-${randomBytes(2).toString('hex')}`;
  const log = logger.child({ worker: id });
  // an outage of the control database: every call waits for it (with backoff), logged once each way
  const store = new ControlStore(s.controlUrl, {
    max: s.concurrency + 3,
    queuePrefix: s.prefix,
    retry: {
      retryForMs: s.controlRetryMs,
      down: (reason, ms) => log.warn({ reason, retryForMs: ms }, 'control database unreachable: waiting for it'),
      up: (downMs) => log.warn({ downMs }, 'control database reachable again'),
    },
  });
  await store.migrate();
  const queue = openQueue(MIGRATE_QUEUE, s);
  const control = openQueue(CONTROL_QUEUE, s);
  const metrics = s.metrics
    ? new WorkerMetrics({
        queueCounts: () => queue.getJobCounts('wait', 'active', 'delayed', 'prioritized', 'waiting-children'),
        activeRollouts: () => activeRolloutProgress(store.pool, s.prefix),
      })
    : undefined;
  // webhook notifications of this fleet's rollouts, from the outbox the state changes fill (notify/)
  const notifier = new Notifier({
    pool: store.pool,
    queuePrefix: s.prefix,
    env,
    logger: log,
    everyMs: Math.min(2000, s.reconcileEveryMs),
    ...(metrics && { onResult: metrics.notification }),
  });
  // listening first: a port in use is refused (exit 2) before this worker takes any job
  const metricsServer =
    metrics && s.metrics
      ? await serveMetrics(metrics, s.metrics.host, s.metrics.port).catch(async (e) => {
          await Promise.all([queue.close(), control.close(), store.close()]).catch(() => {});
          throw e;
        })
      : undefined;
  const scheduleReconcile = () =>
    control.upsertJobScheduler('reconcile', { every: s.reconcileEveryMs }, { name: 'reconcile', opts: { removeOnComplete: true, removeOnFail: 100 } });
  await scheduleReconcile();
  // The schedules live in Redis: a Redis that lost its data (FLUSHALL, restart without persistence, failover to an
  // empty replica) loses them too, and nothing would reconcile (or start a scheduled rollout) any more. Put them
  // back when they are gone: the reconcile schedule, and every `flotilla schedule` from the control database.
  let checking = false;
  const watchdog = setInterval(() => {
    if (checking) return;
    checking = true;
    control
      .getJobScheduler('reconcile')
      .then(async (found) => {
        if (found) return;
        await scheduleReconcile();
        log.warn('the reconcile schedule was missing from Redis (its data was lost?): restored');
      })
      .then(() => restoreSchedules(store, control))
      .then((r) => {
        if (r.restored.length)
          log.warn({ schedules: r.restored }, 'schedules were missing from Redis (its data was lost?): restored from the control database');
        if (r.removed.length) log.info({ schedules: r.removed }, 'job schedulers of removed schedules: removed');
        for (const f of r.failed) log.error({ schedule: f.name, err: f.error }, 'a schedule of the control database could not be restored in Redis');
      })
      .catch(() => {})
      .finally(() => (checking = false));
  }, s.reconcileEveryMs);
  watchdog.unref();
  const now = () => new Date();
  const connections = new ConnectionCache({ applicationName: `flotilla-worker ${id}`, idleMs: 2000, maxIdle: s.concurrency });

  // a single server: BullMQ's own clients; a cluster: one client per Worker, closed after it (adapters/redis-client.ts)
  const tenantsRedis = bullConnection(s.redisUrl);
  const controlRedis = bullConnection(s.redisUrl);
  const processor = tenantProcessor({
    store,
    queue,
    workerId: id,
    logger: log,
    env,
    now,
    connections,
    fingerprints: new FleetFingerprints(systemClock),
    ...(metrics && { observe: metrics.observe }),
  });
  const tenants = new Worker(MIGRATE_QUEUE, metrics ? metrics.track(processor) : processor, {
    connection: tenantsRedis.connection,
    prefix: s.prefix,
    concurrency: s.concurrency,
    lockDuration: s.lockDurationMs,
    stalledInterval: Math.max(1000, Math.floor(s.lockDurationMs / 2)),
    maxStalledCount: 10,
  });
  const controller = new Worker(
    CONTROL_QUEUE,
    async (job: Job) => {
      if (job.name === 'reconcile') return reconcile(store, queue, now);
      if (job.name === 'scheduled-rollout') return startScheduledRollout(store, queue, job.data.schedule, now);
      throw new Error(`unknown control job ${job.name}`);
    },
    { connection: controlRedis.connection, prefix: s.prefix, concurrency: 1, lockDuration: 30_000 },
  );
  for (const w of [tenants, controller]) {
    w.on('error', (e) => log.warn({ err: e }, 'queue error (reconnecting)'));
    w.on('failed', (job, e) => log.debug({ jobId: job?.id, err: e }, 'job failed'));
  }
  notifier.start();
  log.info({ concurrency: s.concurrency, prefix: s.prefix, ...(metricsServer && { metrics: metricsServer.url }) }, 'worker started');

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      log.info('draining: no new jobs; waiting for running ones');
      clearInterval(watchdog);
      await notifier.stop();
      const timer = setTimeout(() => {
        log.warn({ drainTimeoutMs: s.drainTimeoutMs }, 'drain timeout: abandoning running jobs (Postgres rolls them back; another worker retries them)');
        void tenants.close(true);
      }, s.drainTimeoutMs);
      await Promise.all([tenants.close(), controller.close()]).catch(() => {});
      clearTimeout(timer);
      await Promise.all([queue.close(), control.close(), connections.close(), tenantsRedis.close(), controlRedis.close()]).catch(() => {});
      await metricsServer?.close();
      await store.close();
      log.info('worker stopped');
    })());
  return { id, ...(metricsServer && { metricsUrl: metricsServer.url }), close };
}
