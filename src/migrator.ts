/**
 * The engine: the one way Flotilla applies migrations, used by the CLI, the
 * fleet workers and dry runs alike.
 *
 *   read ledger -> plan -> (nothing pending? done: one query, no lock)
 *   -> advisory lock, on a lock session of its own (engine/lock-session.ts)
 *   -> ensure ledger -> re-read and re-plan under the lock
 *   -> each pending file, in a transaction owned by the engine (engine/apply.ts):
 *        snapshot -> statements -> tracking row -> deferred triggers fired
 *        -> snapshot -> diff -> "lock still held?" + COMMIT (one round trip)
 *      (a validation failure, a lost lock or any error rolls the whole file back;
 *      --single-transaction: consecutive files share one transaction; a dry run
 *      plans, applies and validates in one transaction, then rolls it back)
 *   -> unlock (the lock session ends its transaction)
 *
 * Files made only of non-transactional statements (CREATE INDEX CONCURRENTLY,
 * VACUUM, ...) run statement by statement outside a transaction; the tracking
 * row is written after the last one succeeds.
 */
import { ChangedMigrationError, UnknownMigrationError } from './core/errors.js';
import type { Migration, MigrationSet } from './core/migration-set.js';
import type { Clock } from './core/ports.js';
import { plan, type AppliedRow, type Plan } from './core/plan.js';
import { planRevert, type RevertPairs } from './core/revert.js';
import { baselineAppliedBy, isBaselineRow, planBaseline } from './core/baseline.js';
import type { Queryable } from './adapters/pg/connection.js';
import { ensureLedger, locateLedger, readLedger, readLedgerShape, recordBaseline, resolveLedger, type LedgerLocation } from './adapters/pg/ledger.js';
import { siblingLockSessions } from './adapters/pg/lock.js';
import { part } from './adapters/pg/batch.js';
import { postChecksQueries, readPostChecks } from './adapters/pg/post-checks.js';
import { explainRefusal } from './adapters/pg/refusals.js';
import { systemClock, systemRandom } from './adapters/clock.js';
import { Applier, timer, type Checkpoint, type RunContext } from './engine/apply.js';
import { LockSession } from './engine/lock-session.js';
import { LockWaitMeter } from './engine/lock-wait.js';
import { backendPid } from './adapters/pg/pooler.js';
import {
  DEFAULT_ENGINE_SETTINGS,
  emptyReport,
  type Emit,
  type EngineSettings,
  type MigrateReport,
  type MigrateRequest,
  type MigratorPorts,
  type StatusReport,
  type RevertRequest,
  type BaselineReport,
} from './engine/types.js';

export {
  DEFAULT_ENGINE_SETTINGS,
  type EngineEvent,
  type EngineSettings,
  type MigrateReport,
  type MigrateRequest,
  type MigratorPorts,
  type StatusReport,
  type Timings,
  type RevertRequest,
  type BaselineReport,
} from './engine/types.js';

export class Migrator {
  private readonly settings: EngineSettings;
  private readonly clock: Clock;
  private readonly lock: LockSession;
  private readonly applier: Applier;
  /** lock waits of the migration's queries (engine/lock-wait.ts) */
  private readonly meter: LockWaitMeter;
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
    this.clock = ports.clock ?? systemClock;
    this.lock = new LockSession(db, lockSessions, this.settings, emit, this.clock, ports.random ?? systemRandom);
    this.meter = new LockWaitMeter(this.clock, () => {
      const conn = this.lock.connection;
      const pid = backendPid(db) ?? (db as { processID?: number | null }).processID;
      return conn && pid ? { conn, pid } : undefined;
    });
    // a file outside a transaction (CREATE INDEX CONCURRENTLY) is never watched from the lock session: engine/lock-wait.ts
    const applierEmit: Emit = (ev) => {
      if (ev.type === 'migration-start') this.meter.watchLocks(ev.transactional);
      emit(ev);
    };
    this.applier = new Applier(this.meter.wrap(db), this.settings, applierEmit, this.clock, this.lock);
  }

  /** What is applied, pending, changed or missing. Reads only; creates nothing. */
  async status(set: MigrationSet): Promise<StatusReport> {
    return this.explained('reading the tracking table', () => this.statusOf(set));
  }

  private async statusOf(set: MigrationSet): Promise<StatusReport> {
    const { ledger, read } = await locateLedger(this.db, this.settings.schema, this.settings.trackingTable);
    const rows = read?.rows ?? (await readLedger(this.db, ledger));
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
      baseline: rows.filter(isBaselineRow).map((r) => r.name),
    };
  }

  /**
   * Revert applied migrations with their down files, newest first (core/revert.ts
   * decides which; everything that stops it is refused before anything runs).
   * Each down file goes through the same applyGroup/applyAlone as an up file
   * (validated, committed with the lock check), its commit removing the
   * reverted migration's tracking rows. The report's `applied` lists the down
   * files that ran.
   */
  async revert(pairs: RevertPairs, req: RevertRequest): Promise<MigrateReport> {
    this.phase = 'reading the tracking table';
    return this.explained(
      () => this.phase,
      () => this.runRevert(pairs, req),
    );
  }

  private async runRevert(pairs: RevertPairs, req: RevertRequest): Promise<MigrateReport> {
    const ledger = await this.location();
    const report = emptyReport(ledger.schema, !!req.dryRun);
    this.meter.start(report);
    const time = timer(report.timings, this.clock);
    // refused here, before the lock, when the database as it is cannot be reverted
    const first = planRevert(pairs, await time('plan', () => readLedger(this.db, ledger)), req.select);
    if (!first.length) {
      this.emit({ type: 'found-pending', names: [] });
      return report;
    }
    this.phase = 'taking the migration lock';
    report.lockWaitMs = await time('lock', () => this.lock.acquire(ledger));
    try {
      this.phase = 'reading the tracking table';
      const steps = await time('plan', async () => planRevert(pairs, await readLedger(this.db, ledger), req.select));
      this.phase = 'reverting migrations';
      report.pending = steps.map((s) => s.down.name);
      this.emit({ type: 'found-pending', names: report.pending });
      const run: RunContext = {
        ledger,
        req: { signal: req.signal },
        report,
        time,
        scopeCache: {},
        reverting: new Map(steps.map((s) => [s.down.name, s.rows])),
      };
      // a dry run: every down file in one transaction, rolled back (non-transactional ones cannot be tried)
      if (req.dryRun) {
        await this.applier.applyGroup(
          steps.map((s) => s.down),
          { finish: 'rollback' },
          run,
        );
        return report;
      }
      for (const s of steps) {
        if (req.signal?.aborted) {
          report.interrupted = true;
          break;
        }
        let ok: boolean;
        if (s.down.transactional) {
          // committed now: applyGroup leaves a group's COMMIT waiting for the next batch (engine/apply.ts settle)
          ok = (await this.applier.applyGroup([s.down], { finish: 'commit' }, run)).ok;
          if (ok) ok = (await this.applier.settle(run)).ok;
        } else ok = (await this.applier.settle(run)).ok && (await this.applier.applyAlone(s.down, run));
        if (!ok) break;
      }
      return report;
    } finally {
      await this.applier.abandon();
      await this.lock.release();
    }
  }

  /**
   * Record the files up to `upTo` as applied without running them (core/baseline.ts),
   * under the migration lock, in one transaction; refused (nothing recorded) when
   * no file has that number or one of them is recorded with another checksum.
   */
  async baseline(set: MigrationSet, upTo: bigint): Promise<BaselineReport> {
    this.phase = 'reading the tracking table';
    return this.explained(
      () => this.phase,
      async () => {
        const ledger = await this.location();
        planBaseline(set, await readLedger(this.db, ledger), upTo);
        this.phase = 'taking the migration lock';
        await this.lock.acquire(ledger);
        try {
          this.phase = `creating the tracking table ${ledger.schema}.${ledger.table}`;
          await this.db.query('BEGIN');
          try {
            await ensureLedger(this.db, ledger, { inTransaction: true });
            this.phase = 'recording the baseline';
            const p = planBaseline(set, await readLedger(this.db, ledger), upTo);
            if (p.record.length) await recordBaseline(this.db, ledger, p.record, baselineAppliedBy(this.settings.appliedBy));
            await this.lock.commit(p.record[p.record.length - 1]?.name ?? 'baseline');
            return { schema: ledger.schema, recorded: p.record.map((m) => m.name), already: p.already };
          } catch (e) {
            await this.db.query('ROLLBACK').catch(() => {});
            throw e;
          }
        } finally {
          await this.lock.release();
        }
      },
    );
  }

  async migrate(set: MigrationSet, req: MigrateRequest = {}): Promise<MigrateReport> {
    if (req.only && !set.migrations.some((m) => m.name === req.only)) throw new UnknownMigrationError(req.only);
    this.phase = 'reading the tracking table';
    return this.explained(
      () => this.phase,
      () => this.run(set, req),
    );
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
    // where the tracking table is, and (usually in the same round trip) what it holds: timed as planning
    const started = this.clock.now();
    const { ledger, read: located } = await locateLedger(this.db, this.settings.schema, this.settings.trackingTable);
    const report = emptyReport(ledger.schema, !!req.dryRun);
    this.meter.start(report);
    const time = timer(report.timings, this.clock);
    if (located) report.timings.plan = Math.round((this.clock.now() - started) * 10) / 10;
    const run: RunContext = { ledger, req, report, time, scopeCache: {} };
    // Fast path, no lock: a committed ledger that already has everything is the answer.
    // (No tracking table anywhere, `new`: nothing to read; it is created under the lock.)
    const skip = ledger.how === 'new' && set.migrations.length > 0;
    const read = skip ? { rows: [], complete: false } : (located ?? (await time('plan', () => readLedgerShape(this.db, ledger))));
    const first = this.checkedPlan(set, read.rows);
    if (this.todo(first, req, report).length === 0 && !req.dryRun) return this.finish(report, first);

    this.phase = 'taking the migration lock';
    report.lockWaitMs = await time('lock', () => this.lock.acquire(ledger));
    try {
      if (req.dryRun) {
        // one transaction that plans, applies and validates every pending file, then rolls back
        await this.applier.applyGroup(() => this.planInTransaction(set, run), { finish: 'rollback' }, run);
        return report;
      }
      const p = await time('plan', async () => {
        // a complete tracking table of ours: reading it again under the lock is the whole check (no DDL, one round trip)
        if (read.complete) {
          const again = await readLedgerShape(this.db, ledger);
          if (again.complete) return this.checkedPlan(set, again.rows);
        }
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
      // the snapshot after the last committed file, when it counted no rows (engine/apply.ts runFile)
      let carried: Checkpoint | undefined;
      let ok = true;
      for (let i = 0; i < todo.length; ) {
        if (req.signal?.aborted) {
          report.interrupted = true;
          break;
        }
        const m = todo[i]!;
        if (!m.transactional) {
          i++;
          carried = undefined;
          if (!(await this.applier.settle(run)).ok || !(await this.applier.applyAlone(m, run))) {
            ok = false;
            break;
          }
          continue;
        }
        // a group of one, or with --single-transaction every consecutive transactional file
        let n = 1;
        while (this.settings.singleTransaction && todo[i + n]?.transactional) n++;
        const group = await this.applier.applyGroup(todo.slice(i, i + n), { finish: 'commit', carried }, run);
        i += n;
        // committed now, or (deferCommits) with the next file; the last group's COMMIT takes the post-commit checks along
        if (group.ok && !req.deferCommits && i < todo.length) group.ok = (await this.applier.settle(run)).ok;
        if (!group.ok) {
          ok = false;
          break;
        }
        carried = group.carried;
      }
      if (ok) await this.settleLast(run);
      return report;
    } finally {
      await this.applier.abandon();
      await this.lock.release();
    }
  }

  /** The last COMMIT, and the post-commit checks in its round trip when asked for. */
  private async settleLast(run: RunContext): Promise<void> {
    const { req, report } = run;
    const checks = req.postChecks ? postChecksQueries(report.schema, this.settings.trackingTable) : [];
    const t0 = this.clock.now();
    const ledger = report.timings.ledger;
    const end = await this.applier.settle(
      run,
      checks.map((q) => part(q)),
    );
    if (checks.length && end.results) {
      // what the COMMIT did not take of the round trip went to the checks
      const ms = Math.round((this.clock.now() - t0 - (report.timings.ledger - ledger)) * 10) / 10;
      // the checks and the fingerprint only: the schema's items are for `flotilla drift`, not the job's record
      const { fingerprint, invalidIndexes, notValidConstraints } = readPostChecks(end.results.tail(1));
      report.postChecks = { fingerprint, invalidIndexes, notValidConstraints, ms: Math.max(0, ms) };
    }
  }

  /** A dry run's plan, read inside its transaction: creating the schema or the tracking table rolls back with it. */
  private async planInTransaction(set: MigrationSet, { ledger, req, report }: RunContext): Promise<Migration[]> {
    this.phase = `creating the tracking table ${ledger.schema}.${ledger.table}`;
    this.created(report, await ensureLedger(this.db, ledger, { inTransaction: true }));
    this.phase = 'reading the tracking table';
    const p = this.checkedPlan(set, await readLedger(this.db, ledger));
    this.phase = 'applying migrations';
    const todo = this.todo(p, req, report);
    report.pending = p.pending.map((m) => m.name);
    this.emit({ type: 'found-pending', names: todo.map((m) => m.name) });
    return todo;
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
    for (const d of p.duplicates)
      report.warnings.push(
        `version ${d.version} is recorded ${d.extra.length + 1} times (${[d.kept, ...d.extra].join(', ')}): one migration, not applied again`,
      );
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
}
