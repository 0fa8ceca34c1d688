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
import { changesAnyRows, onlyCreates } from '../core/effects.js';
import type { Migration } from '../core/migration-set.js';
import type { Clock } from '../core/ports.js';
import type { Statement } from '../core/statements.js';
import { DEFAULT_VALIDATION_OPTIONS, diffSnapshots, type ValidationOptions } from '../core/validation.js';
import { inline, part, runBatch, type BatchResult, type Part } from '../adapters/pg/batch.js';
import { quoteIdent, type Queryable } from '../adapters/pg/connection.js';
import {
  DURATION_START_SQL,
  qualified,
  recordApplied,
  recordAppliedQuery,
  removeApplied,
  removeAppliedQuery,
  type LedgerLocation,
} from '../adapters/pg/ledger.js';
import { isLockLostError } from '../adapters/pg/lock.js';
import { codeFreeQuery, scopeQuery, validationScope } from '../adapters/pg/row-scope.js';
import { OTHER_SESSION_EXTENSIONS, refuseOtherSessions, type OtherSessionsCache } from '../adapters/pg/other-sessions.js';
import { INITIALLY_DEFERRED_SQL, setDeferredSql } from '../adapters/pg/deferred.js';
import { ENTER_SAFE_PATH, LEAVE_SAFE_PATH } from '../adapters/pg/safe-path.js';
import { invalidIndexes, readSnapshot, snapshotQuery, takeSnapshot, type SnapshotScope } from '../adapters/pg/snapshot.js';
import type { Snapshot } from '../core/validation.js';
import { explainMigrationFailure } from '../adapters/pg/refusals.js';
import { isRetryable } from '../adapters/pg/sqlstate.js';
import type { LockSession } from './lock-session.js';
import type { Emit, EngineSettings, MigrateReport, MigrateRequest, Timings } from './types.js';

/** A clock mark in a batch: when the batch arrived (s) and now (t), seconds since the epoch. */
const MARK = `SELECT pg_catalog.date_part('epoch', pg_catalog.statement_timestamp()) AS s, pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) AS t`;
/** many small catalog subplans look expensive to the planner: JIT would compile the scope query for seconds (row-scope.ts) */
const JIT_OFF = `SELECT pg_catalog.set_config('flotilla.jit', pg_catalog.current_setting('jit'), true), pg_catalog.set_config('jit', 'off', true)`;
const JIT_BACK = `SELECT pg_catalog.set_config('jit', pg_catalog.current_setting('flotilla.jit'), true)`;
/** raised by the scope guard of a batch (Applier.guardSql) */
const SCOPE_MARKER = 'flotilla: this file needs the careful validation path';
/** raised by the code-free guard of a batch (Applier.codeFreeGuardSql) */
const CODE_MARKER = 'flotilla: user code within reach, this file needs the scope query';

function isGuard(e: unknown, marker: string): boolean {
  const err = e as { code?: string; message?: string };
  return err?.code === '22P02' && typeof err.message === 'string' && err.message.includes(marker);
}

/** The COMMIT of the group before did not happen (carried in a batch that failed). */
class PendingCommitFailed extends Error {
  constructor(readonly error: unknown) {
    super('the COMMIT of the previous group failed');
  }
}

/**
 * Line comments naming the file and quoting its first lines: a batch starts
 * with our own queries, and pg_stat_activity shows only the first 1 kB of it
 * (track_activity_query_size), so this is what an operator sees there.
 */
function signature(m: Migration): string {
  const lines = m.statements
    .map((s) => s.sql)
    .join('\n')
    .slice(0, 600)
    .split(/\r\n|\r|\n/)
    .filter((l) => l.trim());
  return [`flotilla: ${m.name}`, ...lines].map((l) => `-- ${l.replace(/[\r\n]/g, ' ')}`).join('\n');
}

function interrupted(m: Migration, s: Statement): MigrationFailedError {
  return new MigrationFailedError(m.name, statementRef(s), { code: '57014', message: 'interrupted: the worker is shutting down' }, true, 'transient');
}

/** Adds `ms` to a phase (0.1 precision), as timer() does. */
function add(into: Timings, phase: keyof Timings, ms: number): void {
  into[phase] = Math.round((into[phase] + Math.max(0, ms)) * 10) / 10;
}

/** SQLSTATEs a failed batch is not run again for (batchFailed): lock_not_available, deadlock, serialization, canceled (statement_timeout), insufficient resources, operator intervention. */
const NO_REPLAY = /^(55P03|40P01|40001|57014|53...|57P0.)$/;

export class Applier {
  constructor(
    private readonly db: Queryable,
    private readonly settings: Readonly<EngineSettings>,
    private readonly emit: Emit,
    private readonly clock: Clock,
    private readonly lock: LockSession,
  ) {}

  /** A file made of non-transactional statements, alone and outside a transaction. False when it failed. */
  async applyAlone(m: Migration, run: RunContext): Promise<boolean> {
    const { ledger, report, time } = run;
    // not guessed: it may make an index whose expression calls a built-in that runs SQL text (see runFile)
    run.scopeCache.treesClean = false;
    this.emit({ type: 'migration-start', name: m.name, transactional: false });
    try {
      const durationMs = await time('apply', () => this.applyOutsideTransaction(m, ledger, run));
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

  /**
   * The file's tracking-table change, in its transaction: an up file's row is
   * written; a down file (run.reverting) removes the rows of the migration it reverts.
   */
  private track(run: RunContext, m: Migration, durationMs: number): Promise<void> {
    const rows = run.reverting?.get(m.name);
    if (rows) return removeApplied(this.db, run.ledger, rows);
    return recordApplied(this.db, run.ledger, { name: m.name, checksum: m.checksum, durationMs, appliedBy: this.settings.appliedBy });
  }

  /** track() as one query for the file's batch (the server measures an up file's duration: recordAppliedQuery). */
  private trackQuery(run: RunContext, m: Migration) {
    const rows = run.reverting?.get(m.name);
    if (rows) return removeAppliedQuery(run.ledger, rows);
    return recordAppliedQuery(run.ledger, { name: m.name, checksum: m.checksum, appliedBy: this.settings.appliedBy });
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
   * triggers, validation (runFile: one round trip per file); then
   *   finish 'commit':   the group is validated and its transaction left open,
   *                      waiting for settle(): "lock still held?" + COMMIT in one
   *                      round trip, alone or (req.deferCommits) in front of the
   *                      next file's batch. Any failure rolls the whole group back.
   *                      A single file is a group of one; --single-transaction
   *                      groups consecutive files. `migration-done` follows the COMMIT.
   *   finish 'rollback': a dry run. Each file behind a savepoint, so a failure
   *                      is explained inside the transaction and ends the run;
   *                      non-transactional files are skipped; ROLLBACK at the end.
   * `files` may be found once the transaction is open (the dry run plans in it).
   * Fills the report and emits the events; `ok` is false when a file failed
   * (or the COMMIT of the group before it).
   */
  async applyGroup(files: Migration[] | (() => Promise<Migration[]>), opts: GroupOptions, run: RunContext): Promise<{ ok: boolean; carried?: Checkpoint }> {
    const rollback = opts.finish === 'rollback';
    const known = typeof files === 'function' ? undefined : files;
    if (!rollback && known?.some((m) => !m.transactional)) throw new Error('Migrator: a non-transactional file in a committed group');
    if (rollback && this.pending) throw new Error('Migrator: a dry run after an uncommitted group');
    const validated = rollback || !!known?.some((m) => this.validationFor(m).enabled);
    // the COMMIT of the group before (deferCommits), and this transaction's start: sent with the first file
    let prefix: Part[] = [];
    if (this.pending) {
      const commit = await this.pendingCommitPart(run);
      if (!commit) return { ok: false };
      prefix.push(commit);
    }
    // BEGIN and two or three SET LOCAL (counted, not split: a schema's name may hold "; ")
    prefix.push({
      text: `BEGIN${validated ? ' ISOLATION LEVEL REPEATABLE READ' : ''}; ${this.sessionSettings(true)}`,
      statements: 1 + (this.settings.schema ? 3 : 2),
    });
    this.restoreDeferred = undefined;
    const group = known ?? [];
    const done: { name: string; durationMs: number }[] = [];
    let current: Migration | undefined;
    let previous = opts.carried;
    try {
      if (!known) {
        await run.time('apply', () => this.send(prefix, run));
        prefix = [];
        group.push(...(await (files as () => Promise<Migration[]>)()));
      }
      const last = group.length - 1;
      for (const [k, m] of group.entries()) {
        if (!m.transactional) {
          run.report.skipped.push(m.name);
          run.report.warnings.push(`${m.name} runs outside a transaction and cannot be tried in a dry run`);
          continue;
        }
        current = m;
        const t0 = this.clock.now();
        const step = { acrossTransactions: previous !== undefined && previous === opts.carried, more: k < last };
        if (this.restoreDeferred) prefix.push(part(this.restoreDeferred));
        this.restoreDeferred = undefined;
        if (!rollback) {
          previous = await this.runFile(m, run, this.validationFor(m), previous, step, prefix);
          prefix = [];
          done.push({ name: m.name, durationMs: Math.round(this.clock.now() - t0) });
          continue;
        }
        try {
          prefix.push(part('SAVEPOINT flotilla_dry_run'));
          previous = await this.runFile(m, run, this.validationFor(m), previous, step, prefix);
          prefix = [part('RELEASE SAVEPOINT flotilla_dry_run')];
        } catch (e) {
          await this.db.query('ROLLBACK TO SAVEPOINT flotilla_dry_run').catch(() => {});
          this.announce(m);
          await this.failed(run.report, m, [m], this.asMigrationError(m, e, undefined));
          return { ok: false };
        }
        // alone behind its savepoint: the file's time runs to its end
        this.applied(run.report, { name: m.name, durationMs: Math.round(this.clock.now() - t0) });
      }
      if (rollback) return { ok: true };
      this.pending = { group, done };
    } catch (e) {
      if (e instanceof PendingCommitFailed) return this.pendingFailed(run, e.error);
      if (rollback) throw e; // the dry run's plan failed (its files are caught one by one)
      await this.db.query('ROLLBACK').catch(() => {});
      if (!current) throw e;
      this.announce(current);
      await this.failed(run.report, current, group, this.asMigrationError(current, e, undefined));
      return { ok: false };
    } finally {
      if (rollback) await this.db.query('ROLLBACK').catch(() => {});
    }
    // structure only (no rows counted): the next group may start from it (see runFile)
    const countsNothing = previous !== undefined && Array.isArray(previous.scope.count) && previous.scope.count.length === 0;
    return { ok: true, carried: countsNothing ? previous : undefined };
  }

  /**
   * COMMIT the validated group waiting for it (applyGroup), with the lock check,
   * and `after` (queries run once it committed, such as the post-commit checks) in
   * the same round trip. `ok` false: the group failed (reported); `results`: the
   * batch's, when `after` ran. Nothing waiting: ok, no round trip.
   */
  async settle(run: RunContext, after: Part[] = []): Promise<{ ok: boolean; results?: BatchResult }> {
    const pending = this.pending;
    if (!pending) return { ok: true };
    const commit = await this.pendingCommitPart(run);
    if (!commit) return { ok: false };
    const t0 = this.clock.now();
    try {
      // with `after`: a clock mark after the COMMIT, so the COMMIT's time is told apart (head(1))
      const results = await runBatch(this.db, after.length ? [commit, part(MARK), ...after] : [commit]);
      const wall = this.clock.now() - t0;
      const mark = results.head(1)[0];
      add(run.report.timings, 'ledger', after.length && mark ? (Number(mark.t) - Number(mark.s)) * 1000 : wall);
      // alone in its transaction, the file's time includes the COMMIT (unless it was sent with the next file)
      this.committed(run, pending.group.length === 1 && !run.req.deferCommits ? wall : 0);
      return { ok: true, results };
    } catch (e) {
      try {
        await this.resolvePending(run, e);
      } catch (failed) {
        if (failed instanceof PendingCommitFailed) return this.pendingFailed(run, failed.error);
        throw failed;
      }
      // committed: what failed is `after`, which the caller may run again on its own
      return { ok: true };
    }
  }

  /** An unexpected error ends the run: a group still waiting for its COMMIT is rolled back. */
  async abandon(): Promise<void> {
    if (!this.pending) return;
    this.pending = undefined;
    await this.db.query('ROLLBACK').catch(() => {});
  }

  /** the validated group whose COMMIT has not been sent yet */
  private pending: { group: Migration[]; done: { name: string; durationMs: number }[] } | undefined;
  /** the COMMIT of `pending` is in the batch being sent */
  private commitInFlight = false;
  /** SET CONSTRAINTS ... DEFERRED for the next file of this transaction (adapters/pg/deferred.ts) */
  private restoreDeferred: string | undefined;
  /** files whose migration-start was emitted */
  private readonly announced = new WeakSet<Migration>();

  private announce(m: Migration): void {
    if (this.announced.has(m)) return;
    this.announced.add(m);
    this.emit({ type: 'migration-start', name: m.name, transactional: true });
  }

  /** The check + COMMIT of the waiting group; undefined (and the group failed, reported) when the lock is known lost. */
  private async pendingCommitPart(run: RunContext): Promise<Part | undefined> {
    const last = this.pending!.group[this.pending!.group.length - 1]!;
    try {
      const commit = this.lock.commitPart(last.name);
      this.commitInFlight = true;
      return commit;
    } catch (e) {
      await this.pendingFailed(run, e);
      return undefined;
    }
  }

  /** The waiting group committed: its files are applied. */
  private committed(run: RunContext, commitMs = 0): void {
    const pending = this.pending;
    this.pending = undefined;
    this.commitInFlight = false;
    if (!pending) return;
    if (commitMs && pending.done.length === 1) pending.done[0]!.durationMs += Math.round(commitMs);
    for (const d of pending.done) this.applied(run.report, d);
  }

  /** The waiting group did not commit: roll it back, report it on its last file. */
  private async pendingFailed(run: RunContext, e: unknown): Promise<{ ok: false }> {
    const pending = this.pending;
    this.pending = undefined;
    this.commitInFlight = false;
    await this.db.query('ROLLBACK').catch(() => {});
    if (pending) {
      const last = pending.group[pending.group.length - 1]!;
      await this.failed(run.report, last, pending.group, e instanceof LockLostError ? e : this.asMigrationError(last, e, undefined));
    }
    return { ok: false };
  }

  /**
   * A batch that carried the waiting group's COMMIT failed with `e`: did the
   * COMMIT happen? A lost lock fails the check before it; otherwise the
   * tracking table says (only the lock holder writes it). Committed: marked so,
   * and the error belongs to what followed. Not: PendingCommitFailed.
   */
  private async resolvePending(run: RunContext, e: unknown): Promise<void> {
    if (!this.commitInFlight) return;
    const last = this.pending!.group[this.pending!.group.length - 1]!;
    if (isLockLostError(e)) throw new PendingCommitFailed(this.lock.lost(last.name, true));
    await this.db.query('ROLLBACK').catch(() => {});
    let committed: boolean;
    try {
      const r = await this.db.query(`SELECT EXISTS (SELECT 1 FROM ${qualified(run.ledger)} WHERE name = $1) AS done`, [last.name]);
      committed = r.rows[0]!.done === true;
    } catch {
      committed = false;
    }
    if (!committed) throw new PendingCommitFailed(e);
    this.committed(run);
  }

  /** Send a prefix alone (before the careful path's round trips, or a dry run's plan). */
  private async send(prefix: Part[], run: RunContext): Promise<void> {
    if (!prefix.length) return;
    try {
      await runBatch(this.db, prefix);
    } catch (e) {
      await this.resolvePending(run, e);
      throw e;
    }
    if (this.commitInFlight) this.committed(run);
  }

  /**
   * Apply one file in the open transaction and validate it, in one round trip
   * when it can (a batch, adapters/pg/batch.ts): `prefix` (the COMMIT of the
   * group before, BEGIN, settings), then
   *   SAVEPOINT; [scope guard; before-snapshot]; the statements; tracking row;
   *   deferred triggers fired; after-snapshot; [INITIALLY DEFERRED constraints]
   * with clock marks between them for the timings. The tracking row comes
   * before the after-snapshot, so what it fires (a trigger on the tracking
   * table) is validated too.
   *
   * Which tables to count is asked in the same round trip, as a guard: a file
   * that writes no table by name can usually be validated on structure alone,
   * and the guard checks that (the row scope, adapters/pg/row-scope.ts, counts
   * nothing but the tracking table, and under --schema every table the file
   * names is in the snapshot), failing the batch before any statement of the
   * file runs otherwise. Then, and for files that write tables, the careful
   * path: other sessions refused, scope and before-snapshot in round trips of
   * their own (checkpointBefore), then the batch without the guard.
   * On a database tenant, the guard is first the code-free probe (row-scope.ts
   * codeFreeQuery: index probes, a fraction of a millisecond, where the scope
   * query costs 5 to 40); when it fails, the file is sent again with the scope
   * query's guard (`path` 'scope'), and so is every later file of the run.
   * A file that only creates (core/effects.ts onlyCreates) where creation is
   * allowed takes no snapshot at all: there is no structure to compare.
   *
   * Returns the snapshot after the file, which the next file may reuse as its
   * "before": in the same transaction when it counted the tables the next one
   * can change; across committed transactions only when neither counts rows
   * (structure only: the application changes rows between our transactions,
   * not the schema we hold the migration lock on), which saves a catalog
   * snapshot per file.
   */
  private async runFile(
    m: Migration,
    run: RunContext,
    v: { enabled: boolean; options: ValidationOptions },
    previous: Checkpoint | undefined,
    /** acrossTransactions: `previous` was taken in an earlier, committed transaction; more: other files follow in this transaction */
    step: { acrossTransactions: boolean; more: boolean },
    prefix: Part[],
    /** 'careful': the scope and before-snapshot in round trips of their own; 'scope': the scope query's guard, never the code-free one */
    path: 'guard' | 'scope' | 'careful' = 'guard',
  ): Promise<Checkpoint | undefined> {
    const { req, ledger } = run;
    if (req.signal?.aborted) {
      // what is validated still commits
      await this.send(prefix, run);
      throw interrupted(m, m.statements[0]!);
    }
    const guess = v.enabled && path !== 'careful' ? this.guess(m, ledger, previous, step, v.options) : undefined;
    // a database with no user code at all: index probes stand for the scope query (row-scope.ts codeFreeQuery)
    const codeFree = !!guess && path === 'guard' && !this.settings.schema && run.scopeCache.codeFree !== false;
    let before: Checkpoint | undefined;
    if (v.enabled && !guess) {
      // the careful path's queries run on the system schemas' path (adapters/pg/safe-path.ts); the batch gives the file its own back
      await run.time('ledger', () => this.send([...prefix, part(ENTER_SAFE_PATH)], run));
      prefix = [];
      before = await run.time('validation', () => this.checkpointBefore(m, run, v, previous, step));
    }
    if (!req.deferCommits || !this.commitInFlight) this.announce(m);

    // the batch: parts read from the start (head) up to the statements, from the end (tail) after them;
    // it opens with the file's name and first lines, which is what pg_stat_activity shows of it
    // the engine's own statements run on the system schemas' path, the file's on its own (adapters/pg/safe-path.ts);
    // after the careful path's round trips (run on the safe path) the file's path is given back before the savepoint
    const parts: Part[] = [
      { text: signature(m), statements: 0 },
      ...prefix,
      ...(before ? [part(LEAVE_SAFE_PATH)] : []),
      part('SAVEPOINT flotilla_batch'),
      part(ENTER_SAFE_PATH),
    ];
    const at = (p: Part) => parts.push(p) - 1;
    const start = at(part(MARK));
    let snapshotAt: number | undefined;
    const trees = !run.scopeCache.treesClean;
    if (codeFree) at(part(this.codeFreeGuardSql(m, ledger, trees)));
    else if (guess) {
      at(part(JIT_OFF));
      at(part(this.guardSql(m, ledger, guess.covered, guess.coversSchema ? this.settings.schema : undefined)));
      at(part(JIT_BACK));
    }
    if (guess) {
      if (guess.scope) snapshotAt = at(part(snapshotQuery(guess.scope)));
    }
    const statementsStart = at(part(MARK));
    at(part(LEAVE_SAFE_PATH));
    at(part(DURATION_START_SQL));
    parts.push({ text: m.statements.map((s) => s.sql).join('\n;\n'), statements: m.statements.length });
    const tail: Part[] = [];
    const atTail = (p: Part) => tail.push(p) - 1;
    const a = atTail(part(MARK));
    // the tracking row on the file's path (a trigger on the tracking table is the user's code); every name in it qualified
    atTail(part(this.trackQuery(run, m)));
    const b = atTail(part(MARK));
    // deferred triggers fire now, not at COMMIT after the snapshot (adapters/pg/deferred.ts): the user's code, on the file's path
    atTail(part('SET CONSTRAINTS ALL IMMEDIATE'));
    // then the engine's catalog queries on the system schemas' path; the path the file left is saved for the next file
    atTail(part(ENTER_SAFE_PATH));
    const c = atTail(part(MARK));
    const scope = before?.scope ?? guess?.reuse?.scope ?? guess?.scope;
    const after = scope ? atTail(part(snapshotQuery(scope))) : undefined;
    const d = scope ? atTail(part(MARK)) : c;
    // other files follow in this transaction: give them the INITIALLY DEFERRED defaults back
    const deferred = step.more ? atTail(part(INITIALLY_DEFERRED_SQL)) : undefined;
    atTail(part(LEAVE_SAFE_PATH));
    // no savepoint left behind: a later batch failing before its own must not find this one
    atTail(part('RELEASE SAVEPOINT flotilla_batch'));
    parts.push(...tail);
    const fromEnd = (i: number) => tail.length - i; // tail index -> tail(k)

    const t0 = this.clock.now();
    let res: BatchResult;
    try {
      res = await runBatch(this.db, parts);
    } catch (e) {
      const next = await this.batchFailed(run, m, e);
      // a failed batch is the file's time too (a statement that waited for a lock until lock_timeout, metrics' apply
      // phase); the scope guard stopping it early was the validation's
      add(run.report.timings, next === 'careful' || next === 'scope' ? 'validation' : 'apply', this.clock.now() - t0);
      if (next === 'scope') run.scopeCache.codeFree = false;
      if (next === 'careful' || next === 'scope') return this.runFile(m, run, v, previous, step, [], next);
      throw next;
    }
    const wall = this.clock.now() - t0;
    if (this.commitInFlight) this.committed(run);
    this.announce(m);
    // the probe's expression-tree checks held (codeFreeQuery): later guessed files may leave them out; a file that was
    // not guessed may have made a view or CHECK calling a built-in that runs SQL text: check the trees again after it
    if (codeFree && trees) run.scopeCache.treesClean = true;
    if (!guess) run.scopeCache.treesClean = false;

    // timings from the server's clock: [batch start] prefix [start] guard + before [statementsStart] statements
    // [a] tracking row [b] deferred triggers [c] after-snapshot [d]; the rest (the round trip) is the statements'
    const mark = (rows: any[]) => Number(rows[0]?.t ?? 0) * 1000;
    const first = res.head(start)[0] ?? {};
    const received = Number(first.s ?? 0) * 1000;
    const [s0, s1] = [mark(res.head(start)), mark(res.head(statementsStart))];
    const [ta, tb, tc, td] = [a, b, c, d].map((i) => mark(res.tail(fromEnd(i)))) as [number, number, number, number];
    const server = { ledger: s0 - received + (tb - ta), validation: s1 - s0 + (td - tc), apply: ta - s1 + (tc - tb) };
    add(run.report.timings, 'ledger', server.ledger);
    add(run.report.timings, 'validation', server.validation);
    add(run.report.timings, 'apply', Math.max(0, wall - server.ledger - server.validation));

    if (deferred !== undefined) this.restoreDeferred = setDeferredSql(res.tail(fromEnd(deferred)));
    if (!scope) return undefined;
    if (guess && !guess.reuse) before = { scope: guess.scope!, snapshot: readSnapshot(res.head(snapshotAt!)) };
    before ??= guess?.reuse;
    const snapshot = readSnapshot(res.tail(fromEnd(after!)));
    const result = diffSnapshots(before!.snapshot, snapshot, v.options);
    if (!result.valid) throw new ValidationFailedError(m.name, result.issues);
    return { scope: before!.scope, snapshot };
  }

  /**
   * A file's batch failed. The COMMIT it carried (if any) is resolved first
   * (resolvePending). Then, back at the file's savepoint: the scope guard means
   * "take the careful path"; anything else is the file's error, found again by
   * running its statements one by one, so the error names the statement that
   * failed and its line (an error that does not happen again, the deferred
   * triggers, is reported as it was, for the file). Never for a lock timeout, a
   * deadlock, a statement timeout (NO_REPLAY): running the file again would wait
   * on the tenant's traffic a second time.
   */
  private async batchFailed(run: RunContext, m: Migration, e: unknown): Promise<'careful' | 'scope' | unknown> {
    // the carried COMMIT's check failed: the transaction it was for is aborted, nothing after the check ran
    if (this.commitInFlight && isLockLostError(e)) await this.resolvePending(run, e);
    const atSavepoint = await this.db.query('ROLLBACK TO SAVEPOINT flotilla_batch').then(
      () => true,
      () => false,
    );
    if (!atSavepoint) {
      // it failed before the file's savepoint: the COMMIT carried, BEGIN or the session settings
      await this.resolvePending(run, e);
      return this.asMigrationError(m, e, undefined);
    }
    if (this.commitInFlight) this.committed(run);
    this.announce(m);
    if (isGuard(e, SCOPE_MARKER)) return 'careful';
    if (isGuard(e, CODE_MARKER)) return 'scope';
    // waiting again would block the tenant's traffic a second time (a lock timeout twice as long, a deadlock
    // risked again): reported as it was, named by its statement only when the file has one
    const code = (e as { code?: unknown })?.code;
    if (typeof code === 'string' && NO_REPLAY.test(code)) return this.asMigrationError(m, e, m.statements.length === 1 ? m.statements[0] : undefined, true);
    for (const s of m.statements) {
      if (run.req.signal?.aborted) return interrupted(m, s);
      try {
        await this.db.query(s.sql);
      } catch (again) {
        return this.asMigrationError(m, again, s, true);
      }
    }
    return this.asMigrationError(m, e, undefined);
  }

  /**
   * Can this file's scope be guessed ("counts nothing") and checked by the
   * batch's guard? Not for a file that writes tables by name, may change any
   * rows, cascades, or creates an extension that opens other sessions: those
   * take the careful path. The guess reuses `previous` when the careful path
   * would (counting nothing), else takes a structure-only before-snapshot in the
   * batch. `covered`: under --schema, the tables the snapshot holds outside it.
   */
  private guess(
    m: Migration,
    ledger: LedgerLocation,
    previous: Checkpoint | undefined,
    step: { acrossTransactions: boolean },
    options: ValidationOptions,
  ): { reuse?: Checkpoint; scope?: SnapshotScope; covered?: string[]; coversSchema?: boolean } | undefined {
    const fx = effectsOf(m, ledger);
    if (changesAnyRows(fx) || fx.cascades !== false || fx.writes.length) return undefined;
    if ((fx.extensions ?? []).some((e) => OTHER_SESSION_EXTENSIONS.includes(e))) return undefined;
    const schemaMode = !!this.settings.schema;
    // only new objects, created where creation is allowed: no structure to compare, no snapshot (core/effects.ts onlyCreates)
    if (options.allowTableCreation && onlyCreates(m.statements)) return {};
    if (previous && (!step.acrossTransactions || previous.scope.count?.length === 0)) {
      return { reuse: previous, covered: schemaMode ? [...(previous.scope.look ?? []), ...Object.keys(previous.snapshot.tables)] : undefined };
    }
    // a snapshot taken in the batch, right before the statements: every table of the tenant's schema is in it
    return { scope: { ...this.snapshotScope(ledger), count: [], look: [] }, covered: schemaMode ? [] : undefined, coversSchema: schemaMode };
  }

  /**
   * The guard: fails (22P02, SCOPE_MARKER) unless the row scope of the file
   * counts nothing but the tracking table and, under --schema, every table the
   * file names is `covered` (the careful path would otherwise look at it).
   */
  private guardSql(m: Migration, ledger: LedgerLocation, covered: string[] | undefined, schema?: string): string {
    const own = [`${ledger.schema}.${ledger.table}`];
    const list = (xs: string[]) => `${inline({ text: '$1', values: [xs] })}::pg_catalog.text[]`;
    // `schema`: every table of the tenant's schema is covered too ("schema.table" names start with "schema.")
    const prefix = schema === undefined ? '' : inline({ text: '$1', values: [`${schema}.`] });
    const inSchema = schema === undefined ? 'false' : `pg_catalog.left(x, pg_catalog.length(${prefix})) OPERATOR(pg_catalog.=) ${prefix}`;
    const named =
      covered === undefined
        ? ''
        : ` AND NOT EXISTS (SELECT FROM pg_catalog.unnest(s.named) AS x WHERE NOT (${inSchema}) AND NOT x OPERATOR(pg_catalog.=) ANY (${list([...covered, ...own])}))`;
    return `SELECT CAST(CASE WHEN NOT s.everything AND s.tables OPERATOR(pg_catalog.<@) ${list(own)}${named} THEN '1' ELSE '${SCOPE_MARKER}' END AS pg_catalog.int4) AS flotilla_scope
      FROM (${inline(scopeQuery(effectsOf(m, ledger), [ledger]))}) s`;
  }

  /** The code-free guard: fails (22P02, CODE_MARKER) unless no user code is within the file's reach (row-scope.ts codeFreeQuery). */
  private codeFreeGuardSql(m: Migration, ledger: LedgerLocation, trees: boolean): string {
    return `SELECT CAST(CASE WHEN g.code_free THEN '1' ELSE '${CODE_MARKER}' END AS pg_catalog.int4) AS flotilla_code_free
      FROM (${codeFreeQuery(qualified(ledger), effectsOf(m, ledger).functions, { trees })}) g`;
  }

  /**
   * The careful "before": other sessions refused, the row scope asked, then the
   * previous snapshot reused or a new one taken, each a round trip of its own.
   */
  private async checkpointBefore(
    m: Migration,
    { ledger, scopeCache }: RunContext,
    v: { enabled: boolean; options: ValidationOptions },
    previous: Checkpoint | undefined,
    step: { acrossTransactions: boolean },
  ): Promise<Checkpoint> {
    // count only the tables this file can change (core/effects.ts, adapters/pg/row-scope.ts);
    // under --schema, also look at the tables it names elsewhere (ALTER TABLE public.x ...)
    const fx = effectsOf(m, ledger);
    if (!v.options.allowOtherSessions) await refuseOtherSessions(this.db, m.name, fx, scopeCache);
    const named = !v.options.allowRowChanges || this.settings.schema ? await validationScope(this.db, fx, scopeCache, [ledger]) : undefined;
    const count = v.options.allowRowChanges ? [] : named?.count;
    const look = this.settings.schema ? (named?.look ?? []) : [];
    const reusable = previous && look.every((t) => previous.scope.look?.includes(t) || previous.snapshot.tables[t]);
    if (reusable && (step.acrossTransactions ? count?.length === 0 && previous.scope.count?.length === 0 : covers(previous.scope.count, count)))
      return previous;
    // counting every table means every schema: code we could not see through may write outside --schema;
    // a DROP ... CASCADE may take columns and constraints of tables in any schema
    const everywhere = count === undefined || fx.cascades !== false;
    // every table: counted in the tenant's schema, elsewhere read from this transaction's write counters (adapters/pg/snapshot.ts)
    const countIn = count === undefined && this.settings.schema ? [this.settings.schema] : undefined;
    const scope = { ...this.snapshotScope(ledger), count, look, ...(everywhere ? { schemas: [] } : {}), ...(countIn ? { countIn } : {}) };
    return { scope, snapshot: await takeSnapshot(this.db, scope) };
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
  private async applyOutsideTransaction(m: Migration, ledger: LedgerLocation, run: RunContext): Promise<number> {
    // SET (unlike SET LOCAL) outlives the migration: give the caller its session back as it was
    const saved = (
      await this.db.query<{ lt: string; st: string; sp: string }>(
        `SELECT pg_catalog.current_setting('lock_timeout') AS lt, pg_catalog.current_setting('statement_timeout') AS st, pg_catalog.current_setting('search_path') AS sp`,
      )
    ).rows[0]!;
    try {
      return await this.runOutsideTransaction(m, ledger, run);
    } finally {
      await this.db
        .query(
          `SELECT pg_catalog.set_config('lock_timeout', $1, false), pg_catalog.set_config('statement_timeout', $2, false), pg_catalog.set_config('search_path', $3, false)`,
          [saved.lt, saved.st, saved.sp],
        )
        .catch(() => {});
    }
  }

  private async runOutsideTransaction(m: Migration, ledger: LedgerLocation, run: RunContext): Promise<number> {
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
      await this.track(run, m, durationMs);
      await this.lock.commit(m.name);
    } catch (e) {
      await this.db.query('ROLLBACK').catch(() => {});
      throw e instanceof LockLostError ? this.lock.lost(m.name, false) : e;
    }
    return durationMs;
  }
}

/**
 * A file's row effects as the engine runs it: the tracking row is written after
 * the file's statements, in its transaction, so what the file puts on the
 * tracking table (a trigger, a rule, a default, a view in its place) runs then,
 * after every guard was asked, with code the guards never saw (a trigger
 * function that deletes rows elsewhere). A file that names a relation of the
 * tracking table's name, in any schema, may change any rows: every table is
 * counted. That may count more than needed, never less.
 */
function effectsOf(m: Migration, ledger: LedgerLocation): Migration['effects'] {
  const named = (r: { relname?: string } | undefined) => r?.relname === ledger.table;
  const onTracking =
    m.effects.relations === undefined ||
    m.effects.relations.some((r) => r.name === ledger.table) ||
    m.statements.some((s) => (s.kind === 'CreateTrigStmt' || s.kind === 'RuleStmt') && named((s.node as { relation?: { relname?: string } }).relation));
  return onTracking ? { ...m.effects, any: true } : m.effects;
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
  /** the direction: set for a revert, down file name -> the tracking rows its commit removes (else each file's row is written) */
  reverting?: ReadonlyMap<string, readonly string[]>;
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
