/**
 * What a chaos run can be told (ChaosOptions, with the defaults of
 * `npm run chaos`), what it reports (ChaosFigures, ChaosReport), and the extra
 * migrations it applies: slow enough to be interrupted, with side effects
 * that applying twice would show.
 */
import { CLI } from '../../test/helpers/fleet-base.js';
import type { VerifyFigures } from './verify.js';

export interface ChaosOptions {
  /** admin connection (superuser): creates and drops the run's databases */
  adminUrl: string;
  /** tenants in all */
  tenants: number;
  /** how many of them are schemas on one shared database (default 20%) */
  schemaTenants: number;
  workers: number;
  /** per worker */
  concurrency: number;
  /** SIGKILL a random worker this often (ms; 0: never) */
  killEveryMs: number;
  maxKills: number;
  redisRestarts: number;
  flushes: number;
  /** run `rollout resume` after a FLUSHALL (false: leave the recovery to the workers alone) */
  resume: boolean;
  /** one refused-connections window per entry (ms) */
  refusalWindowsMs: number[];
  /** the control database refuses connections this many times during the rollout ... */
  controlOutages: number;
  /** ... for this long each (ms) */
  controlOutageMs: number;
  lockHolds: number;
  lockHoldMs: number;
  /** concurrent `flotilla pending` runs */
  cliRunners: number;
  /** --lock-timeout of the rollout */
  lockTimeout: string;
  /** FLOTILLA_JOB_LOCK_DURATION of the workers (ms) */
  jobLockMs: number;
  reconcileEveryMs: number;
  timeoutMs: number;
  seed: number;
  keep: boolean;
  /** database names start with this */
  prefix: string;
  /** the built CLI (dist/cli/main.js) */
  cli: string;
  log: (line: string) => void;
  signal?: AbortSignal;
}

export interface ChaosFigures {
  tenants: number;
  databaseTenants: number;
  schemaTenants: number;
  migrations: number;
  workers: number;
  concurrency: number;
  workerProcessesStarted: number;
  workersFailedToStart: number;
  /** workers stopped by a SIGTERM/SIGINT this run did not send (another process on the machine) */
  externalStops: number;
  kills: number;
  killsMidMigration: number;
  redisRestarts: { atProgress: string; downMs: number }[];
  flushes: { atProgress: string; resumes: { code: number; recreated: number | null; dispatched: number | null }[] }[];
  refusals: { tenant: string; ms: number; atProgress: string; failedAttempts: number }[];
  controlOutages: { atProgress: string; ms: number; backendsTerminated: number }[];
  /** how many times `rollout --wait` said the control database was unreachable */
  waitOutageNotices: number;
  lockHolds: { tenant: string; table: string; ms: number; lockTimeouts: number }[];
  cliRuns: { tenant: string; code: number; applied: number; seconds: number }[];
  rolloutId: string | null;
  firstPass: { state: string; succeeded: number; failed: number; cancelled: number; seconds: number } | null;
  retryRounds: number;
  tenantsNeedingRetry: number;
  redisLeft: Record<string, number>;
  verify: VerifyFigures | null;
  seconds: { setup: number; rollout: number; retry: number; verify: number; total: number };
  timedOut: boolean;
}

export interface ChaosReport {
  ok: boolean;
  violations: string[];
  figures: ChaosFigures;
  options: Omit<ChaosOptions, 'log' | 'signal' | 'adminUrl'>;
}

export const DEFAULT_CHAOS_OPTIONS: Omit<ChaosOptions, 'adminUrl' | 'prefix' | 'schemaTenants'> = {
  tenants: 100,
  workers: 3,
  concurrency: 2,
  killEveryMs: 3000,
  maxKills: Number.POSITIVE_INFINITY,
  redisRestarts: 1,
  flushes: 1,
  resume: true,
  refusalWindowsMs: [6000, 12_000, 45_000],
  controlOutages: 1,
  controlOutageMs: 20_000,
  lockHolds: 1,
  lockHoldMs: 8000,
  cliRunners: 4,
  lockTimeout: '1s',
  jobLockMs: 5000,
  reconcileEveryMs: 2000,
  timeoutMs: 15 * 60_000,
  seed: 1,
  keep: false,
  cli: CLI,
  log: (line) => console.log(line),
};

/** The table the lock holder locks: created by 001, needed by later files. */
export const LOCKED_TABLE = 'users';

/** Extra migrations: slow enough to be interrupted, with side effects that applying twice would double. */
export const CHAOS_MIGRATIONS: Record<string, string> = {
  '009_chaos_effects.sql': `-- Migration: chaos run side effects (one row per applied migration; applied twice would show)
-- flotilla:validate allowRowChanges=true
CREATE TABLE chaos_effects (
  migration text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO chaos_effects (migration) VALUES ('009_chaos_effects.sql');
SELECT pg_sleep(0.2);
ALTER TABLE users ADD COLUMN chaos_score integer NOT NULL DEFAULT 0;
CREATE INDEX idx_users_chaos_score ON users (chaos_score);
`,
  '010_chaos_backfill.sql': `-- Migration: more chaos side effects, between two sleeps
-- flotilla:validate allowRowChanges=true
INSERT INTO chaos_effects (migration) VALUES ('010_chaos_backfill.sql');
SELECT pg_sleep(0.2);
ALTER TABLE products ADD COLUMN chaos_tag text NOT NULL DEFAULT 'chaos';
CREATE INDEX idx_products_chaos_tag ON products (chaos_tag);
SELECT pg_sleep(0.2);
`,
};

/** The figures before anything happened. */
export function emptyFigures(o: ChaosOptions): ChaosFigures {
  return {
    tenants: o.tenants,
    databaseTenants: o.tenants - o.schemaTenants,
    schemaTenants: o.schemaTenants,
    migrations: 0,
    workers: o.workers,
    concurrency: o.concurrency,
    workerProcessesStarted: 0,
    workersFailedToStart: 0,
    externalStops: 0,
    kills: 0,
    killsMidMigration: 0,
    redisRestarts: [],
    flushes: [],
    refusals: [],
    controlOutages: [],
    waitOutageNotices: 0,
    lockHolds: [],
    cliRuns: [],
    rolloutId: null,
    firstPass: null,
    retryRounds: 0,
    tenantsNeedingRetry: 0,
    redisLeft: {},
    verify: null,
    seconds: { setup: 0, rollout: 0, retry: 0, verify: 0, total: 0 },
    timedOut: false,
  };
}
