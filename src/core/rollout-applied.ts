/**
 * Which of a rollout's migrations the rollout itself applied to a tenant, read
 * from the tenant's own tracking table: the truth the control database's
 * `applied` list is reconciled with. A worker writes `applied_by` as
 * `worker <worker id> (rollout <rollout id>)`, so rows written by any attempt
 * of the rollout (a worker killed between its commit and its record, an
 * attempt whose record was lost in a control-database outage, an earlier
 * generation before a `rollout retry`) are found again; rows written by a CLI,
 * another rollout or before the rollout are not the rollout's.
 */
export function rolloutAppliedBy(workerId: string, rolloutId: string): string {
  return `worker ${workerId} (rollout ${rolloutId})`;
}

/** The rollout id in a worker's `applied_by`, if it names one. */
export function rolloutOfAppliedBy(appliedBy: string | null | undefined): string | undefined {
  return /^worker \S+ \(rollout (\S+)\)$/.exec(appliedBy ?? '')?.[1];
}

/** The set's migrations (in the set's order) whose tracking row says this rollout applied them. */
export function appliedByRollout(setNames: readonly string[], rows: readonly { name: string; appliedBy: string | null }[], rolloutId: string): string[] {
  const ours = new Set(rows.filter((r) => rolloutOfAppliedBy(r.appliedBy) === rolloutId).map((r) => r.name));
  return setNames.filter((n) => ours.has(n));
}
