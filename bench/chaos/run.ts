/**
 * The chaos run (`npm run chaos`, and a small configuration in CI): a real
 * rollout over N tenants with W worker processes while things go wrong on
 * purpose, then a verdict read from the databases themselves.
 *
 * During the rollout: a random worker SIGKILLed every few seconds (and
 * replaced), the private Redis restarted (SAVE + SIGKILL + start on the same
 * port), Redis FLUSHALLed then `flotilla rollout resume` (twice: idempotent),
 * tenant databases refusing connections for a while (ALLOW_CONNECTIONS false,
 * backends terminated), the control database refusing connections the same
 * way (the workers and `rollout --wait` must ride it out), a tenant holding ACCESS EXCLUSIVE on a table the
 * migrations need (so lock_timeout fires), and `flotilla pending` run on a few
 * tenants at the same time as the workers. Tenants that exhausted their
 * attempts get `flotilla rollout retry`.
 */
import { mkdtempSync, readdirSync, copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import pg from 'pg';
import { loadMigrationDir } from '../../src/adapters/fs-source.js';
import { cliIdentity } from '../../src/cli/commands/single.js';
import type { MigrationSet } from '../../src/core/migration-set.js';
import { CLI, REPO, createFleet, dbUrl, spawnWorker, writeTenantsFile, type FleetFixture, type FleetTenantInfo, type SpawnedWorker } from '../../test/helpers/fleet-base.js';
import { PrivateRedis } from './redis.js';
import { verifyFleet, withClient, type VerifyFigures } from './verify.js';

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
const LOCKED_TABLE = 'users';

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

/** mulberry32: a small seeded PRNG, so a run's choices can be replayed with --seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The last lines of a worker's output, pino JSON shortened to time, message and error. */
function lastLines(output: string, n: number): string {
  return output
    .trim()
    .split('\n')
    .slice(-n)
    .map((line) => {
      try {
        const j = JSON.parse(line);
        return `${new Date(j.time).toISOString().slice(11, 23)} ${j.msg}${j.tenantId ? ` ${j.tenantId}` : ''}${j.err ? ` (${String(j.err.message ?? j.err).slice(0, 120)})` : ''}`;
      } catch {
        return line.slice(0, 200);
      }
    })
    .join(' | ');
}

const qi = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Environment for the CLI and the workers: only what we pass, none of the caller's DATABASE_URL & co. */
function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (/^(DATABASE_URL|MIGRATIONS_DIR|FLOTILLA_|REDIS_URL|CONTROL_DATABASE_URL|LOG_LEVEL|PG[A-Z]+$)/.test(k)) delete env[k];
  return { ...env, ...extra };
}

interface WorkerEntry {
  proc: SpawnedWorker;
  n: number;
  ready: boolean;
  killed: boolean;
  stopping: boolean;
  id(): string | undefined;
}

interface TenantRow {
  tenant_id: string;
  state: string;
  position: number;
}

export async function runChaos(input: Partial<ChaosOptions> & { adminUrl: string }): Promise<ChaosReport> {
  const o: ChaosOptions = {
    ...DEFAULT_CHAOS_OPTIONS,
    prefix: `flotilla_chaos${randomBytes(3).toString('hex')}`,
    schemaTenants: Math.round((input.tenants ?? DEFAULT_CHAOS_OPTIONS.tenants) * 0.2),
    ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)),
  } as ChaosOptions;
  if (o.schemaTenants > o.tenants) throw new Error('--schema-tenants is more than --tenants');
  const t0 = performance.now();
  const since = () => `${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s`;
  const log = (line: string) => o.log(`[${since()}] ${line}`);
  const random = rng(o.seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
  const violations: string[] = [];
  const figures: ChaosFigures = {
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

  // stop: timeout, the caller's signal (SIGINT), or the end of the run
  const stop = new AbortController();
  const timer = setTimeout(() => {
    figures.timedOut = true;
    violations.push(`timeout: the run did not finish within ${Math.round(o.timeoutMs / 1000)} s`);
    stop.abort();
  }, o.timeoutMs);
  const onAbort = () => {
    violations.push('interrupted');
    stop.abort();
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.signal?.aborted) onAbort();

  const dir = mkdtempSync(join(tmpdir(), 'flotilla-chaos-'));
  const children = new Set<ChildProcess>();
  const workers: WorkerEntry[] = [];
  const lockClients: pg.Client[] = [];
  const refused = new Set<string>();
  let fleet: FleetFixture | undefined;
  let redis: PrivateRedis | undefined;
  let control: pg.Pool | undefined;
  const referenceDb = `${o.prefix}_reference`;
  let referenceCreated = false;

  const admin = <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => withClient(o.adminUrl, fn, 'flotilla-chaos');

  const runCliTracked = (
    args: string[],
    env: NodeJS.ProcessEnv,
    timeoutMs = 10 * 60_000,
  ): Promise<{ code: number; stdout: string; stderr: string; seconds: number }> => {
    const started = performance.now();
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [o.cli, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(child);
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d) => (stdout += d));
      child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-20_000)));
      const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('error', (e) => (stderr += String(e)));
      child.on('close', (code, signal) => {
        clearTimeout(killer);
        children.delete(child);
        resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr, seconds: (performance.now() - started) / 1000 });
      });
    });
  };

  let env: NodeJS.ProcessEnv = {};
  let workerEnv: NodeJS.ProcessEnv = {};
  let workerCount = 0;
  const startWorker = (): WorkerEntry => {
    const n = ++workerCount;
    figures.workerProcessesStarted++;
    const proc = spawnWorker({ env: workerEnv, concurrency: o.concurrency, cli: o.cli, args: ['--drain-timeout', '5s'] });
    const entry: WorkerEntry = {
      proc,
      n,
      ready: false,
      killed: false,
      stopping: false,
      id: () => /worker (\S+) started/.exec(proc.output())?.[1] ?? /"worker":"([^"]+)"/.exec(proc.output())?.[1],
    };
    workers.push(entry);
    proc.started.then(
      () => (entry.ready = true),
      () => {},
    );
    // 'close': after the last of its output arrived (a drain logs on its way out)
    proc.child.once('close', (code, signal) => {
      if (entry.killed || entry.stopping || stop.signal.aborted) return;
      // SIGTERM/SIGINT are never sent by this run: another process on the machine stopped it (a drain is the right answer)
      if (signal === 'SIGTERM' || signal === 'SIGINT' || /"msg":"draining: no new jobs/.test(proc.output())) {
        figures.externalStops++;
        log(`worker #${n} was stopped by a SIGTERM/SIGINT from outside this run (${code ?? signal}${code === 0 ? ', drained' : ''}); another is started`);
        return;
      }
      if (!entry.ready) {
        // e.g. started while Redis was down: refused to start (exit 3); another one is started
        figures.workersFailedToStart++;
        log(`worker #${n} did not start (exit ${code ?? signal}): ${proc.output().trim().split('\n').slice(-1)[0]?.slice(0, 200)}`);
      } else {
        violations.push(`worker #${n} (${entry.id()}) exited by itself (${code ?? signal}); its last lines: ${lastLines(proc.output(), 5)}`);
      }
    });
    return entry;
  };
  const alive = (w: WorkerEntry) => w.proc.child.exitCode === null && w.proc.child.signalCode === null && !w.killed && !w.stopping;

  const tasks: Promise<void>[] = [];
  const task = (name: string, fn: () => Promise<void>) => {
    tasks.push(
      fn().catch((e) => {
        if (!stop.signal.aborted) violations.push(`${name}: ${(e as Error).message}`);
      }),
    );
  };

  const body = async (): Promise<void> => {
    // ---- setup: migrations, tenants, reference schema, Redis, workers
    const repoMigrations = join(REPO, 'migrations');
    for (const f of readdirSync(repoMigrations).filter((f) => f.endsWith('.sql'))) copyFileSync(join(repoMigrations, f), join(dir, f));
    for (const [name, sql] of Object.entries(CHAOS_MIGRATIONS)) writeFileSync(join(dir, name), sql);
    const set: MigrationSet = await loadMigrationDir(dir);
    figures.migrations = set.migrations.length;
    log(
      `setting up ${o.tenants} tenants (${o.tenants - o.schemaTenants} databases, ${o.schemaTenants} schemas on a shared one), ${set.migrations.length} migrations, prefix ${o.prefix}`,
    );
    fleet = await createFleet(o.adminUrl, o.prefix, o.tenants - o.schemaTenants, o.schemaTenants);
    if (stop.signal.aborted) return;
    await admin((c) => c.query(`CREATE DATABASE ${qi(referenceDb)} TEMPLATE ${qi(`${o.prefix}_template`)}`));
    referenceCreated = true;
    const referenceUrl = dbUrl(o.adminUrl, referenceDb);
    {
      const c = new pg.Client({ connectionString: referenceUrl });
      await c.connect();
      try {
        for (const m of set.migrations) await c.query(m.sql);
      } finally {
        await c.end();
      }
    }
    // the tenants file in a seeded shuffled order: schema tenants among database tenants
    const order = [...fleet.tenants];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const tenantsFile = writeTenantsFile(
      join(dir, 'tenants.yaml'),
      order.map((t) => ({ id: t.id, databaseUrl: t.url, ...(t.schema ? { schema: t.schema } : {}) })),
    );
    const byId = new Map(order.map((t) => [t.id, t]));

    redis = await PrivateRedis.start();
    log(`private redis-server on port ${redis.port}`);
    env = baseEnv({ CONTROL_DATABASE_URL: fleet.controlUrl, REDIS_URL: redis.url, FLOTILLA_QUEUE_PREFIX: '{chaos}', LOG_LEVEL: 'warn' });
    workerEnv = { ...env, FLOTILLA_JOB_LOCK_DURATION: `${o.jobLockMs}ms`, FLOTILLA_RECONCILE_EVERY: `${o.reconcileEveryMs}ms`, LOG_LEVEL: 'info' };

    // lock-hold tenants: early in the order (so they are attempted while the lock is held), schema tenants first;
    // 001 is applied beforehand by the CLI so that the locked table exists
    const early = order.slice(0, Math.max(4, Math.ceil(order.length / 10)));
    const lockTenants = [...early.filter((t) => t.schema), ...early.filter((t) => !t.schema)].slice(0, o.lockHolds);
    const cliTenants = new Set<string>(lockTenants.map((t) => t.id));
    const busy = new Set<string>(lockTenants.map((t) => t.id));
    for (const t of lockTenants) {
      const r = await runCliTracked(['run', set.migrations[0]!.name, '--dir', dir, '--database-url', t.url, ...(t.schema ? ['--schema', t.schema] : [])], env);
      if (r.code !== 0) throw new Error(`pre-applying ${set.migrations[0]!.name} to ${t.id}: exit ${r.code}: ${r.stderr.slice(-500)}`);
    }

    for (let i = 0; i < o.workers; i++) startWorker();
    await Promise.race([
      Promise.all(workers.map((w) => w.proc.started)),
      sleep(120_000).then(() => Promise.reject(new Error('workers did not start within 120 s'))),
    ]);
    control = new pg.Pool({ connectionString: fleet.controlUrl, max: 2, application_name: 'flotilla-chaos' });
    control.on('error', () => {});
    figures.seconds.setup = (performance.now() - t0) / 1000;
    log(`setup done: ${o.workers} workers x ${o.concurrency}`);
    if (stop.signal.aborted) return;

    // ---- lock holders: ACCESS EXCLUSIVE on the table, from before the rollout starts until lockHoldMs after it
    // started and the tenant's lock_timeout fired at least once (at most a minute more)
    let onRolloutStarted: (id: string) => void = () => {};
    const rolloutStartedAt = new Promise<string>((resolve) => (onRolloutStarted = resolve));
    for (const t of lockTenants) {
      const c = new pg.Client({ connectionString: t.url, application_name: 'flotilla-chaos-lock-holder' });
      c.on('error', () => {});
      await c.connect();
      lockClients.push(c);
      await c.query(`BEGIN; LOCK TABLE ${qi(t.schema ?? 'public')}.${qi(LOCKED_TABLE)} IN ACCESS EXCLUSIVE MODE`);
      const hold = { tenant: t.id, table: `${t.schema ?? 'public'}.${LOCKED_TABLE}`, ms: o.lockHoldMs, lockTimeouts: 0 };
      figures.lockHolds.push(hold);
      log(`lock hold: ${t.id} ACCESS EXCLUSIVE on ${hold.table} for ${o.lockHoldMs / 1000} s`);
      task(`lock hold ${t.id}`, async () => {
        const id = await Promise.race([rolloutStartedAt, sleep(o.timeoutMs, stop.signal).then(() => '')]);
        const until = performance.now() + o.lockHoldMs;
        await sleep(o.lockHoldMs, stop.signal);
        while (!stop.signal.aborted && id && performance.now() < until + 60_000) {
          const r = await control!
            .query(`SELECT count(*)::int AS n FROM flotilla.attempts WHERE rollout_id = $1 AND tenant_id = $2 AND error->'pg'->>'code' = '55P03'`, [id, t.id])
            .catch(() => ({ rows: [{ n: 0 }] }));
          if (r.rows[0].n > 0) break;
          await sleep(250, stop.signal);
        }
        hold.ms = Math.round(performance.now() - until + o.lockHoldMs);
        await c.query('ROLLBACK').catch(() => {});
        await c.end().catch(() => {});
        log(`lock hold: ${t.id} released after ${(hold.ms / 1000).toFixed(1)} s`);
      });
    }

    // ---- the rollout
    const rolloutStarted = performance.now();
    const producer = runCliTracked(
      ['rollout', '--dir', dir, '--tenants', tenantsFile, '--all', '--max-failures', '100%', '--lock-timeout', o.lockTimeout, '--wait', '--json'],
      env,
      o.timeoutMs,
    );
    let producerDone = false;
    void producer.then(() => (producerDone = true));
    let rolloutId: string | undefined;
    while (!rolloutId && !producerDone && !stop.signal.aborted) {
      rolloutId = (await control.query(`SELECT id FROM flotilla.rollouts ORDER BY created_at DESC LIMIT 1`).catch(() => ({ rows: [] as { id: string }[] })))
        .rows[0]?.id;
      if (!rolloutId) await sleep(100, stop.signal);
    }
    if (!rolloutId) {
      const p = await producer;
      throw new Error(`the rollout was not created: exit ${p.code}: ${p.stderr.slice(-1000)}`);
    }
    figures.rolloutId = rolloutId;
    onRolloutStarted(rolloutId);
    log(`rollout ${rolloutId} started`);
    const id = rolloutId;

    let lastKill = performance.now();
    let refusalsFired = 0;
    let restartsFired = 0;
    let flushesFired = 0;
    let cliFired = false;
    let outagesFired = 0;
    let controlDown = false;
    const controlDb = new URL(fleet.controlUrl).pathname.slice(1);
    let state = { done: 0, total: o.tenants, running: 0, rolloutState: 'running', rows: [] as TenantRow[] };
    const progress = () => `${state.done}/${state.total} done`;
    const readState = async () => {
      const rows = (await control!.query(`SELECT tenant_id, state, position FROM flotilla.rollout_tenants WHERE rollout_id = $1 ORDER BY position`, [id]))
        .rows as TenantRow[];
      const r = (await control!.query(`SELECT state FROM flotilla.rollouts WHERE id = $1`, [id])).rows[0];
      state = {
        rows,
        total: rows.length,
        done: rows.filter((x) => ['succeeded', 'failed', 'cancelled'].includes(x.state)).length,
        running: rows.filter((x) => x.state === 'running').length,
        rolloutState: r?.state ?? '?',
      };
    };
    const midRollout = () => state.rolloutState === 'running' && state.done < state.total && !producerDone;
    const candidates = (filter: (t: FleetTenantInfo) => boolean, states: string[]) =>
      state.rows.filter((x) => states.includes(x.state) && !busy.has(x.tenant_id) && filter(byId.get(x.tenant_id)!)).map((x) => byId.get(x.tenant_id)!);

    while (!producerDone && !stop.signal.aborted) {
      await readState().catch(() => {});
      const p = state.total ? state.done / state.total : 0;

      // keep W workers; kill one every killEveryMs
      const live = workers.filter(alive);
      for (let i = live.length; i < o.workers; i++) startWorker();
      if (o.killEveryMs > 0 && figures.kills < o.maxKills && midRollout() && performance.now() - lastKill >= o.killEveryMs) {
        const ready = live.filter((w) => w.ready);
        if (ready.length) {
          lastKill = performance.now();
          const victim = pick(ready);
          const wid = victim.id();
          // pg_stat_activity through the admin connection: the control database may be refusing connections
          const active = wid
            ? Number(
                (
                  await admin((c) =>
                    c.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'`, [`flotilla-worker ${wid}`]),
                  )
                ).rows[0].n,
              )
            : 0;
          victim.killed = true;
          await victim.proc.stop('SIGKILL');
          figures.kills++;
          if (active > 0) figures.killsMidMigration++;
          log(`kill: SIGKILL worker #${victim.n} (${active} tenant transaction${active === 1 ? '' : 's'} open) at ${progress()}; starting a replacement`);
          startWorker();
        }
      }

      // refused connections: a database tenant a worker is on right now (re-checked: the snapshot may be stale)
      if (refusalsFired < o.refusalWindowsMs.length && midRollout() && state.running > 0 && p >= refusalsFired * 0.15) {
        const running = candidates((t) => !t.schema, ['running']);
        const target = running.length ? pick(running) : undefined;
        const still =
          target &&
          !controlDown &&
          (
            await control.query(`SELECT state FROM flotilla.rollout_tenants WHERE rollout_id = $1 AND tenant_id = $2`, [id, target.id]).catch(() => ({ rows: [] }))
          ).rows[0]?.state === 'running';
        if (target && still) {
          const ms = o.refusalWindowsMs[refusalsFired]!;
          refusalsFired++;
          busy.add(target.id);
          const entry = { tenant: target.id, ms, atProgress: progress(), failedAttempts: 0 };
          figures.refusals.push(entry);
          refused.add(target.database);
          const killed = await admin(async (c) => {
            await c.query(`ALTER DATABASE ${qi(target.database)} ALLOW_CONNECTIONS false`);
            const r = await c.query(`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [
              target.database,
            ]);
            return r.rows[0].n as number;
          });
          log(`refuse: ${target.id} refuses connections for ${ms / 1000} s (${killed} backends terminated) at ${progress()}`);
          task(`refusal ${target.id}`, async () => {
            await sleep(ms, stop.signal);
            await admin((c) => c.query(`ALTER DATABASE ${qi(target.database)} ALLOW_CONNECTIONS true`));
            refused.delete(target.database);
            log(`refuse: ${target.id} accepts connections again`);
          });
        }
      }

      // the control database refuses connections (and its backends are terminated) for a while: the workers and
      // `rollout --wait` must wait for it, and the rollout finish correctly afterwards
      if (outagesFired < o.controlOutages && !controlDown && midRollout() && state.running > 0 && p >= 0.2 + 0.25 * outagesFired) {
        outagesFired++;
        controlDown = true;
        refused.add(controlDb);
        const entry = { atProgress: progress(), ms: o.controlOutageMs, backendsTerminated: 0 };
        figures.controlOutages.push(entry);
        entry.backendsTerminated = await admin(async (c) => {
          await c.query(`ALTER DATABASE ${qi(controlDb)} ALLOW_CONNECTIONS false`);
          const r = await c.query(`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [
            controlDb,
          ]);
          return r.rows[0].n as number;
        });
        log(`control: the control database refuses connections for ${o.controlOutageMs / 1000} s (${entry.backendsTerminated} backends terminated) at ${entry.atProgress}`);
        task('control outage', async () => {
          await sleep(o.controlOutageMs, stop.signal);
          await admin((c) => c.query(`ALTER DATABASE ${qi(controlDb)} ALLOW_CONNECTIONS true`));
          refused.delete(controlDb);
          controlDown = false;
          log('control: the control database accepts connections again');
        });
      }

      // a second runner: `flotilla pending` on a few tenants the workers are about to reach
      if (!cliFired && o.cliRunners > 0 && midRollout() && p >= 0.1) {
        cliFired = true;
        const pending = [...candidates(() => true, ['pending']), ...candidates(() => true, ['running'])];
        const targets = pending.slice(0, o.cliRunners);
        const schemaOne = pending.find((t) => t.schema);
        if (schemaOne && !targets.some((t) => t.schema) && targets.length) targets[targets.length - 1] = schemaOne;
        for (const t of targets) {
          busy.add(t.id);
          cliTenants.add(t.id);
        }
        log(`cli: \`flotilla pending\` on ${targets.map((t) => t.id).join(', ')} at ${progress()}`);
        for (const t of targets) {
          task(`cli pending ${t.id}`, async () => {
            const r = await runCliTracked(['pending', '--dir', dir, '--database-url', t.url, ...(t.schema ? ['--schema', t.schema] : []), '--json'], env);
            let applied = -1;
            try {
              applied = (JSON.parse(r.stdout).applied as unknown[]).length;
            } catch {}
            figures.cliRuns.push({ tenant: t.id, code: r.code, applied, seconds: Math.round(r.seconds * 10) / 10 });
            if (r.code !== 0) violations.push(`cli: flotilla pending on ${t.id} exited ${r.code}: ${(r.stdout + r.stderr).slice(-600)}`);
            log(`cli: ${t.id} exit ${r.code}, applied ${applied} in ${r.seconds.toFixed(1)} s`);
          });
        }
      }

      // Redis restart (SAVE, SIGKILL, start on the same port)
      if (restartsFired < o.redisRestarts && midRollout() && p >= 0.3 + 0.1 * restartsFired) {
        restartsFired++;
        const at = progress();
        const downMs = await redis.restart();
        figures.redisRestarts.push({ atProgress: at, downMs });
        log(`redis: restarted (SIGKILL after SAVE, down ${downMs} ms) at ${at}`);
      }

      // FLUSHALL, then `rollout resume` twice (the second must find nothing to do)
      if (flushesFired < o.flushes && midRollout() && p >= 0.5 + 0.1 * flushesFired) {
        flushesFired++;
        const at = progress();
        await redis.flushAll();
        const flush = { atProgress: at, resumes: [] as { code: number; recreated: number | null; dispatched: number | null }[] };
        figures.flushes.push(flush);
        log(`redis: FLUSHALL at ${at}; flotilla rollout resume ${id}`);
        task('resume', async () => {
          for (let round = 0; round < (o.resume ? 2 : 0); round++) {
            let r = await runCliTracked(['rollout', 'resume', id, '--json'], env);
            for (let i = 0; i < 4 && r.code !== 0 && !stop.signal.aborted; i++) {
              await sleep(1000, stop.signal);
              r = await runCliTracked(['rollout', 'resume', id, '--json'], env);
            }
            let parsed: { recreated?: number; dispatched?: number } = {};
            try {
              parsed = JSON.parse(r.stdout);
            } catch {}
            flush.resumes.push({ code: r.code, recreated: parsed.recreated ?? null, dispatched: parsed.dispatched ?? null });
            if (r.code !== 0) violations.push(`resume: flotilla rollout resume exited ${r.code}: ${r.stderr.slice(-600)}`);
            log(`resume #${round + 1}: exit ${r.code}, ${parsed.recreated ?? '?'} jobs re-created, ${parsed.dispatched ?? '?'} dispatched`);
          }
        });
      }
      await sleep(250, stop.signal);
    }
    if (stop.signal.aborted) return;
    const first = await producer;
    figures.seconds.rollout = (performance.now() - rolloutStarted) / 1000;
    // `rollout --wait` rode the outages out, saying so once each
    figures.waitOutageNotices = (first.stderr.match(/control database unreachable/g) ?? []).length;
    if (figures.controlOutages.length && figures.waitOutageNotices === 0)
      violations.push(`control: rollout --wait never said the control database was unreachable: ${first.stderr.slice(-600)}`);
    if (figures.waitOutageNotices > figures.controlOutages.length)
      violations.push(`control: rollout --wait said ${figures.waitOutageNotices} times that the control database was unreachable (${figures.controlOutages.length} outages)`);
    let view: { state: string; counts: Record<string, number> } | undefined;
    try {
      view = JSON.parse(first.stdout);
    } catch {
      throw new Error(`flotilla rollout --wait: exit ${first.code}, no JSON: ${first.stdout.slice(-500)} ${first.stderr.slice(-1000)}`);
    }
    figures.firstPass = {
      state: view!.state,
      succeeded: view!.counts.succeeded ?? 0,
      failed: view!.counts.failed ?? 0,
      cancelled: view!.counts.cancelled ?? 0,
      seconds: Math.round(figures.seconds.rollout * 10) / 10,
    };
    log(
      `rollout --wait returned (exit ${first.code}): ${view!.state}, ${figures.firstPass.succeeded} succeeded, ${figures.firstPass.failed} failed, ${figures.firstPass.cancelled} cancelled`,
    );

    // chaos that did not happen while the rollout ran is a run that proves nothing
    const missed = [
      refusalsFired < o.refusalWindowsMs.length ? `${o.refusalWindowsMs.length - refusalsFired} refusal windows` : '',
      outagesFired < o.controlOutages ? `${o.controlOutages - outagesFired} control-database outages` : '',
      restartsFired < o.redisRestarts ? 'the Redis restart' : '',
      flushesFired < o.flushes ? 'the FLUSHALL' : '',
      o.cliRunners > 0 && !cliFired ? 'the concurrent CLI runs' : '',
      o.killEveryMs > 0 && o.maxKills > 0 && figures.kills === 0 ? 'the worker kills' : '',
    ].filter(Boolean);
    if (missed.length) violations.push(`chaos: ${missed.join(', ')} did not happen during the rollout (it finished first)`);

    // wait for the windows to close, the CLI runs and resumes to finish
    await Promise.all(tasks);
    if (stop.signal.aborted) return;

    // ---- tenants that exhausted their attempts: rollout retry
    const retryStarted = performance.now();
    let counts = view!.counts;
    const needing = new Set<string>();
    for (let round = 0; round < 3 && (counts.succeeded ?? 0) < o.tenants && !stop.signal.aborted; round++) {
      await readState();
      for (const x of state.rows) if (x.state === 'failed' || x.state === 'cancelled') needing.add(x.tenant_id);
      figures.retryRounds++;
      log(
        `retry: flotilla rollout retry ${id} --wait (${state.rows
          .filter((x) => x.state === 'failed' || x.state === 'cancelled')
          .map((x) => x.tenant_id)
          .join(', ')})`,
      );
      const r = await runCliTracked(['rollout', 'retry', id, '--wait', '--json'], env, Math.max(1000, o.timeoutMs - (performance.now() - t0)));
      try {
        counts = JSON.parse(r.stdout).counts;
      } catch {
        throw new Error(`flotilla rollout retry: exit ${r.code}, no JSON: ${r.stderr.slice(-1000)}`);
      }
      log(`retry: exit ${r.code}: ${counts.succeeded} succeeded, ${counts.failed} failed`);
    }
    figures.tenantsNeedingRetry = needing.size;
    figures.seconds.retry = (performance.now() - retryStarted) / 1000;

    // ---- stop the workers (drain), count what Redis still holds
    await Promise.all(
      workers.filter(alive).map(async (w) => {
        w.stopping = true;
        const force = setTimeout(() => w.proc.child.kill('SIGKILL'), 20_000);
        await w.proc.stop('SIGTERM');
        clearTimeout(force);
      }),
    );
    const q = new Queue('migrate', { connection: { url: redis.url, maxRetriesPerRequest: 1 }, prefix: '{chaos}' });
    q.on('error', () => {});
    figures.redisLeft = (await q.getJobCounts('active', 'waiting', 'delayed', 'prioritized', 'failed', 'completed').catch(() => ({}))) as Record<
      string,
      number
    >;
    await q.close().catch(() => {});

    // ---- the verdict, from the databases
    const verifyStarted = performance.now();
    const workerIds = new Set(workers.map((w) => w.id()).filter((x): x is string => !!x));
    const shared = fleet.tenants.filter((t) => t.schema).map((t) => ({ url: t.url, database: t.database }));
    const result = await verifyFleet({
      tenants: order.map((t) => ({ id: t.id, url: t.url, database: t.database, ...(t.schema ? { schema: t.schema } : {}) })),
      set,
      counted: Object.keys(CHAOS_MIGRATIONS),
      referenceUrl,
      sharedDatabases: shared.length ? [shared[0]!] : [],
      controlUrl: fleet.controlUrl,
      rolloutId: id,
      workerIds,
      cliAppliedBy: cliIdentity(),
      cliTenants,
    });
    violations.push(...result.violations);
    figures.verify = result.figures;
    // evidence that the chaos bit: failed attempts of refused tenants, lock timeouts of the lock-hold tenant
    const errs = (await control.query(`SELECT tenant_id, error FROM flotilla.attempts WHERE rollout_id = $1 AND error IS NOT NULL`, [id])).rows;
    for (const r of figures.refusals) r.failedAttempts = errs.filter((e) => e.tenant_id === r.tenant).length;
    for (const h of figures.lockHolds) h.lockTimeouts = errs.filter((e) => e.tenant_id === h.tenant && e.error?.pg?.code === '55P03').length;
    figures.seconds.verify = (performance.now() - verifyStarted) / 1000;
  };

  const cleanup = async () => {
    stop.abort();
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(
      workers.map(async (w) => {
        w.stopping = true;
        await w.proc.stop('SIGKILL');
      }),
    );
    for (const c of lockClients) await c.end().catch(() => {});
    await control?.end().catch(() => {});
    for (const db of refused) await admin((c) => c.query(`ALTER DATABASE ${qi(db)} ALLOW_CONNECTIONS true`)).catch(() => {});
    await redis?.stop().catch(() => {});
    if (!o.keep) {
      if (referenceCreated) await admin((c) => c.query(`DROP DATABASE IF EXISTS ${qi(referenceDb)} WITH (FORCE)`)).catch(() => {});
      await fleet?.drop().catch((e) => violations.push(`cleanup: ${(e as Error).message}`));
      rmSync(dir, { recursive: true, force: true });
    } else {
      for (const w of workers) writeFileSync(join(dir, `worker-${w.n}.log`), w.proc.output());
      log(`--keep: databases ${o.prefix}_* and ${dir} (tenants file, migrations, worker logs) left in place`);
    }
  };

  const aborted = new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true }));
  const running = body().catch((e) => {
    if (!stop.signal.aborted) violations.push(`run failed: ${(e as Error).stack ?? e}`);
  });
  await Promise.race([running, aborted]);
  clearTimeout(timer);
  o.signal?.removeEventListener('abort', onAbort);
  await cleanup();
  // let the body notice the cleanup (its children are gone) before returning
  await Promise.race([running, sleep(5000)]);
  figures.seconds.total = (performance.now() - t0) / 1000;
  const { log: _log, signal: _signal, adminUrl: _admin, ...shown } = o;
  return { ok: violations.length === 0, violations, figures, options: shown };
}

const s1 = (x: number) => `${x.toFixed(1)} s`;

/** The figures as printed at the end of a run. */
export function formatChaosReport(r: ChaosReport): string {
  const f = r.figures;
  const v = f.verify;
  const lines = [
    `Chaos run: ${f.tenants} tenants (${f.databaseTenants} databases, ${f.schemaTenants} schemas on a shared database), ${f.migrations} migrations, ${f.workers} workers x ${f.concurrency}, seed ${r.options.seed}`,
    `  worker kills       ${f.kills} SIGKILL (${f.killsMidMigration} with a tenant transaction open); ${f.workerProcessesStarted} worker processes started${f.workersFailedToStart ? `, ${f.workersFailedToStart} refused to start (Redis down)` : ''}${f.externalStops ? `, ${f.externalStops} stopped by a SIGTERM from outside the run` : ''}`,
    `  redis restarts     ${f.redisRestarts.length}${f.redisRestarts.map((x) => ` (at ${x.atProgress}, down ${x.downMs} ms)`).join('')}`,
    `  redis flushes      ${f.flushes.length}${f.flushes.map((x) => ` (at ${x.atProgress}); resumes: ${x.resumes.map((y) => `exit ${y.code}, ${y.recreated ?? '?'} jobs re-created`).join('; ')}`).join('')}`,
    `  control outages    ${f.controlOutages.length}${f.controlOutages.map((x) => ` (at ${x.atProgress}, ${x.ms / 1000} s, ${x.backendsTerminated} backends terminated)`).join('')}; rollout --wait said so ${f.waitOutageNotices} time${f.waitOutageNotices === 1 ? '' : 's'}`,
    `  refused conns      ${f.refusals.length} windows: ${f.refusals.map((x) => `${x.tenant} ${x.ms / 1000} s (${x.failedAttempts} failed attempts)`).join(', ') || '-'}`,
    `  lock holds         ${f.lockHolds.length}: ${f.lockHolds.map((x) => `${x.tenant} ${x.table} ${x.ms / 1000} s (${x.lockTimeouts} lock timeouts)`).join(', ') || '-'}`,
    `  concurrent CLI     ${f.cliRuns.length} \`flotilla pending\` runs: ${f.cliRuns.map((x) => `${x.tenant} exit ${x.code} applied ${x.applied}`).join(', ') || '-'}`,
    `  rollout            ${f.rolloutId ?? '-'}: first pass ${f.firstPass ? `${f.firstPass.state} in ${s1(f.firstPass.seconds)} (${f.firstPass.succeeded} succeeded, ${f.firstPass.failed} failed, ${f.firstPass.cancelled} cancelled)` : '-'}`,
    `  rollout retry      ${f.tenantsNeedingRetry} tenants needed \`rollout retry\` (${f.retryRounds} rounds, ${s1(f.seconds.retry)}); final state ${v?.finalRolloutState ?? '-'}`,
    v
      ? `  attempts           ${v.claims} claims for ${f.tenants} tenants; ${v.tenantsClaimedMoreThanOnce} tenants claimed more than once (max ${v.maxClaims}); rows ${Object.entries(
          v.attemptRows,
        )
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}`
      : '  attempts           -',
    v
      ? `  attempt errors     ${
          Object.entries(v.attemptErrors)
            .map(([k, n]) => `${k} ${n}`)
            .join(', ') || 'none'
        }`
      : '',
    v
      ? `  databases          ${v.tenantsChecked} tenants checked, ${v.trackingRows} tracking rows (${v.appliedByWorkers} by workers, ${v.appliedByCli} by the CLI; ${v.unrecordedApplies} committed by a worker killed before it recorded them)`
      : '',
    `  redis at the end   ${
      Object.entries(f.redisLeft)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || '-'
    }`,
    `  duration           total ${s1(f.seconds.total)} (setup ${s1(f.seconds.setup)}, rollout ${s1(f.seconds.rollout)}, retry ${s1(f.seconds.retry)}, verification ${s1(f.seconds.verify)})${f.timedOut ? ' TIMED OUT' : ''}`,
    `  violations         ${r.violations.length ? r.violations.length : 'none'}`,
    ...r.violations.map((x) => `    - ${x}`),
  ];
  return lines.filter(Boolean).join('\n');
}
