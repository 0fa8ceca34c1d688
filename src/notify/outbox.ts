/**
 * The outbox's reads and writes (control migration 009, notify/schema.ts). A sender claims due
 * rows of its fleet with SKIP LOCKED and a lease, so two workers never deliver the same row at
 * once; the row is marked sent, rescheduled with backoff, or given up. No decision lives here.
 */
import type pg from 'pg';
import { T } from '../control/schema.js';
import type { NotificationRecord } from './event.js';

export interface ClaimedNotification extends NotificationRecord {
  target: string;
  /** delivery attempts including this one */
  attempts: number;
}

/** Due rows of this fleet (queue prefix), claimed for `leaseMs`; at most `limit`. */
export async function claimDue(pool: Pick<pg.Pool, 'query'>, queuePrefix: string, leaseMs: number, limit = 20): Promise<ClaimedNotification[]> {
  const r = await pool.query(
    `UPDATE ${T('notifications')} n SET claimed_until = now() + make_interval(secs => $2::double precision / 1000), attempts = n.attempts + 1
      WHERE n.id IN (
        SELECT x.id FROM ${T('notifications')} x JOIN ${T('rollouts')} r ON r.id = x.rollout_id
         WHERE x.sent_at IS NULL AND x.gave_up_at IS NULL AND x.next_attempt_at <= now()
           AND (x.claimed_until IS NULL OR x.claimed_until < now()) AND r.queue_prefix = $1
         ORDER BY x.id LIMIT $3 FOR UPDATE OF x SKIP LOCKED)
      RETURNING n.id::text, n.rollout_id, n.event, n.target, n.payload, n.attempts`,
    [queuePrefix, leaseMs, limit],
  );
  return r.rows.map((x) => ({ id: x.id, rolloutId: x.rollout_id, event: x.event, target: x.target, payload: x.payload, attempts: x.attempts }));
}

export async function markSent(pool: Pick<pg.Pool, 'query'>, id: string): Promise<void> {
  await pool.query(`UPDATE ${T('notifications')} SET sent_at = now(), claimed_until = NULL, last_error = NULL WHERE id = $1`, [id]);
}

/** A failed delivery: try again after `retryInMs`, or (undefined) never again. */
export async function markFailed(pool: Pick<pg.Pool, 'query'>, id: string, error: string, retryInMs: number | undefined): Promise<void> {
  await pool.query(
    retryInMs === undefined
      ? `UPDATE ${T('notifications')} SET gave_up_at = now(), claimed_until = NULL, last_error = $2 WHERE id = $1`
      : `UPDATE ${T('notifications')} SET next_attempt_at = now() + make_interval(secs => $3::double precision / 1000), claimed_until = NULL, last_error = $2 WHERE id = $1`,
    retryInMs === undefined ? [id, error] : [id, error, retryInMs],
  );
}
