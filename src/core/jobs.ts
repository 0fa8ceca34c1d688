/**
 * What travels through BullMQ for one tenant: ids only, never a URL or a
 * credential (the worker reads the frozen target from the control database).
 * Job ids are deterministic, so enqueuing the same tenant twice is harmless and
 * the reconciler can ask Redis about a tenant's job by name.
 */

/**
 * What a tenant job does: apply the frozen set (`migrate`), or run its down
 * files (`revert`, a rollout made by `rollout revert`). Decided by the
 * rollout's frozen options, which the worker reads when it claims the job,
 * never by the payload (a job cannot be turned into the other kind in Redis).
 */
export type JobKind = 'migrate' | 'revert';

export function jobKindOf(options: { revert?: unknown }): JobKind {
  return options.revert ? 'revert' : 'migrate';
}

/** The data of a tenant job (queue "migrate", job name "migrate"). */
export interface TenantJobData {
  rolloutId: string;
  tenantId: string;
  /** bumped by `rollout retry`: a retried tenant is a new job */
  generation: number;
}

/** A tenant the dispatcher hands to the queue. */
export interface DispatchedJob extends TenantJobData {
  /** ms until its maintenance window opens (0 = now) */
  delayMs: number;
}

/** The job of a tenant for one generation. No ':' (BullMQ), never an integer. */
export function jobId(rolloutId: string, tenantId: string, generation: number): string {
  return `m.${rolloutId}.${tenantId}.${generation}`;
}
