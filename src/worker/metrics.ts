/**
 * Prometheus metrics of a worker (`flotilla worker --metrics-port 9464`), served by a tiny
 * node:http server on GET /metrics (and GET /healthz). What they count comes from the
 * processor's attempt events (processor.ts `observe`); queue depth and per-rollout progress are
 * read when scraped: the queue from Redis, the rollouts from the control database (only the
 * active rollouts of this worker's fleet, so the `rollout` label stays bounded).
 *
 * Counters are per worker process: sum them across workers (docs/grafana-dashboard.json does).
 * Queue depth and rollout progress are the same figures on every worker: take max(), not sum().
 * No label or value carries a URL, a password or an error message: only tenant-free words,
 * SQLSTATE codes and rollout ids.
 */
import { createServer, type Server } from 'node:http';
import type pg from 'pg';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ConfigError } from '../core/errors.js';
import { T } from '../control/schema.js';
import { COUNTS_SQL, toCounts } from '../control/store.js';

/** What happened to one attempt of a tenant job (emitted by processor.ts). */
export type AttemptEvent =
  | { outcome: 'migrated' | 'up_to_date'; ms: Record<string, number> }
  /** a final failure (`checks` when only the post-commit checks failed) or a failure BullMQ retries */
  | { outcome: 'failed' | 'retrying'; ms: Record<string, number>; error: unknown }
  /** another runner held the tenant's migration lock: the job comes back later */
  | { outcome: 'lock_busy' }
  /** outside the tenant's maintenance window: the job waits for it */
  | { outcome: 'scheduled' }
  /** cancelled, finished or retried meanwhile: nothing done */
  | { outcome: 'stale' };

/** Processor timing names -> phase label (the engine's `lock` is the wait for the advisory lock). */
const PHASES: Record<string, string> = {
  queue: 'queue',
  claim: 'claim',
  connect: 'connect',
  plan: 'plan',
  lock: 'lock_wait',
  apply: 'apply',
  validation: 'validation',
  ledger: 'ledger',
  checks: 'checks',
  record: 'record',
};

const SQLSTATE_RE = /^[0-9A-Z]{5}$/;
const NETWORK = /^E[A-Z]+$/;

/**
 * The SQLSTATE of a failure, for the `sqlstate` label: a five-character code when Postgres gave
 * one, `connection` for a network error, else `other` (bounded: never a message).
 */
export function sqlStateOf(e: unknown): string {
  const x = e as { sqlState?: unknown; pg?: { code?: unknown }; code?: unknown; cause?: unknown } | undefined;
  for (const c of [x?.sqlState, x?.pg?.code, x?.code]) if (typeof c === 'string' && SQLSTATE_RE.test(c)) return c;
  if (x?.code === 'connection' || (typeof x?.code === 'string' && NETWORK.test(x.code))) return 'connection';
  return 'other';
}

/** An active rollout's progress, as the control database has it. */
export interface RolloutProgress {
  id: string;
  currentWave: number;
  waveCount: number;
  counts: Record<string, number>;
}

/** Where the scrape-time figures come from (worker.ts wires the queue and the control database). */
export interface MetricsSources {
  /** BullMQ job counts of the tenant queue: wait, active, delayed, prioritized ... */
  queueCounts(): Promise<Record<string, number>>;
  /** the active rollouts of this fleet */
  activeRollouts(): Promise<RolloutProgress[]>;
}

const TENANT_STATES = ['pending', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled'];

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly finished: Counter<'outcome'>;
  private readonly attempts: Counter<'outcome'>;
  private readonly phase: Histogram<'phase'>;
  private readonly lockBusy: Counter;
  private readonly lockTimeouts: Counter;
  private readonly retries: Counter<'sqlstate'>;
  private readonly active: Gauge;
  private readonly notifications: Counter<'result'>;

  constructor(sources: MetricsSources, scrapeTimeoutMs = 3000) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'flotilla_' });
    this.finished = new Counter({
      name: 'flotilla_tenants_finished_total',
      help: 'Tenant jobs that reached a final state in this worker, by outcome (succeeded, failed)',
      labelNames: ['outcome'],
      registers,
    });
    this.attempts = new Counter({
      name: 'flotilla_attempts_total',
      help: 'Tenant job attempts in this worker, by outcome (migrated, up_to_date, failed, retrying, lock_busy, scheduled, stale)',
      labelNames: ['outcome'],
      registers,
    });
    this.phase = new Histogram({
      name: 'flotilla_attempt_phase_seconds',
      help: 'Time spent per attempt in each phase: queue, claim, connect, plan, lock_wait, apply, validation, ledger, checks, record',
      labelNames: ['phase'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.lockBusy = new Counter({
      name: 'flotilla_lock_busy_total',
      help: "Attempts that found the tenant's migration lock held by another runner (the job comes back later)",
      registers,
    });
    this.lockTimeouts = new Counter({
      name: 'flotilla_lock_timeouts_total',
      help: 'Attempts whose migration statement hit lock_timeout (SQLSTATE 55P03)',
      registers,
    });
    this.retries = new Counter({
      name: 'flotilla_retries_total',
      help: 'Failed attempts that will be retried, by SQLSTATE (connection: a network error; other: no SQLSTATE)',
      labelNames: ['sqlstate'],
      registers,
    });
    this.active = new Gauge({ name: 'flotilla_jobs_active', help: 'Tenant jobs running in this worker now', registers });
    this.notifications = new Counter({
      name: 'flotilla_notifications_total',
      help: 'Webhook deliveries by this worker, by result: sent, retrying (failed, will retry), given_up',
      labelNames: ['result'],
      registers,
    });
    const bounded = <R>(p: Promise<R>) =>
      Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('scrape timeout')), scrapeTimeoutMs).unref())]);
    const scrapeErrors = new Counter({
      name: 'flotilla_metrics_scrape_errors_total',
      help: 'Scrapes that could not read the queue (source=redis) or the control database (source=control)',
      labelNames: ['source'],
      registers,
    });
    new Gauge({
      name: 'flotilla_queue_jobs',
      help: 'Jobs in the tenant queue by BullMQ state (the same on every worker of a fleet: use max)',
      labelNames: ['state'],
      registers,
      async collect() {
        this.reset();
        try {
          for (const [state, n] of Object.entries(await bounded(sources.queueCounts()))) this.set({ state }, n);
        } catch {
          scrapeErrors.inc({ source: 'redis' });
        }
      },
    });
    // one read of the control database feeds the three rollout gauges
    let progress: Promise<RolloutProgress[]> | undefined;
    const readProgress = () =>
      (progress ??= bounded(sources.activeRollouts())
        .catch(() => {
          scrapeErrors.inc({ source: 'control' });
          return [];
        })
        .finally(() => setTimeout(() => (progress = undefined), 0)));
    new Gauge({
      name: 'flotilla_rollout_tenants',
      help: 'Tenants of each active rollout by state (from the control database; finished rollouts drop out)',
      labelNames: ['rollout', 'state'],
      registers,
      async collect() {
        this.reset();
        for (const r of await readProgress()) for (const state of TENANT_STATES) this.set({ rollout: r.id, state }, r.counts[state] ?? 0);
      },
    });
    new Gauge({
      name: 'flotilla_rollout_wave',
      help: 'Current wave of each active rollout (0-based)',
      labelNames: ['rollout'],
      registers,
      async collect() {
        this.reset();
        for (const r of await readProgress()) this.set({ rollout: r.id }, r.currentWave);
      },
    });
    new Gauge({
      name: 'flotilla_rollout_waves',
      help: 'Number of waves of each active rollout',
      labelNames: ['rollout'],
      registers,
      async collect() {
        this.reset();
        for (const r of await readProgress()) this.set({ rollout: r.id }, r.waveCount);
      },
    });
  }

  /** The processor's attempt events -> counters and histograms. */
  observe = (e: AttemptEvent): void => {
    this.attempts.inc({ outcome: e.outcome });
    if (e.outcome === 'lock_busy') this.lockBusy.inc();
    if (e.outcome === 'migrated' || e.outcome === 'up_to_date') this.finished.inc({ outcome: 'succeeded' });
    if (e.outcome === 'failed') this.finished.inc({ outcome: 'failed' });
    if (e.outcome === 'failed' || e.outcome === 'retrying') {
      const state = sqlStateOf(e.error);
      if (state === '55P03') this.lockTimeouts.inc();
      if (e.outcome === 'retrying') this.retries.inc({ sqlstate: state });
    }
    if ('ms' in e) for (const [k, v] of Object.entries(e.ms)) if (PHASES[k] && Number.isFinite(v)) this.phase.observe({ phase: PHASES[k]! }, v / 1000);
  };

  /** A webhook delivery's result (notify/sender.ts). */
  notification = (result: 'sent' | 'retrying' | 'given_up'): void => {
    this.notifications.inc({ result });
  };

  /** Wrap the job processor: counts the jobs running now. */
  track<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return async (...args: A) => {
      this.active.inc();
      try {
        return await fn(...args);
      } finally {
        this.active.dec();
      }
    };
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/**
 * The active rollouts of a fleet and their tenants by state, from the counters
 * the control database keeps per rollout and wave (control migration 006):
 * one read per scrape, never a count over the rollouts' tenants.
 */
export async function activeRolloutProgress(pool: Pick<pg.Pool, 'query'>, queuePrefix: string): Promise<RolloutProgress[]> {
  const r = await pool.query(
    `SELECT r.id, r.current_wave, r.wave_count, n.*
       FROM ${T('rollouts')} r
       CROSS JOIN LATERAL (SELECT ${COUNTS_SQL('c')} FROM ${T('rollout_counts')} c WHERE c.rollout_id = r.id) n
      WHERE r.queue_prefix = $1 AND (r.state = 'running' OR n.running > 0)
      ORDER BY r.created_at LIMIT 100`,
    [queuePrefix],
  );
  return r.rows.map((x) => ({ id: x.id, currentWave: x.current_wave, waveCount: x.wave_count, counts: toCounts(x) }));
}

export interface MetricsServer {
  /** where it listens, e.g. http://127.0.0.1:9464/metrics */
  url: string;
  close(): Promise<void>;
}

/** GET /metrics (Prometheus text format) and GET /healthz; anything else 404. Refuses a port in use (exit 2). */
export async function serveMetrics(metrics: WorkerMetrics, host: string, port: number): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    metrics.text().then(
      (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL'
          ? new ConfigError([`--metrics-port ${port} / --metrics-host ${host}: cannot listen (${e.code}); choose another port or host`])
          : e,
      ),
    );
    server.listen(port, host, () => resolve());
  });
  server.unref();
  const address = server.address() as { port: number };
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${address.port}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
