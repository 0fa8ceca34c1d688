/**
 * Delivering the outbox (notify/schema.ts): every worker runs a Notifier. Each tick claims the
 * fleet's due notifications (outbox.ts: SKIP LOCKED plus a lease, so one sender per row at a
 * time), POSTs each event's JSON (event.ts) to its target resolved from this process's
 * environment (targets.ts), and marks it sent; a failure is retried with exponential backoff
 * (1 s, 2 s, 4 s ... 5 min) up to MAX_DELIVERY_ATTEMPTS, and a 4xx other than 408/429 is given up
 * at once (a revoked webhook does not come back).
 *
 * Exactly once per state change and target, except in one case no HTTP sender can close: a
 * sender that dies after the receiver answered 2xx and before the sent marker commits lets the
 * lease expire and another sender posts the event again. The body's `eventId` is the same on
 * every delivery of an event: receivers that must not see it twice deduplicate on it.
 */
import type pg from 'pg';
import { redactSecrets } from '../core/redact.js';
import type { Logger } from '../logger.js';
import { MAX_DELIVERY_ATTEMPTS, notificationBody, retryDelayMs } from './event.js';
import { claimDue, markFailed, markSent, type ClaimedNotification } from './outbox.js';
import { describeTarget, resolveTarget } from './targets.js';

export interface NotifierOptions {
  pool: Pick<pg.Pool, 'query'>;
  /** this worker's fleet: only its rollouts' notifications are sent from here */
  queuePrefix: string;
  env: Record<string, string | undefined>;
  logger: Logger;
  /** how often to look for due notifications (default 2 s) */
  everyMs?: number;
  /** how long a claimed notification is this sender's (default 30 s; more than the POST timeout) */
  leaseMs?: number;
  /** POST timeout (default 10 s) */
  timeoutMs?: number;
  /** first retry delay (default 1 s), doubled each time up to 5 min */
  retryBaseMs?: number;
  /** each delivery attempt's result (the worker's metrics); must not throw */
  onResult?: (result: 'sent' | 'retrying' | 'given_up') => void;
}

type Delivery = { ok: true; status: number } | { ok: false; error: string; permanent: boolean };

export class Notifier {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private readonly o: Required<Omit<NotifierOptions, 'onResult'>> & Pick<NotifierOptions, 'onResult'>;

  constructor(options: NotifierOptions) {
    this.o = { everyMs: 2000, leaseMs: 30_000, timeoutMs: 10_000, retryBaseMs: 1000, ...options };
    if (this.o.leaseMs <= this.o.timeoutMs) throw new Error('Notifier: leaseMs must exceed timeoutMs (a lease must outlive its POST)');
  }

  start(): void {
    this.timer ??= setInterval(() => {
      if (this.running) return;
      this.running = this.tick()
        .catch((e) => this.o.logger.debug({ err: e }, 'notifications: could not read the outbox (control database away?)'))
        .finally(() => (this.running = undefined));
    }, this.o.everyMs);
    this.timer.unref();
  }

  /**
   * Stop looking; waits a little for the deliveries under way. Not longer: a pass stuck on an
   * unreachable control database must not hold up a worker's drain, and what it claimed is
   * another worker's once its lease runs out.
   */
  async stop(waitMs = 2000): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
  }

  /** One pass: claim what is due, deliver it, record each outcome. Returns how many were sent. */
  async tick(): Promise<number> {
    const due = await claimDue(this.o.pool, this.o.queuePrefix, this.o.leaseMs);
    const results = await Promise.all(due.map((n) => this.deliverOne(n)));
    return results.filter(Boolean).length;
  }

  private async deliverOne(n: ClaimedNotification): Promise<boolean> {
    const where = { rolloutId: n.rolloutId, event: n.event, target: describeTarget(n.target), attempt: n.attempts, eventId: n.id };
    const d = await post(n, this.o.env, this.o.timeoutMs);
    if (d.ok) {
      await markSent(this.o.pool, n.id);
      this.o.onResult?.('sent');
      this.o.logger.info({ ...where, status: d.status }, 'notification sent');
      return true;
    }
    const last = d.permanent || n.attempts >= MAX_DELIVERY_ATTEMPTS;
    const retryInMs = last ? undefined : retryDelayMs(n.attempts, this.o.retryBaseMs);
    await markFailed(this.o.pool, n.id, d.error, retryInMs);
    this.o.onResult?.(last ? 'given_up' : 'retrying');
    if (last) this.o.logger.error({ ...where, error: d.error }, 'notification not delivered: given up');
    else this.o.logger.warn({ ...where, error: d.error, retryInMs }, 'notification not delivered: will retry');
    return false;
  }
}

async function post(n: ClaimedNotification, env: Record<string, string | undefined>, timeoutMs: number): Promise<Delivery> {
  let url: string;
  try {
    url = resolveTarget(n.target, env);
  } catch (e) {
    return { ok: false, error: (e as Error).message, permanent: false };
  }
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'flotilla' },
      body: JSON.stringify(notificationBody(n)),
      // a redirect would carry the body (and maybe the token in the URL) elsewhere: not followed
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.arrayBuffer().catch(() => undefined);
    if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status };
    const permanent = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
    return { ok: false, error: `HTTP ${res.status}`, permanent };
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    const why = err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (err.cause?.code ?? err.cause?.message ?? err.message);
    // the message may quote the URL: keep only what describes the failure
    return { ok: false, error: redactSecrets(String(why)).replace(url, describeTarget(n.target)), permanent: false };
  }
}
