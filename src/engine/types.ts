/**
 * The engine's vocabulary, for its callers (CLI, workers, the library API):
 * settings, the request, the report, the typed events and the ports.
 * Re-exported by src/migrator.ts.
 */
import type { FlotillaError } from '../core/errors.js';
import type { AppliedRow } from '../core/plan.js';
import type { Clock, Random } from '../core/ports.js';
import type { ValidationOptions } from '../core/validation.js';
import type { LockSessions } from '../adapters/pg/lock.js';
import type { PostChecks } from '../adapters/pg/post-checks.js';

export interface EngineSettings {
  /** run with this search_path and keep the tracking table there; default: current_schema() */
  schema?: string;
  trackingTable: string;
  /** SET lock_timeout for the migration's statements (ms, 0 = none) */
  lockTimeoutMs: number;
  /** SET statement_timeout for the migration's statements (ms, 0 = none) */
  statementTimeoutMs: number;
  /** how long to wait for another runner's migration lock (ms, 0 = do not wait) */
  lockWaitTimeoutMs: number;
  /** validate every transactional migration (a file header can turn it off) */
  validate: boolean;
  validation: Partial<ValidationOptions>;
  /** recorded in the tracking table: who or what applied the migration */
  appliedBy: string;
  /**
   * Apply consecutive transactional files in one transaction (each still
   * validated on its own): all of them or none, one commit instead of one per
   * file. A non-transactional file runs alone between groups.
   */
  singleTransaction: boolean;
}

export const DEFAULT_ENGINE_SETTINGS: Readonly<EngineSettings> = Object.freeze({
  trackingTable: 'migrations',
  lockTimeoutMs: 10_000,
  statementTimeoutMs: 3_600_000,
  lockWaitTimeoutMs: 300_000,
  validate: true,
  validation: {},
  appliedBy: 'flotilla',
  singleTransaction: false,
});

export type EngineEvent =
  | { type: 'lock-wait'; holder: string | undefined }
  | { type: 'lock-acquired'; waitedMs: number }
  | { type: 'found-pending'; names: string[] }
  /** the schema did not exist: it was created for the tracking table (a new tenant schema) */
  | { type: 'schema-created'; schema: string }
  | { type: 'already-applied'; name: string }
  | { type: 'migration-start'; name: string; transactional: boolean }
  | { type: 'migration-done'; name: string; durationMs: number }
  | { type: 'migration-failed'; name: string; error: FlotillaError }
  | { type: 'warning'; message: string };

export interface MigrateRequest {
  /** apply only this migration (the guide's `run <name>`) */
  only?: string;
  /** apply and validate inside one transaction, then roll it all back */
  dryRun?: boolean;
  /** checked between migrations and statements: stop cleanly when aborted */
  signal?: AbortSignal;
  /**
   * Send each transaction's COMMIT (with the lock check) in front of the next
   * file's statements, one round trip fewer per file (workers). Nothing commits
   * later on the server; the client learns of it later, so `migration-done` and
   * the next `migration-start` follow the next file's round trip.
   */
  deferCommits?: boolean;
  /** run the post-commit checks (adapters/pg/post-checks.ts) in the round trip of the last COMMIT, into `report.postChecks` */
  postChecks?: boolean;
}

export interface MigrateReport {
  schema: string;
  /** the schema did not exist and was created (rolled back again in a dry run) */
  createdSchema: boolean;
  /** pending when planned under the lock (or [] when nothing was pending) */
  pending: string[];
  applied: { name: string; durationMs: number }[];
  alreadyApplied: string[];
  /** non-transactional files a dry run could not try */
  skipped: string[];
  failed?: { name: string; error: FlotillaError };
  warnings: string[];
  dryRun: boolean;
  lockWaitMs: number;
  /** waited for locks on the target's objects (ms, sampled: engine/lock-wait.ts); the migration lock is lockWaitMs */
  tableLockWaitMs: number;
  /** statements that failed with lock_timeout (55P03) */
  lockTimeouts: number;
  /** stopped early because the signal was aborted */
  interrupted: boolean;
  /** where the time went, ms: plan (ledger reads), lock, apply (statements), validation (scope + snapshots + diff), ledger (tracking rows, commit) */
  timings: Timings;
  /** the post-commit checks, when asked for (`postChecks`) and this run committed something: taken right after its last COMMIT */
  postChecks?: PostChecks & { ms: number };
}

export interface Timings {
  plan: number;
  lock: number;
  apply: number;
  validation: number;
  ledger: number;
}

export interface StatusReport {
  schema: string;
  applied: AppliedRow[];
  pending: string[];
  changed: { name: string; applied: string; current: string; recordedAs?: string }[];
  /** applied under another name with the same version (e.g. 1_x.sql now 001_x.sql): not applied again */
  renamed: { version: string; from: string; to: string }[];
  missing: AppliedRow[];
  outOfOrder: string[];
  /** a version recorded by several rows (e.g. 1_x.sql and 001_x.sql): one applied migration, `kept` stands for it */
  duplicates: { version: string; kept: string; extra: string[] }[];
  /** applied rows recorded by `flotilla baseline` (nothing ran): core/baseline.ts */
  baseline: string[];
}

/** What `Migrator.revert` undoes (core/revert.ts RevertSelect), and its stop signal. */
export interface RevertRequest {
  select: import('../core/revert.js').RevertSelect;
  /** run and validate the down files in one transaction, then roll it all back */
  dryRun?: boolean;
  signal?: AbortSignal;
}

export interface BaselineReport {
  schema: string;
  /** files recorded as applied by this baseline */
  recorded: string[];
  /** files up to the version that were already recorded (same checksum) */
  already: string[];
}

export type Emit = (e: EngineEvent) => void;

export interface MigratorPorts {
  /**
   * Where the lock session comes from: a second connection to the same
   * database that runs no migration SQL. Default for a pg.Client: a second
   * client with the same connection parameters, opened only when something is
   * pending.
   */
  lockSessions?: LockSessions;
  /** durations, timings and the lock wait (default: performance.now and setTimeout) */
  clock?: Clock;
  /** the lock wait's backoff jitter (default: Math.random) */
  random?: Random;
}

/** A run's report before anything happened: nothing pending, applied or timed yet. */
export function emptyReport(schema: string, dryRun: boolean): MigrateReport {
  return {
    schema,
    createdSchema: false,
    pending: [],
    applied: [],
    alreadyApplied: [],
    skipped: [],
    warnings: [],
    dryRun,
    lockWaitMs: 0,
    tableLockWaitMs: 0,
    lockTimeouts: 0,
    interrupted: false,
    timings: { plan: 0, lock: 0, apply: 0, validation: 0, ledger: 0 },
  };
}
