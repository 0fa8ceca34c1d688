/**
 * Where a migration is applied. Transactional files go through applyGroup,
 * the one way: BEGIN and the session settings, per file the statements, the
 * tracking row, the deferred triggers and the validation, then COMMIT with the
 * lock check (a single file is a group of one; --single-transaction groups
 * consecutive files) or ROLLBACK (a dry run). Files made only of
 * non-transactional statements (CREATE INDEX CONCURRENTLY, VACUUM, ...) go
 * through applyAlone: statement by statement outside a transaction, the
 * tracking row after the last one.
 */
import { FlotillaError, LockLostError, MigrationFailedError, ValidationFailedError } from '../core/errors.js';
import type { Migration } from '../core/migration-set.js';
import type { Clock } from '../core/ports.js';
import type { Statement } from '../core/statements.js';
import { DEFAULT_VALIDATION_OPTIONS, diffSnapshots, type Snapshot, type ValidationOptions } from '../core/validation.js';
import { quoteIdent, type Queryable } from '../adapters/pg/connection.js';
import { recordApplied, type LedgerLocation } from '../adapters/pg/ledger.js';
import { validationScope } from '../adapters/pg/row-scope.js';
import { refuseOtherSessions, type OtherSessionsCache } from '../adapters/pg/other-sessions.js';
import { restoreInitiallyDeferred } from '../adapters/pg/deferred.js';
import { invalidIndexes, takeSnapshot, type SnapshotScope } from '../adapters/pg/snapshot.js';
import { explainMigrationFailure } from '../adapters/pg/refusals.js';
import { isRetryable } from '../adapters/pg/sqlstate.js';
import type { LockSession } from './lock-session.js';
import type { Emit, EngineSettings, MigrateReport, MigrateRequest, Timings } from './types.js';

export class Applier {
  constructor(
    private readonly db: Queryable,
    private readonly settings: Readonly<EngineSettings>,
    private readonly emit: Emit,
    private readonly clock: Clock,
    private readonly lock: LockSession,
  ) {}

  /** A file made of non-transactional statements, alone and outside a transaction. False when it failed. */
  async applyAlone(m: Migration, { ledger, report, time }: RunContext): Promise<boolean> {
    this.emit({ type: 'migration-start', name: m.name, transactional: false });
    try {
      const durationMs = await time('apply', () => this.applyOutsideTransaction(m, ledger));
      this.applied(report, { name: m.name, durationMs });
      return true;
    } catch (e) {
      if (!(e instanceof FlotillaError)) throw e;
      await this.failed(report, m, [m], e);
      return false;
    }
  }

  /** A file failed: explain it (adapters/pg/refusals.ts), report it, emit it. `rolledBack`: the files whose changes went with it. */
  private async failed(report: MigrateReport, m: Migration, rolledBack: Migration[], e: FlotillaError): Promise<void> {
    const error = await explainMigrationFailure(this.db, rolledBack, e);
    report.failed = { name: m.name, error };
    this.emit({ type: 'migration-failed', name: m.name, error });
  }

  private validationFor(m: Migration): { enabled: boolean; options: ValidationOptions } {
    return {
      enabled: m.validation.enabled ?? this.settings.validate,
      options: { ...DEFAULT_VALIDATION_OPTIONS, ...this.settings.validation, ...m.validation.options },
    };
  }

  private sessionSettings(local: boolean): string {
    const set = local ? 'SET LOCAL' : 'SET';
    const parts = [
      `${set} lock_timeout = ${Math.max(0, Math.floor(this.settings.lockTimeoutMs))}`,
      `${set} statement_timeout = ${Math.max(0, Math.floor(this.settings.statementTimeoutMs))}`,
    ];
    if (this.settings.schema) parts.push(`${set} search_path TO ${quoteIdent(this.settings.schema)}`);
    return parts.join('; ');
  }

  private snapshotScope(ledger: LedgerLocation) {
    return { schemas: this.settings.schema ? [this.settings.schema] : [], exclude: ledger };
  }

  private applied(report: MigrateReport, done: { name: string; durationMs: number }): void {
    report.applied.push(done);
    this.emit({ type: 'migration-done', ...done });
  }

  /**
   * The one way transactional files are applied. BEGIN (REPEATABLE READ when
   * validating: both snapshots see the same committed data, so concurrent
   * application writes cannot fake or hide a row-count change) with the
   * session settings; then each file: statements, tracking row, deferred
   * triggers, validation (runInOpenTransaction); then
   *   finish 'commit':   "lock still held?" + COMMIT in one round trip; any
   *                      failure rolls the whole group back. A single file is a
   *                      group of one; --single-transaction groups consecutive
   *                      files. `migration-done` follows the COMMIT.
   *   finish 'rollback': a dry run. Each file behind a savepoint, so a failure
   *                      is explained inside the transaction and ends the run;
   *                      non-transactional files are skipped; ROLLBACK at the end.
   * `files` may be found once the transaction is open (the dry run plans in it).
   * Fills the report and emits the events; `ok` is false when a file failed.
   */
  async applyGroup(files: Migration[] | (() => Promise<Migration[]>), opts: GroupOptions, run: RunContext): Promise<{ ok: boolean; carried?: Checkpoint }> {
    const rollback = opts.finish === 'rollback';
    const known = typeof files === 'function' ? undefined : files;
    if (!rollback && known?.some((m) => !m.transactional)) throw new Error('Migrator: a non-transactional file in a committed group');
    const validated = rollback || !!known?.some((m) => this.validationFor(m).enabled);
    await run.time('apply', () => this.db.query(`BEGIN${validated ? ' ISOLATION LEVEL REPEATABLE READ' : ''}; ${this.sessionSettings(true)}`));
    const group = known ?? [];
    const done: { name: string; durationMs: number }[] = [];
    let current: Migration | undefined;
    let previous = opts.carried;
    let started = 0;
    try {
      if (!known) group.push(...(await (files as () => Promise<Migration[]>)()));
      const last = group.length - 1;
      for (const [k, m] of group.entries()) {
        if (!m.transactional) {
          run.report.skipped.push(m.name);
          run.report.warnings.push(`${m.name} runs outside a transaction and cannot be tried in a dry run`);
          continue;
        }
        current = m;
        this.emit({ type: 'migration-start', name: m.name, transactional: true });
        const t0 = this.clock.now();
        started = t0;
        const elapsed = () => Math.round(this.clock.now() - t0);
        let durationMs = 0;
        const record = () => {
          if (!rollback) durationMs = elapsed();
          return recordApplied(this.db, run.ledger, { name: m.name, checksum: m.checksum, durationMs, appliedBy: this.settings.appliedBy });
        };
        const step = { acrossTransactions: previous !== undefined && previous === opts.carried, more: k < last };
        if (!rollback) {
          previous = await this.runInOpenTransaction(m, run, this.validationFor(m), record, previous, step);
          done.push({ name: m.name, durationMs });
          continue;
        }
        try {
          await this.db.query('SAVEPOINT flotilla_dry_run');
          previous = await this.runInOpenTransaction(m, run, this.validationFor(m), record, previous, step);
          await this.db.query('RELEASE SAVEPOINT flotilla_dry_run');
        } catch (e) {
          await this.db.query('ROLLBACK TO SAVEPOINT flotilla_dry_run').catch(() => {});
          await this.failed(run.report, m, [m], this.asMigrationError(m, e, undefined));
          return { ok: false };
        }
        // alone behind its savepoint: the file's time runs to its end
        this.applied(run.report, { name: m.name, durationMs: elapsed() });
      }
      if (rollback) return { ok: true };
      await run.time('ledger', () => this.lock.commit(current!.name));
      // alone in its transaction, the file's time includes the COMMIT; files sharing one count until their tracking row
      if (group.length === 1) done[0]!.durationMs = Math.round(this.clock.now() - started);
    } catch (e) {
      if (rollback) throw e; // the dry run's plan failed (its files are caught one by one)
      await this.db.query('ROLLBACK').catch(() => {});
      if (!current) throw e;
      await this.failed(run.report, current, group, this.asMigrationError(current, e, undefined));
      return { ok: false };
    } finally {
      if (rollback) await this.db.query('ROLLBACK').catch(() => {});
    }
    for (const d of done) this.applied(run.report, d);
    // structure only (no rows counted): the next group may start from it (see runInOpenTransaction)
    const countsNothing = previous !== undefined && Array.isArray(previous.scope.count) && previous.scope.count.length === 0;
    return { ok: true, carried: countsNothing ? previous : undefined };
  }

  /**
   * Apply one file's statements in the caller's open transaction and validate
   * them. Returns the snapshot after the file, which the next file may reuse
   * as its "before": in the same transaction when it counted the tables the
   * next one can change; across committed transactions only when neither
   * counts rows (structure only: the application changes rows between our
   * transactions, not the schema we hold the migration lock on), which saves a
   * catalog snapshot per file.
   */
  private async runInOpenTransaction(
    m: Migration,
    { ledger, req, time, scopeCache }: RunContext,
    v: { enabled: boolean; options: ValidationOptions },
    /** writes the file's tracking row: before the after-snapshot, so what it fires (a trigger on the tracking table) is validated too */
    record: () => Promise<unknown>,
    previous: Checkpoint | undefined,
    /** acrossTransactions: `previous` was taken in an earlier, committed transaction; more: other files follow in this transaction */
    step: { acrossTransactions: boolean; more: boolean },
  ): Promise<Checkpoint | undefined> {
    const before = !v.enabled
      ? undefined
      : await time('validation', async (): Promise<Checkpoint> => {
          // count only the tables this file can change (core/effects.ts, adapters/pg/row-scope.ts);
          // under --schema, also look at the tables it names elsewhere (ALTER TABLE public.x ...)
          if (!v.options.allowOtherSessions) await refuseOtherSessions(this.db, m.name, m.effects, scopeCache);
          const named = !v.options.allowRowChanges || this.settings.schema ? await validationScope(this.db, m.effects, scopeCache, [ledger]) : undefined;
          const count = v.options.allowRowChanges ? [] : named?.count;
          const look = this.settings.schema ? (named?.look ?? []) : [];
          const reusable = previous && look.every((t) => previous.scope.look?.includes(t) || previous.snapshot.tables[t]);
          if (reusable && (step.acrossTransactions ? count?.length === 0 && previous.scope.count?.length === 0 : covers(previous.scope.count, count)))
            return previous;
          // counting every table means every schema: code we could not see through may write outside --schema;
          // a DROP ... CASCADE may take columns and constraints of tables in any schema
          const everywhere = count === undefined || m.effects.cascades !== false;
          // every table: counted in the tenant's schema, elsewhere read from this transaction's write counters (adapters/pg/snapshot.ts)
          const countIn = count === undefined && this.settings.schema ? [this.settings.schema] : undefined;
          const scope = { ...this.snapshotScope(ledger), count, look, ...(everywhere ? { schemas: [] } : {}), ...(countIn ? { countIn } : {}) };
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
    const restore = () => (step.more ? time('apply', () => restoreInitiallyDeferred(this.db)) : Promise.resolve());
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
    const saved = (
      await this.db.query<{ lt: string; st: string; sp: string }>(
        `SELECT current_setting('lock_timeout') AS lt, current_setting('statement_timeout') AS st, current_setting('search_path') AS sp`,
      )
    ).rows[0]!;
    try {
      return await this.runOutsideTransaction(m, ledger);
    } finally {
      await this.db
        .query(`SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false), set_config('search_path', $3, false)`, [
          saved.lt,
          saved.st,
          saved.sp,
        ])
        .catch(() => {});
    }
  }

  private async runOutsideTransaction(m: Migration, ledger: LedgerLocation): Promise<number> {
    const started = this.clock.now();
    await this.db.query(this.sessionSettings(false));
    // IF NOT EXISTS would silently skip an INVALID index left by an earlier failed build.
    const invalidBefore = await invalidIndexes(this.db, ledger.schema);
    const named = m.statements.map((s) => String((s.node as { idxname?: string }).idxname ?? '')).filter(Boolean);
    const stale = named.filter((n) => invalidBefore.includes(n));
    if (stale.length) {
      throw new MigrationFailedError(
        m.name,
        undefined,
        {
          message: `index ${stale.join(', ')} exists but is INVALID (left by an earlier failed concurrent build)`,
          hint: `DROP INDEX CONCURRENTLY ${stale.map((n) => `${quoteIdent(ledger.schema)}.${quoteIdent(n)}`).join(', ')}; then run the migration again`,
        },
        false,
        'migration',
      );
    }
    for (const s of m.statements) {
      // each statement commits on its own: none starts once the lock is gone
      await this.lock.assertHeld(m.name);
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
    const durationMs = Math.round(this.clock.now() - started);
    // the tracking row commits only while the lock is held
    await this.db.query('BEGIN');
    try {
      await recordApplied(this.db, ledger, { name: m.name, checksum: m.checksum, durationMs, appliedBy: this.settings.appliedBy });
      await this.lock.commit(m.name);
    } catch (e) {
      await this.db.query('ROLLBACK').catch(() => {});
      throw e instanceof LockLostError ? this.lock.lost(m.name, false) : e;
    }
    return durationMs;
  }
}

function statementRef(s: Statement): { index: number; line: number; text: string } {
  const text = s.sql.replace(/^(\s|--[^\n]*\n)+/, '').trim();
  return { index: s.index, line: s.line, text: text.length > 200 ? `${text.slice(0, 197)}...` : text };
}

/** A validation snapshot and what it covered. */
export interface Checkpoint {
  scope: SnapshotScope;
  snapshot: Snapshot;
}

/** Did a snapshot that counted `had` count every table in `need`? (undefined = every table) */
function covers(had: string[] | undefined, need: string[] | undefined): boolean {
  if (had === undefined) return true;
  if (need === undefined) return false;
  return need.every((t) => had.includes(t));
}

export interface GroupOptions {
  /** 'commit' with the lock check, or 'rollback' (a dry run) */
  finish: 'commit' | 'rollback';
  /** the structure-only snapshot after the last committed file, if any */
  carried?: Checkpoint;
}

/** One migrate() run: where the ledger is, what was asked, the report being filled and its timer. */
export interface RunContext {
  ledger: LedgerLocation;
  req: MigrateRequest;
  report: MigrateReport;
  time: Time;
  /** event triggers seen by this run (adapters/pg/row-scope.ts) */
  /** event triggers and session-opening extensions seen by this run (row-scope.ts, other-sessions.ts) */
  scopeCache: OtherSessionsCache;
}

export type Time = <T>(phase: keyof Timings, fn: () => Promise<T>) => Promise<T>;

/** Adds each phase's wall time (ms, 0.1 precision) to `into`. */
export function timer(into: Timings, clock: Clock): Time {
  return async (phase, fn) => {
    const t = clock.now();
    try {
      return await fn();
    } finally {
      into[phase] = Math.round((into[phase] + clock.now() - t) * 10) / 10;
    }
  };
}
