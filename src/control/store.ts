/**
 * The control database: tenant registry, frozen migration sets, rollouts and
 * per-tenant results and attempts. It is also where a rollout's progress is
 * decided: `dispatch` takes the rollout's dispatch lock (without waiting) and
 * applies the rules of core/dispatch.ts to the per-wave counters
 * (control/dispatch.ts), so any process may call it
 * (producer, any worker, `rollout resume`) and progress never depends on one
 * process staying alive. Callers do not enqueue what it returns themselves:
 * producer/dispatcher.ts does.
 *
 * Its other rooms: the pool that rides out outages (pool.ts), the schema and
 * its migration (schema.ts, migrate.ts), schedules (schedules.ts).
 */
import pg from 'pg';
import { migrationSetFromJSON, migrationToJSON, type MigrationSet, type ParsedMigrationJSON } from '../core/migration-set.js';
import { redactSecrets } from '../core/redact.js';
import type { Tenant } from '../core/tenants.js';
import { serverKey } from '../core/tenants.js';
import type { Target } from '../core/frozen.js';
import type { RolloutOptions, WaveAssignment } from '../core/rollout-plan.js';
import { windowStillFull, type RolloutState, type TenantState } from '../core/dispatch.js';
import type { DispatchedJob, JobKind } from '../core/jobs.js';
import { pgConfig, type SslMode } from '../adapters/pg/connection.js';
import { ConnectionError, QueuePrefixMismatchError } from '../core/errors.js';
import { DEFAULT_PREFIX } from '../queue.js';
import { T } from './schema.js';
import { migrateControlSchema } from './migrate.js';
import { dispatchIn, DISPATCH_LOCK_SQL, releasedTotal } from './dispatch.js';
import { deleteSchedule, getSchedule, listSchedules, saveSchedule, type Schedule, type ScheduleSummary } from './schedules.js';
import { ControlRetrier, retryingPool, type ControlRetry } from './pool.js';

export type { RolloutState, TenantState } from '../core/dispatch.js';

export interface RolloutRow {
  id: string;
  setChecksum: string;
  state: RolloutState;
  haltReason: string | null;
  options: RolloutOptions;
  currentWave: number;
  waveCount: number;
  createdBy: string | null;
  createdAt: Date;
  finishedAt: Date | null;
  /** the FLOTILLA_QUEUE_PREFIX it was created with: only that fleet's workers and commands act on it */
  queuePrefix: string;
}

export interface RolloutTenantRow {
  tenantId: string;
  wave: number;
  server: string;
  state: TenantState;
  generation: number;
  attempts: number;
  applied: string[];
  error: Record<string, unknown> | null;
  checks: Record<string, unknown> | null;
  worker: string | null;
  notBefore: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  durationMs: number | null;
  /** what the tenant's attempts of this generation waited for locks (engine/lock-wait.ts); null: not measured */
  lockWaitMs: number | null;
  lockTimeouts: number | null;
}

/** The counters of a rollout, per wave (control migration 006). */
export interface WaveSummary {
  wave: number;
  counts: Record<TenantState, number>;
  /** finished tenants whose lock waits passed --max-lock-wait */
  lockSlow: number;
}

/** Lock waits of a rollout's tenants per wave (tenants with a measurement only). */
export interface LockWaitStats {
  /** null: the whole rollout */
  wave: number | null;
  measured: number;
  p95Ms: number;
  maxMs: number;
  timeouts: number;
}

/** Rollouts `rollouts prune` removed (or would remove, with --dry-run). */
export interface PruneResult {
  rollouts: { id: string; state: RolloutState; finishedAt: Date; tenants: number }[];
  tenantRows: number;
  attempts: number;
  migrationSets: number;
}

/** How many times a dispatcher looks again when tenants finished while it held the lock. */
const DISPATCH_ROUNDS = 8;

export interface ClaimedJob {
  attempt: number;
  setChecksum: string;
  options: RolloutOptions;
  tenant: Tenant;
}

/** What `retry --refresh` must approve before the rollout's set is replaced. */
export interface RefreshRequest {
  set: MigrationSet;
  /** throws to refuse (the transaction rolls back) */
  check(current: { state: RolloutState; setChecksum: string; tenants: { tenantId: string; state: TenantState; applied: string[] }[] }): void;
}

export class ControlStore {
  readonly pool: pg.Pool;
  private readonly sets = new Map<string, Promise<MigrationSet>>();
  private readonly sslmode: SslMode;

  /** transient failures (an outage of the control database) are retried with backoff: see pool.ts */
  private readonly retrier: ControlRetrier;

  /**
   * The fleet this process belongs to (FLOTILLA_QUEUE_PREFIX). Fleets may share one control
   * database: rollouts and schedules record their prefix, and this store only lists, claims,
   * dispatches, retries, cancels and restores those of its own (control migration 005).
   */
  readonly queuePrefix: string;

  constructor(
    readonly url: string,
    options: { max?: number; retry?: ControlRetry; queuePrefix?: string } = {},
  ) {
    this.queuePrefix = options.queuePrefix ?? DEFAULT_PREFIX;
    const { config, sslmode } = pgConfig(url);
    this.sslmode = sslmode;
    this.retrier = new ControlRetrier(url, options.retry);
    this.pool = retryingPool(new pg.Pool({ ...config, max: options.max ?? 4, application_name: 'flotilla-control' }), this.retrier);
    this.pool.on('error', () => {});
    // pg-pool listens for errors only on idle clients: a checked-out client whose backend is terminated
    // (a control-database outage) between two queries would emit 'error' with no listener and crash the
    // process. Its pending query still fails and is retried; the event itself needs nowhere to go.
    this.pool.on('connect', (client) => client.on('error', () => {}));
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
  }

  /** Create or upgrade the control schema (control/migrate.ts). Safe to call from every process. */
  migrate(): Promise<void> {
    return migrateControlSchema(this.pool, this.url, this.sslmode);
  }

  /** One transaction, run again from the start if the connection is lost before COMMIT (never after: unknown outcome). */
  private async tx<R>(fn: (c: pg.PoolClient) => Promise<R>): Promise<R> {
    let committing = false;
    return this.retrier.run(
      async () => {
        committing = false;
        const c = await this.pool.connect();
        let broken: unknown;
        try {
          await c.query('BEGIN');
          const r = await fn(c);
          committing = true;
          await c.query('COMMIT');
          return r;
        } catch (e) {
          broken = e;
          await c.query('ROLLBACK').catch(() => {});
          throw e;
        } finally {
          c.release(broken instanceof Error && !('severity' in broken) ? broken : undefined);
        }
      },
      // connect already retried (and gave up with a ConnectionError); a lost COMMIT may have committed
      (e) => !(e instanceof ConnectionError) && !committing,
    );
  }

  async upsertTenants(tenants: Tenant[]): Promise<void> {
    if (!tenants.length) return;
    await this.pool.query(
      `INSERT INTO ${T('tenants')} (id, database_url, schema, tags, maintenance_window, updated_at)
       SELECT x.id, x.url, x.schema, ARRAY(SELECT jsonb_array_elements_text(x.tags)), x.win, now()
         FROM jsonb_to_recordset($1::jsonb) AS x(id text, url text, schema text, tags jsonb, win jsonb)
       ON CONFLICT (id) DO UPDATE SET database_url = EXCLUDED.database_url, schema = EXCLUDED.schema,
         tags = EXCLUDED.tags, maintenance_window = EXCLUDED.maintenance_window, updated_at = now()`,
      [JSON.stringify(tenants.map((t) => ({ id: t.id, url: t.databaseUrl, schema: t.schema ?? null, tags: t.tags, win: t.window ?? null })))],
    );
  }

  async saveMigrationSet(set: MigrationSet, c: pg.Pool | pg.PoolClient = this.pool): Promise<void> {
    // the parsed form too: workers rebuild the set without loading the SQL parser
    const files = set.migrations.map(migrationToJSON);
    await c.query(`INSERT INTO ${T('migration_sets')} (checksum, files) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [set.checksum, JSON.stringify(files)]);
  }

  /** The frozen set, rebuilt from its parsed form once per process (never with the SQL parser). */
  loadMigrationSet(checksum: string): Promise<MigrationSet> {
    let p = this.sets.get(checksum);
    if (!p) {
      p = (async () => {
        const r = await this.pool.query(`SELECT files FROM ${T('migration_sets')} WHERE checksum = $1`, [checksum]);
        if (!r.rows[0]) throw new Error(`migration set ${checksum} not found in the control database`);
        return migrationSetFromJSON(r.rows[0].files as Partial<ParsedMigrationJSON>[], checksum);
      })();
      p.catch(() => this.sets.delete(checksum));
      this.sets.set(checksum, p);
    }
    return p;
  }

  async createRollout(r: {
    id: string;
    setChecksum: string;
    options: RolloutOptions;
    waveCount: number;
    createdBy: string;
    assignments: WaveAssignment[];
  }): Promise<void> {
    await this.tx(async (c) => {
      await c.query(
        `INSERT INTO ${T('rollouts')} (id, set_checksum, state, options, wave_count, created_by, queue_prefix) VALUES ($1, $2, 'running', $3, $4, $5, $6)`,
        [r.id, r.setChecksum, JSON.stringify(r.options), r.waveCount, r.createdBy, this.queuePrefix],
      );
      await c.query(
        // each tenant's target is frozen here (URL template unresolved, schema, window): workers read it, never the registry
        `INSERT INTO ${T('rollout_tenants')} (rollout_id, tenant_id, position, wave, server, database_url, schema, maintenance_window)
         SELECT $1, x.id, x.pos, x.wave, x.server, x.url, x.schema, x.win
           FROM jsonb_to_recordset($2::jsonb) AS x(id text, pos int, wave int, server text, url text, schema text, win jsonb)`,
        [
          r.id,
          JSON.stringify(
            r.assignments.map((a, pos) => ({
              id: a.tenant.id,
              pos,
              wave: a.wave,
              server: serverKey(a.tenant.databaseUrl),
              url: a.tenant.databaseUrl,
              schema: a.tenant.schema ?? null,
              win: a.tenant.window ?? null,
            })),
          ),
        ],
      );
    });
    // A big rollout's rows are new to the planner until autovacuum looks (which may be never, next to a long
    // history): with no statistics for this rollout, a claim by (rollout, tenant) was seen scanning all its
    // rows through another index. Fresh statistics now; not being the tables' owner only skips this.
    if (r.assignments.length >= 1000) await this.pool.query(`ANALYZE ${T('rollout_tenants')}, ${T('rollout_counts')}`).catch(() => {});
  }

  async getRollout(id: string): Promise<RolloutRow | undefined> {
    const r = await this.pool.query(`SELECT * FROM ${T('rollouts')} WHERE id = $1`, [id]);
    return r.rows[0] ? toRollout(r.rows[0]) : undefined;
  }

  /** The newest rollouts (index rollouts_created) with their counts (the counters: no tenant is read). */
  async listRollouts(limit = 20): Promise<(RolloutRow & { counts: Record<TenantState, number> })[]> {
    const r = await this.pool.query(
      `SELECT r.*, n.* FROM (SELECT * FROM ${T('rollouts')} ORDER BY created_at DESC, id DESC LIMIT $1) r
         CROSS JOIN LATERAL (SELECT ${COUNTS_SQL('c')} FROM ${T('rollout_counts')} c WHERE c.rollout_id = r.id) n
        ORDER BY r.created_at DESC, r.id DESC`,
      [limit],
    );
    return r.rows.map((row) => ({ ...toRollout(row), counts: toCounts(row) }));
  }

  /**
   * A rollout's tenants in rollout order: all of them, or a page (`limit`, `offset`), or only
   * those in `states` (index rollout_tenants_position, so a page of a 50,000-tenant rollout
   * reads only that page).
   */
  async rolloutTenants(id: string, page: { limit?: number; offset?: number; states?: TenantState[] } = {}): Promise<RolloutTenantRow[]> {
    const r = await this.pool.query(
      `SELECT * FROM ${T('rollout_tenants')} WHERE rollout_id = $1 AND ($2::text[] IS NULL OR state = ANY($2))
        ORDER BY position LIMIT $3 OFFSET $4`,
      [id, page.states ?? null, page.limit ?? null, page.offset ?? 0],
    );
    return r.rows.map(toTenantRow);
  }

  /** Tenants per state, from the counters (O(waves), whatever the rollout's size). */
  async counts(id: string): Promise<Record<TenantState, number>> {
    const r = await this.pool.query(`SELECT ${COUNTS_SQL('c')} FROM ${T('rollout_counts')} c WHERE c.rollout_id = $1`, [id]);
    return toCounts(r.rows[0] ?? {});
  }

  /** Tenants per state for each wave, from the counters. */
  async waveSummaries(id: string): Promise<WaveSummary[]> {
    const r = await this.pool.query(
      `SELECT c.wave, ${COUNTS_SQL('c')}, sum(c.lock_slow)::int AS lock_slow FROM ${T('rollout_counts')} c WHERE c.rollout_id = $1 GROUP BY c.wave ORDER BY c.wave`,
      [id],
    );
    return r.rows.map((x) => ({ wave: x.wave, counts: toCounts(x), lockSlow: x.lock_slow }));
  }

  /**
   * Lock waits per wave and for the whole rollout (wave null, first): 95th percentile (nearest
   * rank, as the --max-lock-wait gate), maximum, lock timeouts, over the tenants with a measurement.
   */
  async lockWaits(id: string): Promise<LockWaitStats[]> {
    const r = await this.pool.query(
      `SELECT wave, count(*)::int AS measured, percentile_disc(0.95) WITHIN GROUP (ORDER BY lock_wait_ms) AS p95,
              max(lock_wait_ms) AS max, coalesce(sum(lock_timeouts), 0)::int AS timeouts
         FROM ${T('rollout_tenants')} WHERE rollout_id = $1 AND lock_wait_ms IS NOT NULL
        GROUP BY GROUPING SETS ((wave), ()) ORDER BY wave NULLS FIRST`,
      [id],
    );
    // the total row comes even when nothing was measured
    return r.rows.filter((x) => x.measured > 0).map((x) => ({ wave: x.wave, measured: x.measured, p95Ms: x.p95, maxMs: x.max, timeouts: x.timeouts }));
  }

  /**
   * Remove the history of this fleet's rollouts that finished before `before`: the rollout,
   * its tenants, its attempts and counters, and the frozen sets nothing refers to any more.
   * Only finished rollouts (succeeded, failed, halted, cancelled, with an end time: nothing
   * runs) are touched, never a running one. `dryRun`: only say what would go.
   */
  async prune(before: Date, dryRun: boolean): Promise<PruneResult> {
    return this.tx(async (c) => {
      const found = await c.query(
        `SELECT r.id, r.state, r.finished_at, (SELECT coalesce(sum(x.waiting + x.queued + x.scheduled + x.running + x.succeeded + x.failed + x.cancelled), 0)::int
                                                   FROM ${T('rollout_counts')} x WHERE x.rollout_id = r.id) AS tenants
           FROM ${T('rollouts')} r
          WHERE r.queue_prefix = $1 AND r.state IN ('succeeded', 'failed', 'halted', 'cancelled') AND r.finished_at IS NOT NULL AND r.finished_at < $2
          ORDER BY r.finished_at, r.id FOR UPDATE OF r`,
        [this.queuePrefix, before],
      );
      const ids = found.rows.map((x) => x.id as string);
      const result: PruneResult = {
        rollouts: found.rows.map((x) => ({ id: x.id, state: x.state, finishedAt: x.finished_at, tenants: x.tenants })),
        tenantRows: found.rows.reduce((n, x) => n + x.tenants, 0),
        attempts: 0,
        migrationSets: 0,
      };
      if (!ids.length) return result;
      const orphanSets = `SELECT DISTINCT r.set_checksum FROM ${T('rollouts')} r WHERE r.id = ANY($1)
          AND NOT EXISTS (SELECT 1 FROM ${T('rollouts')} o WHERE o.set_checksum = r.set_checksum AND NOT (o.id = ANY($1)))
          AND NOT EXISTS (SELECT 1 FROM ${T('schedules')} s WHERE s.set_checksum = r.set_checksum)`;
      if (dryRun) {
        result.attempts = (await c.query(`SELECT count(*)::int AS n FROM ${T('attempts')} WHERE rollout_id = ANY($1)`, [ids])).rows[0].n;
        result.migrationSets = (await c.query(`SELECT count(*)::int AS n FROM (${orphanSets}) s`, [ids])).rows[0].n;
        return result;
      }
      const sets = (await c.query(orphanSets, [ids])).rows.map((x) => x.set_checksum as string);
      result.attempts = (await c.query(`DELETE FROM ${T('attempts')} WHERE rollout_id = ANY($1)`, [ids])).rowCount ?? 0;
      // rollout_tenants and rollout_counts go with their rollout (ON DELETE CASCADE)
      await c.query(`DELETE FROM ${T('rollouts')} WHERE id = ANY($1)`, [ids]);
      if (sets.length) result.migrationSets = (await c.query(`DELETE FROM ${T('migration_sets')} WHERE checksum = ANY($1)`, [sets])).rowCount ?? 0;
      return result;
    });
  }

  /** The running rollouts of this store's fleet (queue prefix): what its workers reconcile. */
  async runningRolloutIds(): Promise<string[]> {
    const r = await this.pool.query(
      `SELECT id FROM ${T('rollouts')} r WHERE r.queue_prefix = $1 AND (state = 'running'
          OR EXISTS (SELECT 1 FROM ${T('rollout_tenants')} t WHERE t.rollout_id = r.id AND t.state = 'running'))`,
      [this.queuePrefix],
    );
    return r.rows.map((x) => x.id);
  }

  /**
   * Decide what runs next, under the rollout's dispatch lock: halt on failures
   * or lock waits, move to the next wave when the current one is done, finish
   * the rollout, and hand out tenants up to --concurrency / --per-server (the
   * rules: core/dispatch.ts). When another process holds the lock, returns at
   * once: that one looks again after its commit (this loop), so what this
   * caller recorded before is never left undecided. Idempotent: calling it
   * again hands out nothing new. Enqueue what it returns through
   * producer/dispatcher.ts.
   */
  async dispatch(rolloutId: string, now: Date): Promise<DispatchedJob[]> {
    const jobs: DispatchedJob[] = [];
    for (let round = 0; round < DISPATCH_ROUNDS; round++) {
      const r = await this.tx((c) => dispatchIn(c, rolloutId, now, this.queuePrefix));
      jobs.push(...r.jobs);
      // tenants that finished while we held the lock (and found it busy) are ours to look at
      if (r.released === undefined || (await releasedTotal(this.pool, rolloutId)) === r.released) break;
    }
    return jobs;
  }

  /** Tenants already handed out but not finished: what `resume` re-enqueues. */
  async inFlight(rolloutId: string): Promise<(DispatchedJob & { state: TenantState })[]> {
    const r = await this.pool.query(
      `SELECT tenant_id, generation, state, not_before FROM ${T('rollout_tenants')}
        WHERE rollout_id = $1 AND (state IN ('running', 'scheduled') OR (state = 'pending' AND dispatched_at IS NOT NULL))`,
      [rolloutId],
    );
    const now = Date.now();
    return r.rows.map((x) => ({
      rolloutId,
      tenantId: x.tenant_id,
      generation: x.generation,
      state: x.state,
      delayMs: x.not_before ? Math.max(0, x.not_before.getTime() - now) : 0,
    }));
  }

  /**
   * A worker starts a job: returns what it needs, or undefined when the job is stale (cancelled, done,
   * old generation) or belongs to another fleet (a rollout of another queue prefix is never run here).
   */
  async claim(rolloutId: string, tenantId: string, generation: number, worker: string): Promise<ClaimedJob | undefined> {
    const r = await this.pool.query(
      `UPDATE ${T('rollout_tenants')} rt
          SET state = 'running', attempts = rt.attempts + 1, worker = $4,
              started_at = CASE WHEN rt.state = 'running' THEN coalesce(rt.started_at, now()) ELSE now() END, not_before = NULL
         FROM ${T('rollouts')} r
        WHERE rt.rollout_id = $1 AND rt.tenant_id = $2 AND rt.generation = $3 AND rt.state IN ('pending', 'scheduled', 'running')
          AND r.id = rt.rollout_id AND r.queue_prefix = $5 AND (r.state = 'running' OR rt.state = 'running')
      RETURNING rt.attempts, r.set_checksum, r.options, rt.tenant_id AS id, rt.database_url, rt.schema, rt.maintenance_window`,
      [rolloutId, tenantId, generation, worker, this.queuePrefix],
    );
    const row = r.rows[0];
    if (!row) return undefined;
    return {
      attempt: row.attempts,
      setChecksum: row.set_checksum,
      options: row.options,
      // the target frozen with the rollout (tags are not part of it: they only select)
      tenant: { id: row.id, databaseUrl: row.database_url, schema: row.schema ?? undefined, tags: [], window: row.maintenance_window ?? undefined },
    };
  }

  /** A job waits for its maintenance window: back to `scheduled`. */
  async markScheduled(rolloutId: string, tenantId: string, generation: number, notBefore: Date): Promise<void> {
    await this.pool.query(
      `UPDATE ${T('rollout_tenants')} SET state = 'scheduled', not_before = $4 WHERE rollout_id = $1 AND tenant_id = $2 AND generation = $3 AND state IN ('pending', 'running', 'scheduled')`,
      [rolloutId, tenantId, generation, notBefore],
    );
  }

  /**
   * Record an attempt, and (for a final outcome) the tenant's state; then
   * dispatch what comes next. One transaction; replaying it changes nothing.
   * Enqueue what it returns through producer/dispatcher.ts.
   */
  async recordAttempt(
    a: {
      rolloutId: string;
      tenantId: string;
      generation: number;
      attempt: number;
      state: 'succeeded' | 'failed' | 'retrying';
      applied: string[];
      error?: Record<string, unknown> | null;
      checks?: Record<string, unknown> | null;
      worker: string;
      startedAt: Date;
      durationMs: number;
      /** what the whole rollout applied to the tenant, read from its tracking table (see reconcileApplied) */
      appliedTotal?: string[];
      /** the job's kind (core/jobs.ts): a revert rollout's attempts are `revert` */
      kind?: JobKind;
      /** how long this attempt waited for locks on the tenant's objects, and how many lock_timeouts it hit (engine/lock-wait.ts) */
      lockWaitMs?: number | null;
      lockTimeouts?: number | null;
    },
    now: Date,
  ): Promise<DispatchedJob[]> {
    const error = a.error ? JSON.parse(redactSecrets(JSON.stringify(a.error))) : null;
    const kind = a.kind ?? 'migrate';
    // one round trip, one short transaction, no lock on the rollout (control migration 006) ...
    const record = (c: pg.Pool | pg.PoolClient) =>
      c.query<{ rollout_state: string | null; options: RolloutOptions | null; in_flight: number | null; waiting: number | null }>(
        `SELECT * FROM ${T('record_attempt')}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
        [
          a.rolloutId,
          a.tenantId,
          a.generation,
          a.attempt,
          kind,
          a.state,
          a.applied,
          error,
          a.checks ?? null,
          a.worker,
          a.startedAt,
          a.durationMs,
          a.lockWaitMs == null ? null : Math.round(a.lockWaitMs),
          a.lockTimeouts ?? null,
        ],
      );
    // ... plus, when earlier attempts exist, the applied list reconciled in the same transaction
    const history = a.state !== 'retrying' && (a.appliedTotal !== undefined || a.generation > 0 || a.attempt !== 1);
    const r = history
      ? await this.tx(async (c) => {
          const r = await record(c);
          await reconcileApplied(c, a.rolloutId, a.tenantId, a.generation, a.appliedTotal ?? a.applied);
          return r;
        })
      : await record(this.pool);
    const x = r.rows[0];
    // ... and a full dispatch only when it could hand out or decide something (a separate transaction:
    // if this process dies in between, the next tenant to finish or the reconcile job dispatches)
    if (x?.rollout_state && a.state !== 'failed' && windowStillFull(x.rollout_state, x.options!, x.in_flight!, x.waiting!)) return [];
    return this.dispatch(a.rolloutId, now);
  }

  /** Fingerprints of the tenants that finished validation in this rollout (drift is a minority fingerprint). */
  async fingerprints(rolloutId: string): Promise<Map<string, number>> {
    const r = await this.pool.query(
      `SELECT checks->>'fingerprint' AS f, count(*)::int AS n FROM ${T('rollout_tenants')} WHERE rollout_id = $1 AND checks ? 'fingerprint' GROUP BY 1`,
      [rolloutId],
    );
    return new Map(r.rows.map((x) => [x.f, x.n]));
  }

  /** Stop a rollout: tenants not started are cancelled; running ones finish. */
  async cancel(rolloutId: string, reason: string): Promise<RolloutRow | undefined> {
    const row = await this.tx(async (c) => {
      await c.query(DISPATCH_LOCK_SQL, [rolloutId]);
      const r = await c.query(`SELECT state, queue_prefix FROM ${T('rollouts')} WHERE id = $1 FOR UPDATE`, [rolloutId]);
      if (!r.rows[0]) return undefined;
      this.assertOwn(rolloutId, r.rows[0].queue_prefix);
      if (r.rows[0].state === 'running') {
        await c.query(
          `UPDATE ${T('rollout_tenants')} SET state = 'cancelled', finished_at = now() WHERE rollout_id = $1 AND state IN ('pending', 'scheduled')`,
          [rolloutId],
        );
        // like a halt: finished only once its running tenants are done (dispatch sets finished_at then)
        await c.query(
          `UPDATE ${T('rollouts')} SET state = 'cancelled', halt_reason = $2,
                  finished_at = CASE WHEN EXISTS (SELECT 1 FROM ${T('rollout_tenants')} WHERE rollout_id = $1 AND state = 'running') THEN NULL ELSE now() END
            WHERE id = $1`,
          [rolloutId, reason],
        );
      }
      const after = await c.query(`SELECT * FROM ${T('rollouts')} WHERE id = $1`, [rolloutId]);
      return toRollout(after.rows[0]);
    });
    if (!row) return row;
    // tenants that finished while we held the dispatch lock: the end of the rollout is recorded now, not at the next reconcile
    await this.dispatch(rolloutId, new Date());
    return (await this.getRollout(rolloutId)) ?? row;
  }

  /**
   * Failed and cancelled tenants get a new generation and go back to pending; the rollout runs again.
   * With `refresh`, the rollout's frozen set is replaced by `refresh.set` in the same
   * transaction, after `refresh.check` approved what the control database records (it throws to refuse).
   */
  async retry(rolloutId: string, now: Date, refresh?: RefreshRequest): Promise<{ retried: number; jobs: DispatchedJob[] } | undefined> {
    const done = await this.tx(async (c) => {
      await c.query(DISPATCH_LOCK_SQL, [rolloutId]);
      const r = await c.query(`SELECT * FROM ${T('rollouts')} WHERE id = $1 FOR UPDATE`, [rolloutId]);
      if (!r.rows[0]) return undefined;
      this.assertOwn(rolloutId, r.rows[0].queue_prefix);
      if (refresh) {
        // no tenant can be claimed while the rollout is not running and none is running: the check below cannot go stale.
        // What each tenant's target has applied, by any rollout that is not a dry run (its latest state and every attempt).
        const tenants = await c.query(
          `SELECT rt.tenant_id, rt.state,
                  ARRAY(SELECT DISTINCT unnest(x.applied || coalesce(a.applied, '{}'))
                          FROM ${T('rollout_tenants')} x JOIN ${T('rollouts')} xr ON xr.id = x.rollout_id
                          LEFT JOIN ${T('attempts')} a ON a.rollout_id = x.rollout_id AND a.tenant_id = x.tenant_id
                         WHERE x.tenant_id = rt.tenant_id AND x.database_url = rt.database_url AND x.schema IS NOT DISTINCT FROM rt.schema
                           AND NOT coalesce((xr.options->>'dryRun')::boolean, false)) AS applied
             FROM ${T('rollout_tenants')} rt WHERE rt.rollout_id = $1 ORDER BY rt.position`,
          [rolloutId],
        );
        refresh.check({
          state: r.rows[0].state,
          setChecksum: r.rows[0].set_checksum,
          tenants: tenants.rows.map((x) => ({ tenantId: x.tenant_id, state: x.state, applied: x.applied ?? [] })),
        });
        await this.saveMigrationSet(refresh.set, c);
        await c.query(`UPDATE ${T('rollouts')} SET set_checksum = $2 WHERE id = $1`, [rolloutId, refresh.set.checksum]);
      }
      const u = await c.query(
        `UPDATE ${T('rollout_tenants')} SET state = 'pending', generation = generation + 1, dispatched_at = NULL, error = NULL, not_before = NULL, finished_at = NULL
          WHERE rollout_id = $1 AND state IN ('failed', 'cancelled')`,
        [rolloutId],
      );
      if (u.rowCount) {
        // the lock-wait gate starts afresh too
        await c.query(`UPDATE ${T('rollout_tenants')} SET lock_slow = false WHERE rollout_id = $1 AND lock_slow`, [rolloutId]);
        // back to the first wave that still has work; the canary gate and the failure budget start afresh
        await c.query(
          `UPDATE ${T('rollouts')} SET state = 'running', halt_reason = NULL, finished_at = NULL,
                  current_wave = coalesce((SELECT min(wave) FROM ${T('rollout_tenants')} WHERE rollout_id = $1 AND state NOT IN ('succeeded', 'failed', 'cancelled')), current_wave)
            WHERE id = $1`,
          [rolloutId],
        );
      }
      return { retried: u.rowCount ?? 0, jobs: (await dispatchIn(c, rolloutId, now, this.queuePrefix, true)).jobs };
    });
    if (!done) return done;
    // tenants that finished while we held the dispatch lock
    return { retried: done.retried, jobs: [...done.jobs, ...(await this.dispatch(rolloutId, now))] };
  }

  /** The rollout's unfinished tenants: the target frozen with it, and the registry's entry for the same id today. */
  async frozenTargets(rolloutId: string): Promise<{ tenantId: string; frozen: Target; registry: Target | undefined }[]> {
    const r = await this.pool.query(
      `SELECT rt.tenant_id, rt.database_url, rt.schema, t.database_url AS registry_url, t.schema AS registry_schema
         FROM ${T('rollout_tenants')} rt LEFT JOIN ${T('tenants')} t ON t.id = rt.tenant_id
        WHERE rt.rollout_id = $1 AND rt.state <> 'succeeded' ORDER BY rt.position`,
      [rolloutId],
    );
    return r.rows.map((x) => ({
      tenantId: x.tenant_id,
      frozen: { databaseUrl: x.database_url, schema: x.schema ?? undefined },
      registry: x.registry_url === null ? undefined : { databaseUrl: x.registry_url, schema: x.registry_schema ?? undefined },
    }));
  }

  // schedules live in schedules.ts; these keep the store the one handle callers hold
  // (each fleet has its own schedules: they are saved, read and restored under this store's queue prefix)
  saveSchedule(s: Omit<Schedule, 'selection'> & { selection: unknown }): Promise<void> {
    return saveSchedule(this.pool, this.queuePrefix, s);
  }

  getSchedule(name: string): Promise<Schedule | undefined> {
    return getSchedule(this.pool, this.queuePrefix, name);
  }

  listSchedules(): Promise<ScheduleSummary[]> {
    return listSchedules(this.pool, this.queuePrefix);
  }

  deleteSchedule(name: string): Promise<boolean> {
    return deleteSchedule(this.pool, this.queuePrefix, name);
  }

  /** Refuse to act on a rollout of another fleet (another queue prefix): exit 2, nothing changed. */
  assertOwn(rolloutId: string, rolloutPrefix: string): void {
    if (rolloutPrefix !== this.queuePrefix) throw new QueuePrefixMismatchError(rolloutId, rolloutPrefix, this.queuePrefix);
  }

  async registryTenants(): Promise<Tenant[]> {
    const r = await this.pool.query(`SELECT * FROM ${T('tenants')} ORDER BY id`);
    return r.rows.map((x) => ({
      id: x.id,
      databaseUrl: x.database_url,
      schema: x.schema ?? undefined,
      tags: x.tags ?? [],
      window: x.maintenance_window ?? undefined,
    }));
  }
}

/**
 * A finished tenant's `applied` list: everything the rollout applied to it, in
 * any attempt or generation. `total` comes from the tenant's tracking table
 * (the truth: it includes files committed by a worker that died before
 * recording them); files earlier attempts recorded are kept as well, for when
 * the tenant could not be read.
 */
async function reconcileApplied(c: pg.PoolClient, rolloutId: string, tenantId: string, generation: number, total: string[]): Promise<void> {
  await c.query(
    `UPDATE ${T('rollout_tenants')} t SET applied = ARRAY(
        SELECT name FROM (
          SELECT g.x AS name, g.o::bigint AS ord FROM unnest($4::text[]) WITH ORDINALITY AS g(x, o)
          UNION ALL
          SELECT y, 9223372036854775807 FROM ${T('attempts')} a, unnest(a.applied) AS y WHERE a.rollout_id = $1 AND a.tenant_id = $2 AND a.kind IN ('migrate', 'revert')
        ) u GROUP BY name ORDER BY min(ord), name)
      WHERE t.rollout_id = $1 AND t.tenant_id = $2 AND t.generation = $3 AND t.state IN ('succeeded', 'failed')`,
    [rolloutId, tenantId, generation, total],
  );
}

const STATES: TenantState[] = ['pending', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled'];

/** The per-state sums of `rollout_counts` rows aliased `c` (pending: handed out or not). */
export const COUNTS_SQL = (c: string) =>
  `coalesce(sum(${c}.waiting + ${c}.queued), 0)::int AS pending, coalesce(sum(${c}.scheduled), 0)::int AS scheduled, coalesce(sum(${c}.running), 0)::int AS running,
   coalesce(sum(${c}.succeeded), 0)::int AS succeeded, coalesce(sum(${c}.failed), 0)::int AS failed, coalesce(sum(${c}.cancelled), 0)::int AS cancelled`;

export function toCounts(x: pg.QueryResultRow): Record<TenantState, number> {
  return Object.fromEntries(STATES.map((s) => [s, Number(x[s] ?? 0)])) as Record<TenantState, number>;
}

function toRollout(x: pg.QueryResultRow): RolloutRow {
  return {
    id: x.id,
    setChecksum: x.set_checksum,
    state: x.state,
    haltReason: x.halt_reason,
    options: x.options,
    currentWave: x.current_wave,
    waveCount: x.wave_count,
    createdBy: x.created_by,
    createdAt: x.created_at,
    finishedAt: x.finished_at,
    queuePrefix: x.queue_prefix,
  };
}

function toTenantRow(x: pg.QueryResultRow): RolloutTenantRow {
  return {
    tenantId: x.tenant_id,
    wave: x.wave,
    server: x.server,
    state: x.state,
    generation: x.generation,
    attempts: x.attempts,
    applied: x.applied ?? [],
    error: x.error,
    checks: x.checks,
    worker: x.worker,
    notBefore: x.not_before,
    startedAt: x.started_at,
    finishedAt: x.finished_at,
    durationMs: x.duration_ms,
    lockWaitMs: x.lock_wait_ms ?? null,
    lockTimeouts: x.lock_timeouts ?? null,
  };
}
