/**
 * The control database's pool, made to ride out an outage (a restart, a
 * failover, connections refused for a while): a query or a connect that fails
 * for a transient reason is tried again with backoff, for up to `retryForMs`,
 * and the caller is told once when the database goes away and once when it is
 * back. Only then does the error reach the caller, as a transient
 * ConnectionError (exit 3), never as "unexpected error".
 *
 * What is retried: reads, and writes that are safe to replay (every control
 * write a worker makes is idempotent: record_attempt, dispatch, claim). A
 * process that has never reached the control database retries only what says
 * "not now" (not accepting connections, starting up, too many connections):
 * a wrong host or port fails at once instead of hanging.
 */
import type pg from 'pg';
import { ConnectionError, ControlUnavailableError } from '../core/errors.js';
import { isRetryable } from '../adapters/pg/sqlstate.js';
import { CONTROL_URL_SOURCE, connectionError, describeUrl } from '../adapters/pg/connection.js';

export interface OutageNotices {
  /** the control database stopped answering (once per outage) */
  down?(reason: string, retryForMs: number): void;
  /** it answers again */
  up?(downMs: number): void;
}

export interface ControlRetry extends OutageNotices {
  /** how long one call keeps trying (default 90 s; 0: no retry) */
  retryForMs?: number;
  /** first delay, doubled up to maxDelayMs (jittered) */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export const DEFAULT_CONTROL_RETRY_MS = 90_000;

export { ControlUnavailableError };

/** The server is there but says "not now": worth waiting for even before we ever reached it. */
function saysNotNow(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  return (
    ['53300', '57P01', '57P02', '57P03'].includes(err?.code ?? '') || (err?.code === '55000' && /not currently accepting connections/.test(err.message ?? ''))
  );
}

export function isControlTransient(e: unknown, reachedBefore: boolean): boolean {
  if (e instanceof ControlUnavailableError) return false;
  if (saysNotNow(e)) return true;
  if (!reachedBefore) return false;
  if (e instanceof ConnectionError) return e.kind === 'transient';
  return isRetryable(e) || /timeout exceeded when trying to connect|Connection terminated/i.test((e as Error)?.message ?? '');
}

function reason(e: unknown): string {
  const err = e as { code?: string; message?: string };
  return `${err?.message || String(e)}${err?.code && !(err.message ?? '').includes(err.code) ? ` (${err.code})` : ''}`;
}

/**
 * Runs `fn` again on transient failures until it succeeds or `retryForMs` has
 * passed; shared state per pool so that an outage is announced once, however
 * many calls are waiting on it.
 */
export class ControlRetrier {
  private reached = false;
  private downSince: number | undefined;
  /** calls currently retrying */
  private waiting = 0;
  readonly retryForMs: number;

  constructor(
    private readonly url: string,
    private readonly policy: ControlRetry = {},
  ) {
    this.retryForMs = policy.retryForMs ?? DEFAULT_CONTROL_RETRY_MS;
  }

  async run<R>(fn: () => Promise<R>, retryable: (e: unknown) => boolean = () => true): Promise<R> {
    const started = Date.now();
    let delay = this.policy.baseDelayMs ?? 200;
    let retrying = false;
    try {
      for (;;) {
        try {
          const r = await fn();
          this.reached = true;
          if (retrying) [retrying, this.waiting] = [false, this.waiting - 1];
          // the outage is over once nothing is waiting on it any more
          if (this.downSince !== undefined && this.waiting === 0) {
            const downMs = Date.now() - this.downSince;
            this.downSince = undefined;
            this.policy.up?.(downMs);
          }
          return r;
        } catch (e) {
          if (!retryable(e) || !isControlTransient(e, this.reached)) throw e;
          if (!retrying) [retrying, this.waiting] = [true, this.waiting + 1];
          if (this.downSince === undefined) {
            this.downSince = Date.now();
            this.policy.down?.(reason(e), this.retryForMs);
          }
          const waited = Date.now() - started;
          if (waited >= this.retryForMs) throw this.gaveUp(e, waited);
          const pause = Math.min(delay, this.retryForMs - waited) * (0.75 + Math.random() * 0.5);
          await new Promise((res) => setTimeout(res, pause));
          delay = Math.min(delay * 2, this.policy.maxDelayMs ?? 3000);
        }
      }
    } finally {
      if (retrying) this.waiting--;
    }
  }

  private gaveUp(e: unknown, waitedMs: number): ConnectionError {
    if (e instanceof ConnectionError) return e;
    const c = connectionError(describeUrl(this.url), e, 10_000, CONTROL_URL_SOURCE);
    return new ControlUnavailableError(
      c.target,
      `${c.cause_}; still failing after ${Math.round(waitedMs / 1000)} s of retries`,
      `The control database is unreachable. Nothing is lost: workers resume from it when it is back; run the command again then. ${c.hint}`,
      'transient',
      c.sqlState,
    );
  }
}

/**
 * Make a pool's promise-style `query()` and `connect()` retry through
 * `retrier` (in place, so `pool` keeps being a pg.Pool for every caller).
 * Callback-style calls (pg uses them internally) are left alone.
 */
export function retryingPool(pool: pg.Pool, retrier: ControlRetrier): pg.Pool {
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  const connect = pool.connect.bind(pool) as (...args: unknown[]) => unknown;
  (pool as unknown as { query: unknown }).query = (...args: unknown[]) =>
    typeof args[args.length - 1] === 'function' ? query(...args) : retrier.run(() => query(...args) as Promise<unknown>);
  (pool as unknown as { connect: unknown }).connect = (...args: unknown[]) =>
    args.length ? connect(...args) : retrier.run(() => connect() as Promise<unknown>);
  return pool;
}
