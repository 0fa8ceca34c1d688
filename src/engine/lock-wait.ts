/**
 * How long a migration waited for locks on the target's objects (tables,
 * indexes, ... held by the application's transactions), and how many of its
 * statements hit lock_timeout: the measure behind `rollout --max-lock-wait`
 * (core/dispatch.ts lockWaitP95Over). The migration lock (another runner,
 * MigrateReport.lockWaitMs) is not counted here.
 *
 * Hooked in by wrapping the migration session (Migrator gives the Applier a
 * measured Queryable): every query of the migration is timed, nothing is sent
 * for a query that ends within `afterMs`.
 *
 *  - A statement that fails with lock_not_available (55P03) waited for a lock
 *    until lock_timeout: one lock timeout, and its wait counted (sampled as
 *    below, or its whole duration when it ended before the first sample).
 *  - A query still running after `afterMs` is watched from the lock session
 *    (the engine's second connection, idle in its transaction: nothing else
 *    runs there): every `everyMs`, pg_locks says whether the migration's
 *    backend waits for a lock and since when (`waitstart`, Postgres 14+; read
 *    through to_jsonb so an older server answers null instead of failing the
 *    lock session's transaction). A wait counts from its waitstart to the last
 *    sample that saw it (to the error for a lock timeout): exact start, end
 *    late by less than one sampling interval; waits shorter than `afterMs` are
 *    not seen. One small query on another connection, and only while a
 *    statement runs long: log_lock_waits would need the server's log, and
 *    sampling wait_event alone would not give the start. Waits on a
 *    virtualxid are left out: that is CREATE INDEX CONCURRENTLY waiting for
 *    older transactions to end, which blocks no one.
 *  - Never while a file runs outside a transaction (`watchLocks(false)`): a
 *    sample is a query in the lock session's open transaction, and CREATE
 *    INDEX CONCURRENTLY (REINDEX/DETACH ... CONCURRENTLY) waits for every
 *    transaction that held a snapshot at one of its phases to END: it would
 *    wait for the lock session, which ends only after the migration, until
 *    lock_timeout, and leave an INVALID index. Lock timeouts are still counted.
 */
import type { Queryable } from '../adapters/pg/connection.js';
import type { Clock } from '../core/ports.js';

/** Where the totals go (the run's MigrateReport). */
export interface LockWaitTotals {
  tableLockWaitMs: number;
  lockTimeouts: number;
}

/** The lock session and the migration session's backend pid, once the migration lock is held. */
export interface WaitProbe {
  conn: Queryable;
  pid: number;
}

/**
 * The migration session's ungranted lock, read from the lock session. Sent as a
 * simple query (the pid written in, no parameters): a query sent with the
 * extended protocol leaves the idle-in-transaction lock session holding a
 * snapshot (its xmin stays set), and every later CREATE INDEX CONCURRENTLY of
 * the run then waits for the lock session's transaction, which ends only with
 * the run: lock_timeout, and an INVALID index left behind.
 */
const waitingSql = (pid: number) => `SELECT pg_catalog.to_jsonb(l) OPERATOR(pg_catalog.->>) 'waitstart' AS since,
       pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) (pg_catalog.to_jsonb(l) OPERATOR(pg_catalog.->>) 'waitstart')::pg_catalog.timestamptz) * 1000 AS waited
  FROM pg_catalog.pg_locks l WHERE l.pid OPERATOR(pg_catalog.=) ${Math.trunc(pid)} AND NOT l.granted AND l.locktype OPERATOR(pg_catalog.<>) 'virtualxid' LIMIT 1`;

export class LockWaitMeter {
  private into: LockWaitTotals | undefined;
  private watching = true;
  constructor(
    private readonly clock: Clock,
    private readonly probe: () => WaitProbe | undefined,
    private readonly timing: { afterMs: number; everyMs: number } = { afterMs: 100, everyMs: 100 },
  ) {}

  /** Measure into `totals` from now on (one run at a time, as the Migrator). */
  start(totals: LockWaitTotals): void {
    this.into = totals;
  }

  /** Whether long queries may be watched from the lock session: false while a file runs outside a transaction (see above). */
  watchLocks(on: boolean): void {
    this.watching = on;
  }

  /** `db` with every query measured; everything else passes through. */
  wrap<Q extends Queryable>(db: Q): Q {
    const query = (...args: unknown[]) => this.measure(() => (db.query as (...a: unknown[]) => Promise<unknown>).apply(db, args));
    return new Proxy(db, {
      get(target, prop) {
        if (prop === 'query') return query;
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  }

  private async measure<T>(run: () => Promise<T>): Promise<T> {
    const into = this.into;
    if (!into) return run();
    const started = this.clock.now();
    let waited = 0;
    let current: { since: string; start: number; seen: number } | undefined;
    let timedOut = false;
    let stop = false;
    let wake: () => void = () => {};
    let watching: Promise<void> | undefined;
    const watch = async () => {
      const p = this.watching ? this.probe() : undefined;
      while (p && !stop) {
        const r = await p.conn.query<{ since: string | null; waited: number | null }>(waitingSql(p.pid)).catch(() => undefined);
        if (!r || stop) return;
        const now = this.clock.now();
        const row = r.rows[0];
        if (current && current.since !== row?.since) {
          waited += current.seen;
          current = undefined;
        }
        if (row?.since && row.waited != null) current = { since: row.since, start: now - Number(row.waited), seen: Number(row.waited) };
        await new Promise<void>((res) => {
          const t = setTimeout(res, this.timing.everyMs);
          wake = () => {
            clearTimeout(t);
            res();
          };
        });
      }
    };
    const timer = this.watching
      ? setTimeout(() => {
          watching = watch();
        }, this.timing.afterMs)
      : undefined;
    try {
      return await run();
    } catch (e) {
      if ((e as { code?: string })?.code === '55P03') {
        timedOut = true;
        into.lockTimeouts++;
      }
      throw e;
    } finally {
      clearTimeout(timer);
      stop = true;
      wake();
      await watching;
      const end = this.clock.now();
      if (current) waited += timedOut ? end - current.start : current.seen;
      // too short to be sampled: the statement waited until lock_timeout
      if (timedOut && waited === 0) waited = end - started;
      into.tableLockWaitMs = Math.round(into.tableLockWaitMs + waited);
    }
  }
}
