/**
 * The engine: the one way Flotilla applies migrations, used by the CLI, the
 * fleet workers and dry runs alike.
 *
 *   read ledger -> plan -> (nothing pending? done: one query, no lock)
 *   -> advisory lock, on a lock session of its own (adapters/pg/lock.ts)
 *   -> ensure ledger -> re-read and re-plan under the lock
 *   -> for each pending file, in its own transaction owned by the engine:
 *        snapshot -> statements -> tracking row -> deferred triggers fired
 *        -> snapshot -> diff -> "lock still held?" + COMMIT (one round trip)
 *      (a validation failure, a lost lock or any error rolls the whole file back)
 *   -> unlock (the lock session ends its transaction)
 *
 * Files made only of non-transactional statements (CREATE INDEX CONCURRENTLY,
 * VACUUM, ...) run statement by statement outside a transaction; the tracking
 * row is written after the last one succeeds.
 */
import { performance } from 'node:perf_hooks';
import {
  ChangedMigrationError,
  FlotillaError,
  LockLostError,
  LockTimeoutError,
  MigrationFailedError,
  UnknownMigrationError,
  ValidationFailedError,
} from './core/errors.js';
import type { Migration, MigrationSet } from './core/migration-set.js';
import { plan, type AppliedRow, type Plan } from './core/plan.js';
import type { Statement } from './core/statements.js';
import { DEFAULT_VALIDATION_OPTIONS, diffSnapshots, type Snapshot, type ValidationOptions } from './core/validation.js';
import { quoteIdent, type Queryable } from './adapters/pg/connection.js';
import { ensureLedger, readLedger, recordApplied, resolveLedger, type LedgerLocation } from './adapters/pg/ledger.js';
import { isLockLostError, lockHolder, siblingLockSessions, tryAcquire, type HeldLock, type LockSessions } from './adapters/pg/lock.js';
import { assertSessionsKept } from './adapters/pg/pooler.js';
import { validationScope, type RowScopeCache } from './adapters/pg/row-scope.js';
import { restoreInitiallyDeferred } from './adapters/pg/deferred.js';
import { invalidIndexes, takeSnapshot, type SnapshotScope } from './adapters/pg/snapshot.js';
import { explainMigrationFailure, explainRefusal } from './adapters/pg/refusals.js';
import { isRetryable } from './adapters/pg/sqlstate.js';

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
  /** stopped early because the signal was aborted */
  interrupted: boolean;
  /** where the time went, ms: plan (ledger reads), lock, apply (statements), validation (scope + snapshots + diff), ledger (tracking rows, commit) */
  timings: Timings;
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
}

type Emit = (e: EngineEvent) => void;

export interface MigratorPorts {
  /**
   * Where the lock session comes from: a second connection to the same
   * database that runs no migration SQL. Default for a pg.Client: a second
   * client with the same connection parameters, opened only when something is
   * pending.
   */
  lockSessions?: LockSessions;
}

export class Migrator {
  private readonly settings: EngineSettings;
  /** event triggers seen by this run (adapters/pg/row-scope.ts) */
  private scopeCache: RowScopeCache = {};
  private readonly lockSessions: LockSessions;
  /** the migration lock while migrate() holds it */
  private held: HeldLock | undefined;
  constructor(
    private readonly db: Queryable,
    settings: Partial<EngineSettings> = {},
    private readonly emit: Emit = () => {},
    ports: MigratorPorts = {},
  ) {
    this.settings = { ...DEFAULT_ENGINE_SETTINGS, ...settings };
    if (!this.settings.trackingTable) throw new Error('Migrator: trackingTable must not be empty');
    const lockSessions = ports.lockSessions ?? siblingLockSessions(db);
    if (!lockSessions) throw new Error('Migrator: pass ports.lockSessions (a second connection for the migration lock) when db is not a pg.Client');
    this.lockSessions = lockSessions;
  }

  /** What is applied, pending, changed or missing. Reads only; creates nothing. */
  async status(set: MigrationSet): Promise<StatusReport> {
    return this.explained('reading the tracking table', () => this.statusOf(set));
  }

  private async statusOf(set: MigrationSet): Promise<StatusReport> {
    const ledger = await this.location();
    const rows = await readLedger(this.db, ledger);
    const p = plan(set, rows);
    const missing = new Set(p.missing);
    return {
      schema: ledger.schema,
      applied: rows.filter((r) => !missing.has(r) && !p.duplicates.some((d) => d.extra.includes(r.name))),
      pending: p.pending.map((m) => m.name),
      changed: p.changed,
      renamed: p.renamed.map((r) => ({ ...r, version: String(r.version) })),
      missing: p.missing,
      outOfOrder: p.outOfOrder.map((m) => m.name),
      duplicates: p.duplicates.map((d) => ({ ...d, version: String(d.version) })),
    };
  }

  async migrate(set: MigrationSet, req: MigrateRequest = {}): Promise<MigrateReport> {
    if (req.only && !set.migrations.some((m) => m.name === req.only)) throw new UnknownMigrationError(req.only);
    this.phase = 'reading the tracking table';
    return this.explained(() => this.phase, () => this.run(set, req));
  }

  /** What the engine is doing on the target, for explanations of its refusals. */
  private phase = 'reading the tracking table';

  /** Errors the target raised on the engine's own queries, explained (adapters/pg/refusals.ts). */
  private async explained<T>(doing: string | (() => string), fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw await explainRefusal(this.db, e, typeof doing === 'string' ? doing : doing());
    }
  }

  private async run(set: MigrationSet, req: MigrateRequest): Promise<MigrateReport> {
    this.scopeCache = {};
    const ledger = await this.location();
    const report: MigrateReport = {
      schema: ledger.schema, createdSchema: false, pending: [], applied: [], alreadyApplied: [], skipped: [], warnings: [],
      dryRun: !!req.dryRun, lockWaitMs: 0, interrupted: false, timings: { plan: 0, lock: 0, apply: 0, validation: 0, ledger: 0 },
    };
    const time = timer(report.timings);
    // Fast path, no lock: a committed ledger that already has everything is the answer.
    const first = this.checkedPlan(set, await time('plan', () => readLedger(this.db, ledger)));
    if (this.todo(first, req, report).length === 0 && !req.dryRun) return this.finish(report, first);

    this.phase = 'taking the migration lock';
    report.lockWaitMs = await time('lock', () => this.acquire(ledger));
    try {
      if (req.dryRun) return await this.dryRun(set, ledger, req, report);
      const p = await time('plan', async () => {
        this.phase = `creating the tracking table ${ledger.schema}.${ledger.table}`;
        this.created(report, await ensureLedger(this.db, ledger));
        this.phase = 'reading the tracking table';
        return this.checkedPlan(set, await readLedger(this.db, ledger));
      });
      this.phase = 'applying migrations';
      const todo = this.todo(p, req, report);
      this.warn(p, report);
      report.pending = p.pending.map((m) => m.name);
      if (!req.only) this.emit({ type: 'found-pending', names: todo.map((m) => m.name) });
      // the snapshot after the last committed file, when it counted no rows (see applyInTransaction)
      let structureOnly: Checkpoint | undefined;
      for (let i = 0; i < todo.length; ) {
        if (req.signal?.aborted) {
          report.interrupted = true;
          break;
        }
        const m = todo[i]!;
        let n = 1;
        while (this.settings.singleTransaction && m.transactional && todo[i + n]?.transactional) n++;
        const group = todo.slice(i, (i += n));
        try {
          if (group.length > 1) {
            for (const done of await this.applyGroup(group, ledger, req, time)) {
              report.applied.push(done);
              this.emit({ type: 'migration-done', ...done });
            }
            structureOnly = undefined;
            continue;
          }
          this.emit({ type: 'migration-start', name: m.name, transactional: m.transactional });
          let durationMs: number;
          if (m.transactional) {
            const done = await this.applyInTransaction(m, ledger, req, time, structureOnly);
            [durationMs, structureOnly] = [done.durationMs, done.structureOnly];
          } else {
            durationMs = await time('apply', () => this.applyOutsideTransaction(m, ledger));
            structureOnly = undefined;
          }
          report.applied.push({ name: m.name, durationMs });
          this.emit({ type: 'migration-done', name: m.name, durationMs });
        } catch (e) {
          const failure = e instanceof GroupFailure ? e : e instanceof FlotillaError ? new GroupFailure(m.name, e) : undefined;
          if (!failure) throw e;
          const error = await explainMigrationFailure(this.db, group, failure.error);
          report.failed = { name: failure.migration, error };
          this.emit({ type: 'migration-failed', name: failure.migration, error });
          break;
        }
      }
      return report;
    } finally {
      await this.releaseLock();
    }
  }

  private created(report: MigrateReport, r: { createdSchema: boolean }): void {
    if (!r.createdSchema) return;
    report.createdSchema = true;
    this.emit({ type: 'schema-created', schema: report.schema });
  }

  private finish(report: MigrateReport, p: Plan): MigrateReport {
    this.warn(p, report);
    if (!report.alreadyApplied.length) this.emit({ type: 'found-pending', names: [] });
    return report;
  }

  private todo(p: Plan, req: MigrateRequest, report: MigrateReport): Migration[] {
    if (!req.only) return p.pending;
    const applied = p.applied.find((a) => a.migration.name === req.only);
    if (applied) {
      report.alreadyApplied = [req.only];
      this.emit({ type: 'already-applied', name: req.only });
      return [];
    }
    return p.pending.filter((m) => m.name === req.only);
  }

  private warn(p: Plan, report: MigrateReport): void {
    for (const r of p.renamed) report.warnings.push(`applied migration ${r.from} is now named ${r.to} (same version ${r.version}): not applied again`);
    for (const r of p.missing) report.warnings.push(`applied migration ${r.name} has no file any more`);
    for (const d of p.duplicates) report.warnings.push(`version ${d.version} is recorded ${d.extra.length + 1} times (${[d.kept, ...d.extra].join(', ')}): one migration, not applied again`);
    for (const m of p.outOfOrder) report.warnings.push(`${m.name} is pending but numbered below an applied migration (applied out of order)`);
    for (const message of report.warnings) this.emit({ type: 'warning', message });
  }

  private checkedPlan(set: MigrationSet, rows: AppliedRow[]): Plan {
    const p = plan(set, rows);
    if (p.changed.length) throw new ChangedMigrationError(p.changed);
    return p;
  }

  /** Resolved before the lock is taken: the lock is keyed on it (adapters/pg/ledger.ts). */
  private location(): Promise<LedgerLocation> {
    return resolveLedger(this.db, this.settings.schema, this.settings.trackingTable);
  }

  /**
   * Open the lock session and take the advisory lock on it, polling (see
   * adapters/pg/lock.ts for why not blocking). A pooler that does not keep
   * sessions is refused first (adapters/pg/pooler.ts).
   */
  private async acquire(ledger: LedgerLocation): Promise<number> {
    const started = performance.now();
    const where = `${ledger.schema}.${ledger.table}`;
    const conn = await this.lockSessions.open();
    try {
      await assertSessionsKept(this.db, conn, this.lockSessions.target);
      let held = await tryAcquire(conn, ledger);
      let waitedMs = 0;
      if (!held) {
        const holder = await lockHolder(conn, ledger).catch(() => undefined);
        if (this.settings.lockWaitTimeoutMs <= 0) throw new LockTimeoutError(where, 0, holder);
        this.emit({ type: 'lock-wait', holder });
        let delay = 50;
        while (!held) {
          const waited = performance.now() - started;
          if (waited >= this.settings.lockWaitTimeoutMs) throw new LockTimeoutError(where, Math.round(waited), holder);
          await sleep(Math.min(delay, this.settings.lockWaitTimeoutMs - waited) * (0.75 + Math.random() * 0.5));
          delay = Math.min(delay * 2, 1000);
          held = await tryAcquire(conn, ledger);
        }
        waitedMs = Math.round(performance.now() - started);
        this.emit({ type: 'lock-acquired', waitedMs });
      }
      this.held = held;
      return waitedMs;
    } catch (e) {
      // a lock that was busy left the session clean (rolled back): a cache may keep it
      await this.lockSessions.release(conn, e instanceof LockTimeoutError).catch(() => {});
      throw e;
    }
  }

  private async releaseLock(): Promise<void> {
    const held = this.held;
    this.held = undefined;
    if (!held) return;
    const clean = await held.release();
    await this.lockSessions.release(held.conn, clean).catch(() => {});
  }

  /**
   * COMMIT the open transaction in one round trip with the check that the lock
   * session still holds the lock: when it does not, the check fails, the
   * COMMIT is skipped and the caller rolls back.
   */
  private async commit(migration: string): Promise<void> {
    const held = this.heldLock(migration, true);
    try {
      await this.db.query(`${held.checkSql}; COMMIT`);
    } catch (e) {
      throw isLockLostError(e) ? this.lockLost(migration, true) : e;
    }
  }

  /** Outside a transaction (non-transactional files): is the lock still ours? A round trip of its own. */
  private async assertHeld(migration: string): Promise<void> {
    const held = this.heldLock(migration, false);
    try {
      await this.db.query(held.checkSql);
    } catch (e) {
      throw isLockLostError(e) ? this.lockLost(migration, false) : e;
    }
  }

  private heldLock(migration: string, transactional: boolean): HeldLock {
    const held = this.held;
    if (!held) throw new Error('Migrator: commit without the migration lock');
    if (held.lost) throw this.lockLost(migration, transactional);
    return held;
  }

  private lockLost(migration: string, transactional: boolean): LockLostError {
    return new LockLostError(this.lockSessions.target, migration, this.held?.pid, transactional);
  }

  private validationFor(m: Migration): { enabled: boolean; options: ValidationOptions } {
    return {
      enabled: m.validation.enabled ?? this.settings.validate,
      options: { ...DEFAULT_VALIDATION_OPTIONS, ...this.settings.validation, ...m.validation.options },
    };
  }

  private sessionSettings(local: boolean): string {
    const set = local ? 'SET LOCAL' : 'SET';
    const parts = [`${set} lock_timeout = ${Math.max(0, Math.floor(this.settings.lockTimeoutMs))}`, `${set} statement_timeout = ${Math.max(0, Math.floor(this.settings.statementTimeoutMs))}`];
    if (this.settings.schema) parts.push(`${set} search_path TO ${quoteIdent(this.settings.schema)}`);
    return parts.join('; ');
  }

  private snapshotScope(ledger: LedgerLocation) {
    return { schemas: this.settings.schema ? [this.settings.schema] : [], exclude: ledger };
  }

  /**
   * Statements, validation and the tracking row in one transaction. Returns the
   * duration, and the snapshot after the file when it counted no rows: the
   * next file may use it as its "before" (structure only: the application
   * changes rows between our transactions, not the schema we hold the
   * migration lock on), which saves a catalog snapshot per file.
   */
  private async applyInTransaction(
    m: Migration, ledger: LedgerLocation, req: MigrateRequest, time: Time, structureOnly?: Checkpoint,
  ): Promise<{ durationMs: number; structureOnly: Checkpoint | undefined }> {
    const started = performance.now();
    const v = this.validationFor(m);
    let after: Checkpoint | undefined;
    // REPEATABLE READ when validating: both snapshots see the same committed data,
    // so concurrent application writes cannot fake (or hide) a row-count change.
    await time('apply', () => this.db.query(`BEGIN${v.enabled ? ' ISOLATION LEVEL REPEATABLE READ' : ''}; ${this.sessionSettings(true)}`));
    try {
      const record = () => recordApplied(this.db, ledger, { name: m.name, checksum: m.checksum, durationMs: Math.round(performance.now() - started), appliedBy: this.settings.appliedBy });
      after = await this.runInOpenTransaction(m, ledger, req, v, time, record, structureOnly, true);
      await time('ledger', () => this.commit(m.name));
    } catch (e) {
      await this.db.query('ROLLBACK').catch(() => {});
      throw this.asMigrationError(m, e, undefined);
    }
    const countsNothing = after !== undefined && Array.isArray(after.scope.count) && after.scope.count.length === 0;
    return { durationMs: Math.round(performance.now() - started), structureOnly: countsNothing ? after : undefined };
  }

  /**
   * Several files, one transaction (settings.singleTransaction). Each file is
   * validated on its own; the snapshot after one file is the snapshot before
   * the next when it counted the tables the next one can change. Tracking rows
   * go in with them; `migration-done` is emitted by the caller after COMMIT.
   */
  private async applyGroup(group: Migration[], ledger: LedgerLocation, req: MigrateRequest, time: Time): Promise<{ name: string; durationMs: number }[]> {
    const validated = group.some((m) => this.validationFor(m).enabled);
    await time('apply', () => this.db.query(`BEGIN${validated ? ' ISOLATION LEVEL REPEATABLE READ' : ''}; ${this.sessionSettings(true)}`));
    const done: { name: string; durationMs: number }[] = [];
    let current = group[0]!;
    try {
      let previous: Checkpoint | undefined;
      for (const m of group) {
        current = m;
        this.emit({ type: 'migration-start', name: m.name, transactional: true });
        const started = performance.now();
        let durationMs = 0;
        const record = () => recordApplied(this.db, ledger, { name: m.name, checksum: m.checksum, durationMs: (durationMs = Math.round(performance.now() - started)), appliedBy: this.settings.appliedBy });
        previous = await this.runInOpenTransaction(m, ledger, req, this.validationFor(m), time, record, previous);
        done.push({ name: m.name, durationMs });
      }
      await time('ledger', () => this.commit(current.name));
      return done;
    } catch (e) {
      await this.db.query('ROLLBACK').catch(() => {});
      throw new GroupFailure(current.name, this.asMigrationError(current, e, undefined));
    }
  }

  /**
   * Apply one file's statements in the caller's open transaction and validate
   * them. Returns the snapshot after the file, which the next file of a group
   * may reuse as its "before".
   */
  private async runInOpenTransaction(
    m: Migration, ledger: LedgerLocation, req: MigrateRequest, v: { enabled: boolean; options: ValidationOptions }, time: Time,
    /** writes the file's tracking row: before the after-snapshot, so what it fires (a trigger on the tracking table) is validated too */
    record: () => Promise<unknown>,
    previous?: Checkpoint,
    /** `previous` was taken in an earlier, committed transaction (usable only if neither counts rows); this file's transaction ends with it */
    acrossTransactions = false,
  ): Promise<Checkpoint | undefined> {
    const before = !v.enabled
      ? undefined
      : await time('validation', async (): Promise<Checkpoint> => {
          // count only the tables this file can change (core/effects.ts, adapters/pg/row-scope.ts);
          // under --schema, also look at the tables it names elsewhere (ALTER TABLE public.x ...)
          const named = !v.options.allowRowChanges || this.settings.schema ? await validationScope(this.db, m.effects, this.scopeCache, [ledger]) : undefined;
          const count = v.options.allowRowChanges ? [] : named?.count;
          const look = this.settings.schema ? named?.look ?? [] : [];
          const reusable = previous && look.every((t) => previous.scope.look?.includes(t) || previous.snapshot.tables[t]);
          if (reusable && (acrossTransactions ? count?.length === 0 && previous.scope.count?.length === 0 : covers(previous.scope.count, count))) return previous;
          // counting every table means every schema: code we could not see through may write outside --schema;
          // a DROP ... CASCADE may take columns and constraints of tables in any schema
          const everywhere = count === undefined || m.effects.cascades !== false;
          const scope = { ...this.snapshotScope(ledger), count, look, ...(everywhere ? { schemas: [] } : {}) };
          return { scope, snapshot: await takeSnapshot(this.db, scope) };
        });
    await time('apply', () => this.execAll(m, req));
    await time('ledger', record);
    await time('apply', async () => {
      // deferred triggers fire now, not at COMMIT after the snapshot (adapters/pg/deferred.ts)
      await this.db.query('SET CONSTRAINTS ALL IMMEDIATE').catch((e) => {
        throw this.asMigrationError(m, e, undefined);
      });
    });
    // other files follow in this transaction: give them the INITIALLY DEFERRED defaults back
    const restore = () => (acrossTransactions ? Promise.resolve() : time('apply', () => restoreInitiallyDeferred(this.db)));
    if (!before) return restore().then(() => undefined);
    const after = await time('validation', () => takeSnapshot(this.db, before.scope));
    const result = diffSnapshots(before.snapshot, after, v.options);
    if (!result.valid) throw new ValidationFailedError(m.name, result.issues);
    await restore();
    return { scope: before.scope, snapshot: after };
  }

  /**
   * A transactional file's statements in the open transaction: one round trip
   * for all of them (behind a savepoint). When that fails, back to the
   * savepoint and run them one by one, so the error names the statement that
   * failed and its line; an error that does not happen again (a lock timeout,
   * a deadlock) is reported as it was, for the file.
   */
  private async execAll(m: Migration, req: MigrateRequest): Promise<void> {
    const interrupted = (s: Statement) =>
      new MigrationFailedError(m.name, statementRef(s), { code: '57014', message: 'interrupted: the worker is shutting down' }, true, 'transient');
    if (req.signal?.aborted) throw interrupted(m.statements[0]!);
    if (m.statements.length === 1) return this.exec(m, m.statements[0]!, true);
    // newline before each separator: a statement may end in a -- comment
    const batch = m.statements.map((s) => s.sql).join('\n;\n');
    try {
      await this.db.query(`SAVEPOINT flotilla_batch;\n${batch}`);
      return;
    } catch (first) {
      await this.db.query('ROLLBACK TO SAVEPOINT flotilla_batch').catch(() => {
        throw this.asMigrationError(m, first, undefined);
      });
      for (const s of m.statements) {
        if (req.signal?.aborted) throw interrupted(s);
        await this.exec(m, s, true);
      }
      throw this.asMigrationError(m, first, undefined);
    }
  }

  private async exec(m: Migration, s: Statement, transactional: boolean): Promise<void> {
    try {
      await this.db.query(s.sql);
    } catch (e) {
      throw this.asMigrationError(m, e, s, transactional);
    }
  }

  private asMigrationError(m: Migration, e: unknown, s: Statement | undefined, transactional = true): FlotillaError {
    if (e instanceof FlotillaError) return e;
    const err = e as { code?: string; message?: string; detail?: string; hint?: string; where?: string };
    return new MigrationFailedError(
      m.name,
      s ? statementRef(s) : undefined,
      { code: err.code, message: err.message ?? String(e), detail: err.detail, hint: err.hint, where: err.where },
      transactional,
      isRetryable(e) ? 'transient' : 'migration',
    );
  }

  /** CREATE INDEX CONCURRENTLY & co.: one statement at a time, autocommit. */
  private async applyOutsideTransaction(m: Migration, ledger: LedgerLocation): Promise<number> {
    // SET (unlike SET LOCAL) outlives the migration: give the caller its session back as it was
    const saved = (await this.db.query<{ lt: string; st: string; sp: string }>(
      `SELECT current_setting('lock_timeout') AS lt, current_setting('statement_timeout') AS st, current_setting('search_path') AS sp`,
    )).rows[0]!;
    try {
      return await this.runOutsideTransaction(m, ledger);
    } finally {
      await this.db
        .query(`SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false), set_config('search_path', $3, false)`, [saved.lt, saved.st, saved.sp])
        .catch(() => {});
    }
  }

  private async runOutsideTransaction(m: Migration, ledger: LedgerLocation): Promise<number> {
    const started = performance.now();
    await this.db.query(this.sessionSettings(false));
    // IF NOT EXISTS would silently skip an INVALID index left by an earlier failed build.
    const invalidBefore = await invalidIndexes(this.db, ledger.schema);
    const named = m.statements.map((s) => String((s.node as { idxname?: string }).idxname ?? '')).filter(Boolean);
    const stale = named.filter((n) => invalidBefore.includes(n));
    if (stale.length) {
      throw new MigrationFailedError(m.name, undefined, {
        message: `index ${stale.join(', ')} exists but is INVALID (left by an earlier failed concurrent build)`,
        hint: `DROP INDEX CONCURRENTLY ${stale.map((n) => `${quoteIdent(ledger.schema)}.${quoteIdent(n)}`).join(', ')}; then run the migration again`,
      }, false, 'migration');
    }
    for (const s of m.statements) {
      // each statement commits on its own: none starts once the lock is gone
      await this.assertHeld(m.name);
      try {
        await this.db.query(s.sql);
      } catch (e) {
        const failure = this.asMigrationError(m, e, s, false) as MigrationFailedError;
        const left = (await invalidIndexes(this.db, ledger.schema).catch(() => [] as string[])).filter((n) => !invalidBefore.includes(n));
        if (left.length) {
          failure.pg.hint = `${failure.pg.hint ? `${failure.pg.hint}. ` : ''}The failed build left INVALID index ${left.join(', ')}: DROP INDEX CONCURRENTLY it before running again`;
        }
        throw failure;
      }
    }
    const durationMs = Math.round(performance.now() - started);
    // the tracking row commits only while the lock is held
    await this.db.query('BEGIN');
    try {
      await recordApplied(this.db, ledger, { name: m.name, checksum: m.checksum, durationMs, appliedBy: this.settings.appliedBy });
      await this.commit(m.name);
    } catch (e) {
      await this.db.query('ROLLBACK').catch(() => {});
      throw e instanceof LockLostError ? this.lockLost(m.name, false) : e;
    }
    return durationMs;
  }

  /** Every pending migration in one transaction, validated, then rolled back. */
  private async dryRun(set: MigrationSet, ledger: LedgerLocation, req: MigrateRequest, report: MigrateReport): Promise<MigrateReport> {
    await this.db.query(`BEGIN ISOLATION LEVEL REPEATABLE READ; ${this.sessionSettings(true)}`);
    try {
      this.phase = `creating the tracking table ${ledger.schema}.${ledger.table}`;
      this.created(report, await ensureLedger(this.db, ledger, { inTransaction: true }));
      this.phase = 'reading the tracking table';
      const p = this.checkedPlan(set, await readLedger(this.db, ledger));
      this.phase = 'applying migrations';
      const todo = this.todo(p, req, report);
      report.pending = p.pending.map((m) => m.name);
      this.emit({ type: 'found-pending', names: todo.map((m) => m.name) });
      for (const m of todo) {
        if (!m.transactional) {
          report.skipped.push(m.name);
          report.warnings.push(`${m.name} runs outside a transaction and cannot be tried in a dry run`);
          continue;
        }
        this.emit({ type: 'migration-start', name: m.name, transactional: true });
        const started = performance.now();
        try {
          await this.db.query('SAVEPOINT flotilla_dry_run');
          const record = () => recordApplied(this.db, ledger, { name: m.name, checksum: m.checksum, durationMs: 0, appliedBy: this.settings.appliedBy });
          await this.runInOpenTransaction(m, ledger, req, this.validationFor(m), timer(report.timings), record);
          await this.db.query('RELEASE SAVEPOINT flotilla_dry_run');
        } catch (e) {
          await this.db.query('ROLLBACK TO SAVEPOINT flotilla_dry_run').catch(() => {});
          const error = await explainMigrationFailure(this.db, [m], this.asMigrationError(m, e, undefined));
          report.failed = { name: m.name, error };
          this.emit({ type: 'migration-failed', name: m.name, error });
          break;
        }
        const durationMs = Math.round(performance.now() - started);
        report.applied.push({ name: m.name, durationMs });
        this.emit({ type: 'migration-done', name: m.name, durationMs });
      }
    } finally {
      await this.db.query('ROLLBACK').catch(() => {});
    }
    return report;
  }
}

function statementRef(s: Statement): { index: number; line: number; text: string } {
  const text = s.sql.replace(/^(\s|--[^\n]*\n)+/, '').trim();
  return { index: s.index, line: s.line, text: text.length > 200 ? `${text.slice(0, 197)}...` : text };
}

/** A validation snapshot and what it covered. */
interface Checkpoint {
  scope: SnapshotScope;
  snapshot: Snapshot;
}

/** Did a snapshot that counted `had` count every table in `need`? (undefined = every table) */
function covers(had: string[] | undefined, need: string[] | undefined): boolean {
  if (had === undefined) return true;
  if (need === undefined) return false;
  return need.every((t) => had.includes(t));
}

/** A file of a single-transaction group failed: the whole group was rolled back. */
class GroupFailure extends Error {
  constructor(
    readonly migration: string,
    readonly error: FlotillaError,
  ) {
    super(error.message);
  }
}

type Time = <T>(phase: keyof Timings, fn: () => Promise<T>) => Promise<T>;

/** Adds each phase's wall time (ms, 0.1 precision) to `into`. */
function timer(into: Timings): Time {
  return async (phase, fn) => {
    const t = performance.now();
    try {
      return await fn();
    } finally {
      into[phase] = Math.round((into[phase] + performance.now() - t) * 10) / 10;
    }
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}
