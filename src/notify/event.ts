/**
 * The JSON a notification POSTs when a rollout halts, fails, succeeds or is cancelled. Slack-
 * compatible: `text` is the message (Slack incoming webhooks, Mattermost, Teams' and Discord's
 * Slack-compatible endpoints read it); the other fields are for machines. Built from what the
 * control database recorded at the state change (notify/schema.ts): ids, states, counts and the
 * halt reason (redacted again here) only, never a URL or an error message of a tenant.
 * Pure.
 */
import { redactSecrets } from '../core/redact.js';

export type NotifiedState = 'halted' | 'failed' | 'succeeded' | 'cancelled';

/** A row of flotilla.notifications, as the sender reads it. */
export interface NotificationRecord {
  /** the row id: the same on every delivery attempt of this event to this target (receivers may deduplicate on it) */
  id: string;
  rolloutId: string;
  event: NotifiedState;
  payload: {
    previousState?: string;
    haltReason?: string | null;
    counts?: Record<string, number>;
    createdAt?: string;
    changedAt?: string;
    dryRun?: boolean;
    failedTenants?: { id: string; code: string | null }[];
  };
}

export interface NotificationBody {
  text: string;
  eventId: string;
  event: `rollout.${NotifiedState}`;
  rollout: {
    id: string;
    state: NotifiedState;
    previousState: string | null;
    haltReason: string | null;
    dryRun: boolean;
    counts: Record<string, number>;
    total: number;
    createdAt: string | null;
    changedAt: string | null;
    /** the first failed tenants (id and error code), at most 10 */
    failedTenants: { id: string; code: string | null }[];
  };
}

const ICON: Record<NotifiedState, string> = { succeeded: ':white_check_mark:', failed: ':x:', halted: ':octagonal_sign:', cancelled: ':no_entry_sign:' };
const ORDER = ['succeeded', 'failed', 'cancelled', 'running', 'scheduled', 'pending'];

export function notificationBody(n: NotificationRecord): NotificationBody {
  const counts = n.payload.counts ?? {};
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const reason = n.payload.haltReason ? redactSecrets(n.payload.haltReason) : null;
  const failedTenants = (n.payload.failedTenants ?? []).slice(0, 10);
  const parts = ORDER.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`);
  const finished = (counts.succeeded ?? 0) + (counts.failed ?? 0);
  const lead = `${ICON[n.event]} Flotilla rollout ${n.rolloutId}${n.payload.dryRun ? ' (dry run)' : ''} ${n.event}`;
  const text = [
    `${lead}${reason ? `: ${reason}` : ''}`,
    `${finished}/${total} tenants done${parts.length ? ` (${parts.join(', ')})` : ''}.`,
    failedTenants.length
      ? `Failed: ${failedTenants.map((t) => `${t.id}${t.code ? ` (${t.code})` : ''}`).join(', ')}${(counts.failed ?? 0) > failedTenants.length ? ', …' : ''}.`
      : '',
    n.event === 'halted' || n.event === 'failed' ? `Next: \`flotilla rollout status ${n.rolloutId}\`, then \`flotilla rollout retry ${n.rolloutId}\`.` : '',
  ]
    .filter(Boolean)
    .join('\n');
  return {
    text,
    eventId: n.id,
    event: `rollout.${n.event}`,
    rollout: {
      id: n.rolloutId,
      state: n.event,
      previousState: n.payload.previousState ?? null,
      haltReason: reason,
      dryRun: !!n.payload.dryRun,
      counts,
      total,
      createdAt: n.payload.createdAt ?? null,
      changedAt: n.payload.changedAt ?? null,
      failedTenants,
    },
  };
}

/** Delivery attempt n (1-based) failed: wait this long before the next (1 s, 2 s, 4 s ... at most 5 min). */
export function retryDelayMs(attempts: number, baseMs = 1000, capMs = 300_000): number {
  return Math.min(capMs, baseMs * 2 ** Math.max(0, attempts - 1));
}

/** Give up after this many failed deliveries (about 20 minutes with the defaults). */
export const MAX_DELIVERY_ATTEMPTS = 10;
