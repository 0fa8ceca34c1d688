/**
 * What a worker does with one tenant job.
 *
 * migrate:  claim in the control database (stale or cancelled jobs stop here)
 *           -> outside its maintenance window? wait for the next one
 *           -> resolve the tenant's URL from this worker's environment -> connect
 *           -> the engine (advisory lock, apply the frozen set, validate each file)
 *           -> something applied (or a retry)? post-commit checks on the same
 *              connection: indexes valid, constraints validated, drift
 *           -> record the attempt; hand the next tenants to BullMQ
 *              (producer/dispatcher.ts)
 *
 * Failures: transient (connection, 55P03, 40P01, 40001, 53300, 57P01, a
 * drain's interruption) retry with BullMQ's jittered backoff; another runner
 * holding the migration lock is not a failure (the job is delayed); everything
 * else fails at once (UnrecoverableError).
 *
 * Everything outside goes through deps (worker/ports.ts): the control store,
 * the tenant database, the clock and the random source.
 */
import { DelayedError, UnrecoverableError, type Job, type Queue } from 'bullmq';
import type pg from 'pg';
import { FlotillaError, InterruptedError, LockTimeoutError, isFlotillaError } from '../core/errors.js';
import { redactSecrets } from '../core/redact.js';
import { engineSettingsOf } from '../config.js';
import { resolveDatabaseUrl } from '../core/tenants.js';
import { isInsideWindow, nextWindowStart } from '../core/windows.js';
import { appliedByRollout, rolloutAppliedBy } from '../core/rollout-applied.js';
import { ControlUnavailableError } from '../control/pool.js';
import type { MigrationSet } from '../core/migration-set.js';
import type { ConnectionCache } from '../adapters/pg/connection-cache.js';
import type { PostChecks } from '../adapters/pg/post-checks.js';
import { isRetryable } from '../adapters/pg/sqlstate.js';
import { systemClock, systemRandom } from '../adapters/clock.js';
import type { ClaimedJob } from '../control/store.js';
import type { Clock, Random } from '../core/ports.js';
import { pgTenants, type FleetFingerprints, type ProcessorStore, type TenantTarget } from './ports.js';
import { jobKindOf, type JobKind, type TenantJobData } from '../core/jobs.js';
import { frozenRevertPairs } from '../core/revert.js';
import { recordAndDispatch } from '../producer/dispatcher.js';
import type { Logger } from '../logger.js';
import type { AttemptEvent } from './metrics.js';

export interface ProcessorDeps {
  store: ProcessorStore;
  queue: Queue;
  workerId: string;
  logger: Logger;
  env: Record<string, string | undefined>;
  /** timestamps (window checks, recorded attempts, delays) */
  now: () => Date;
  /** tenant connections kept between jobs (schema tenants share a database); without it, one connection per job */
  connections?: ConnectionCache;
  /** the rollout's majority fingerprint, cached per worker */
  fingerprints: FleetFingerprints;
  /** the tenant database (default: pgTenants(workerId, connections)) */
  tenants?: TenantTarget;
  /** durations (default: performance.now) */
  clock?: Clock;
  /** jitter of the delay when another runner holds the tenant's lock (default: Math.random) */
  random?: Random;
  /** what happened to each attempt (the worker's metrics: worker/metrics.ts); must not throw */
  observe?: (e: AttemptEvent) => void;
}

export interface TenantJobResult {
  tenantId: string;
  kind: JobKind;
  outcome: 'succeeded' | 'migrated' | 'skipped';
  applied: string[];
  ms: Record<string, number>;
}

/** ProcessorDeps with its defaults filled in. */
type Deps = ProcessorDeps & Required<Pick<ProcessorDeps, 'clock' | 'random' | 'tenants'>>;

export function tenantProcessor(given: ProcessorDeps) {
  const deps: Deps = {
    ...given,
    clock: given.clock ?? systemClock,
    random: given.random ?? systemRandom,
    tenants: given.tenants ?? pgTenants(given.workerId, given.connections),
  };
  return async (job: Job<TenantJobData>, token?: string, signal?: AbortSignal): Promise<TenantJobResult> => {
    return migrateJob(deps, job, token, signal);
  };
}

async function migrateJob(deps: Deps, job: Job<TenantJobData>, token: string | undefined, signal: AbortSignal | undefined): Promise<TenantJobResult> {
  const { rolloutId, tenantId, generation } = job.data;
  const log = deps.logger.child({ rolloutId, tenantId, jobId: job.id });
  const { clock, tenants } = deps;
  const t0 = clock.now();
  const claim = await deps.store.claim(rolloutId, tenantId, generation, deps.workerId);
  // queue: from (re)entering the queue to this worker taking it
  const ms: Record<string, number> = { queue: job.processedOn ? Math.max(0, job.processedOn - job.timestamp - (job.delay ?? 0)) : 0, claim: clock.now() - t0 };
  if (!claim) {
    log.debug('job is stale (tenant finished, cancelled or retried): skipped');
    deps.observe?.({ outcome: 'stale' });
    return { tenantId, kind: 'migrate', outcome: 'skipped', applied: [], ms };
  }
  const window = claim.tenant.window;
  if (window && !isInsideWindow(window, deps.now())) {
    const at = nextWindowStart(window, deps.now());
    await deps.store.markScheduled(rolloutId, tenantId, generation, at);
    deps.observe?.({ outcome: 'scheduled' });
    log.info({ until: at.toISOString() }, 'outside the maintenance window: waiting for the next one');
    await job.moveToDelayed(at.getTime(), token);
    throw new DelayedError();
  }
  const startedAt = deps.now();
  let client: pg.Client | undefined;
  let url = '';
  // a connection goes back to the cache only after a job that went well (and for a schema tenant)
  let reusable = false;
  // the job went well: a connection that is not kept is closed without waiting for it
  let done = false;
  // files committed before a failure stay applied: the failed attempt must say so
  let appliedBeforeFailure: string[] = [];
  let set: MigrationSet | undefined;
  let schema: string | undefined;
  // what the engine waited for locks on the tenant's objects (engine/lock-wait.ts), recorded with the attempt
  let locks: { lockWaitMs: number; lockTimeouts: number } | undefined;
  try {
    set = await deps.store.loadMigrationSet(claim.setChecksum);
    url = resolveDatabaseUrl(claim.tenant.databaseUrl, deps.env, tenantId);
    let t = clock.now();
    client = await tenants.connect(url, tenantId);
    ms.connect = clock.now() - t;
    t = clock.now();
    const settings = engineSettingsOf(claim.options.engine, {
      schema: claim.tenant.schema,
      lockWaitTimeoutMs: 0,
      appliedBy: rolloutAppliedBy(deps.workerId, rolloutId),
    });
    // a revert rollout runs the down files of what the reverted rollout applied here (core/revert.ts)
    const revert = claim.options.revert;
    const report = revert
      ? await tenants.revert(client, url, settings, frozenRevertPairs(set, revert), { select: { rollout: revert.of }, signal, dryRun: claim.options.dryRun })
      : await tenants.migrate(client, url, settings, set, {
          dryRun: claim.options.dryRun,
          signal,
          // each COMMIT travels with the next file, the post-commit checks with the last COMMIT (fewer round trips)
          deferCommits: true,
          postChecks: !claim.options.dryRun,
        });
    schema = report.schema;
    locks = { lockWaitMs: report.tableLockWaitMs, lockTimeouts: report.lockTimeouts };
    ms.engine = clock.now() - t;
    Object.assign(ms, report.timings);
    if (!claim.options.dryRun) appliedBeforeFailure = report.applied.map((a) => a.name);
    if (report.failed) throw report.failed.error;
    if (report.interrupted) throw new InterruptedError();
    const applied = report.applied.map((a) => a.name);
    // everything this rollout applied here, earlier attempts included (read from the tracking table when there were any)
    const appliedTotal = await rolloutApplied(tenants, client, claim, generation, rolloutId, set, schema);
    // post-commit checks when something changed (in this attempt, or in an earlier one that died before recording
    // its checks), and on a `rollout retry` (generation 1 and up: the last attempt may have failed them)
    const checked =
      !claim.options.dryRun && (applied.length > 0 || (appliedTotal?.length ?? 0) > 0 || generation > 0)
        ? await runChecks(deps, client, claim, report.schema, rolloutId, log, report.postChecks)
        : undefined;
    if (checked) ms.checks = checked.ms;
    t = clock.now();
    await recordAndDispatch(
      deps.store,
      deps.queue,
      {
        rolloutId,
        tenantId,
        generation,
        attempt: claim.attempt,
        state: checked?.error ? 'failed' : 'succeeded',
        applied,
        appliedTotal,
        error: checked?.error ?? null,
        checks: checked?.checks ?? null,
        worker: deps.workerId,
        kind: jobKindOf(claim.options),
        startedAt,
        durationMs: Math.round(clock.now() - t0),
        ...locks,
      },
      deps.now(),
    );
    ms.record = clock.now() - t;
    // a schema tenant's database serves the next tenants (reset with DISCARD ALL first); a tenant database
    // of its own is closed: another job for it is unlikely soon, and the reset would be a round trip for nothing
    reusable = claim.tenant.schema !== undefined;
    done = true;
    deps.observe?.(checked?.error ? { outcome: 'failed', ms, error: checked.error } : { outcome: applied.length ? 'migrated' : 'up_to_date', ms });
    if (checked?.error) throw new UnrecoverableError(String(checked.error.message));
    log.info({ applied, ...(report.createdSchema ? { createdSchema: report.schema } : {}), ms: roundAll(ms) }, applied.length ? 'migrated' : 'up to date');
    return { tenantId, kind: jobKindOf(claim.options), outcome: applied.length ? 'migrated' : 'succeeded', applied, ms: roundAll(ms) };
  } catch (e) {
    if (e instanceof DelayedError || e instanceof UnrecoverableError) throw e;
    // the control database stayed away (pool.ts gave up): nothing to record now; BullMQ retries the job and
    // that attempt finds what this one committed in the tenant's tracking table
    if (e instanceof ControlUnavailableError) throw new Error(e.message);
    const total = client && set ? await rolloutApplied(tenants, client, claim, generation, rolloutId, set, schema).catch(() => undefined) : undefined;
    return await failed(deps, job, token, claim, e, startedAt, t0, log, appliedBeforeFailure, total, ms, locks);
  } finally {
    if (client) {
      const released = tenants.release(url, client, reusable);
      if (done && !reusable) released.catch(() => {});
      else await released;
    }
  }
}

async function failed(
  deps: Deps,
  job: Job<TenantJobData>,
  token: string | undefined,
  claim: ClaimedJob,
  e: unknown,
  startedAt: Date,
  t0: number,
  log: Logger,
  applied: string[] = [],
  appliedTotal?: string[],
  ms: Record<string, number> = {},
  locks?: { lockWaitMs: number; lockTimeouts: number },
): Promise<never> {
  const { rolloutId, tenantId, generation } = job.data;
  if (e instanceof LockTimeoutError) {
    // another runner (a CLI, a worker of another rollout) is migrating this tenant: come back shortly
    const delay = 500 + Math.floor(deps.random() * 1500);
    log.info({ holder: e.holder, delay }, 'tenant is locked by another runner: retrying later');
    deps.observe?.({ outcome: 'lock_busy' });
    await job.moveToDelayed(deps.now().getTime() + delay, token);
    throw new DelayedError();
  }
  const transient = isFlotillaError(e) ? e.kind === 'transient' : isRetryable(e);
  const final = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
  const error = errorData(e);
  const state = transient && !final ? 'retrying' : 'failed';
  await recordAndDispatch(
    deps.store,
    deps.queue,
    {
      rolloutId,
      tenantId,
      generation,
      attempt: claim.attempt,
      state,
      applied,
      appliedTotal,
      error,
      worker: deps.workerId,
      kind: jobKindOf(claim.options),
      startedAt,
      durationMs: Math.round(deps.clock.now() - t0),
      ...locks,
    },
    deps.now(),
  );
  log.warn({ err: error, attempt: job.attemptsMade + 1, retry: state === 'retrying' }, 'tenant job failed');
  deps.observe?.({ outcome: state, ms, error: e });
  const message = redactSecrets(String(error.message));
  if (state === 'retrying') throw new Error(message);
  throw new UnrecoverableError(message);
}

/**
 * What this rollout applied to the tenant, from the tenant's tracking table
 * (core/rollout-applied.ts): read only when an earlier attempt of the rollout
 * may have committed files it never recorded (not the first attempt of the
 * first generation); undefined otherwise (the attempt's own list is the whole
 * truth) and for a dry run.
 */
async function rolloutApplied(
  tenants: TenantTarget,
  client: pg.Client,
  claim: ClaimedJob,
  generation: number,
  rolloutId: string,
  set: MigrationSet,
  schema: string | undefined,
): Promise<string[] | undefined> {
  if (claim.options.dryRun || (claim.attempt <= 1 && generation === 0)) return undefined;
  const rows = await tenants.readLedger(client, schema ?? claim.tenant.schema ?? undefined, claim.options.engine.trackingTable ?? 'migrations');
  return appliedByRollout(
    set.migrations.map((m) => m.name),
    rows,
    rolloutId,
  );
}

/**
 * Post-commit checks: every index valid, every constraint validated, and the
 * schema's fingerprint against the rollout's majority (drift is a warning).
 */
async function runChecks(
  deps: Deps,
  client: pg.Client,
  claim: ClaimedJob,
  schema: string,
  rolloutId: string,
  log: Logger,
  /** taken by the engine right after its last COMMIT (MigrateRequest.postChecks) */
  taken?: PostChecks & { ms: number },
) {
  const t = deps.clock.now() - (taken?.ms ?? 0);
  const checks = taken
    ? { fingerprint: taken.fingerprint, invalidIndexes: taken.invalidIndexes, notValidConstraints: taken.notValidConstraints }
    : await deps.tenants.postChecks(client, schema, claim.options.engine.trackingTable);
  const majority = await deps.fingerprints.majority(deps.store, rolloutId);
  const drift = majority !== undefined && majority !== checks.fingerprint;
  const problems = [
    ...checks.invalidIndexes.map((i) => `index ${i} is INVALID`),
    ...(claim.options.engine.validation.allowNotValidConstraints ? [] : checks.notValidConstraints.map((c) => `constraint ${c} is NOT VALID`)),
  ];
  const error = problems.length
    ? {
        code: 'post_check_failed',
        kind: 'migration',
        message: problems.join('; '),
        hint: 'Fix the index or constraint on this tenant, then `flotilla rollout retry`.',
      }
    : null;
  if (drift) log.warn({ fingerprint: checks.fingerprint, fleet: majority }, 'schema differs from the rest of the fleet at this version (drift)');
  return { checks: { ...checks, drift }, error, ms: deps.clock.now() - t };
}

function errorData(e: unknown): Record<string, unknown> {
  if (e instanceof FlotillaError) return e.toJSON();
  const err = e as { code?: string; message?: string };
  return { code: err?.code ?? 'error', kind: isRetryable(e) ? 'transient' : 'migration', message: redactSecrets(err?.message ?? String(e)) };
}

function roundAll(ms: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, Math.round(v * 10) / 10]));
}
