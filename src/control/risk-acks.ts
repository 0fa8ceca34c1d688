/**
 * Acknowledged lint findings in the control database (table risk_acks,
 * control migration 007): written when a rollout or a schedule is created,
 * read by `rollout status` and by the next rollout's gate (an acknowledgement
 * of the same file content, rule and line carries over).
 */
import type { EarlierAck, RiskAck } from '../core/lint/index.js';
import type { Queryable } from '../adapters/pg/connection.js';
import { T } from './schema.js';

export interface AckOwner {
  rolloutId?: string;
  scheduleName?: string;
  queuePrefix: string;
  setChecksum: string;
}

export interface StoredAck extends RiskAck {
  osUser: string;
  acknowledgedAt: Date;
}

export async function recordAcks(db: Queryable, owner: AckOwner, acks: readonly RiskAck[], osUser: string): Promise<void> {
  if (acks.length === 0) return;
  await db.query(
    `INSERT INTO ${T('risk_acks')} (rollout_id, schedule_name, queue_prefix, set_checksum, file, file_checksum, line, rule, target, lock_mode, via, actor, os_user, earlier)
     SELECT $1, $2, $3, $4, a->>'file', a->>'checksum', (a->>'line')::int, a->>'rule', a->>'table', a->>'lock', a->>'via', a->>'actor', $5, a->>'earlier'
       FROM jsonb_array_elements($6::jsonb) a`,
    [owner.rolloutId ?? null, owner.scheduleName ?? null, owner.queuePrefix, owner.setChecksum, osUser, JSON.stringify(acks)],
  );
}

/** First acknowledgements (not themselves carried over) of findings in these file contents. */
export async function earlierAcks(db: Queryable, fileChecksums: readonly string[]): Promise<EarlierAck[]> {
  if (fileChecksums.length === 0) return [];
  const r = await db.query<{ checksum: string; rule: string; line: number; actor: string; where: string }>(
    `SELECT DISTINCT ON (file_checksum, rule, line) file_checksum AS checksum, rule, line, actor,
            coalesce('rollout ' || rollout_id, 'schedule ' || schedule_name) AS where
       FROM ${T('risk_acks')} WHERE file_checksum = ANY($1) AND via <> 'earlier'
      ORDER BY file_checksum, rule, line, acknowledged_at, id`,
    [fileChecksums],
  );
  return r.rows;
}

/**
 * A rollout's acknowledgements: its own, or for a rollout a schedule started
 * (created_by "schedule <name>"), those given when the schedule was saved
 * with the same set.
 */
export async function rolloutAcks(
  db: Queryable,
  r: { id: string; createdBy: string | null; setChecksum: string; queuePrefix?: string | null },
): Promise<StoredAck[]> {
  const schedule = r.createdBy?.startsWith('schedule ') ? r.createdBy.slice('schedule '.length) : null;
  const res = await db.query(
    `SELECT * FROM ${T('risk_acks')}
      WHERE rollout_id = $1
         OR ($2::text IS NOT NULL AND rollout_id IS NULL AND schedule_name = $2 AND set_checksum = $3 AND ($4::text IS NULL OR queue_prefix = $4))
      ORDER BY file, line, rule, id`,
    [r.id, schedule, r.setChecksum, r.queuePrefix ?? null],
  );
  return res.rows.map((x) => ({
    file: x.file,
    checksum: x.file_checksum,
    line: x.line,
    rule: x.rule,
    table: x.target,
    lock: x.lock_mode,
    via: x.via,
    actor: x.actor,
    ...(x.earlier ? { earlier: x.earlier } : {}),
    osUser: x.os_user,
    acknowledgedAt: x.acknowledged_at,
  }));
}

/**
 * What each of these tenants is known to have applied, by the rollouts of
 * this control database that were not dry runs (file names). A tenant never
 * rolled out is absent: nothing is known of it.
 */
export async function knownApplied(db: Queryable, tenantIds: readonly string[]): Promise<Map<string, string[]>> {
  if (tenantIds.length === 0) return new Map();
  const r = await db.query<{ tenant_id: string; applied: string[] }>(
    `SELECT rt.tenant_id, array_agg(DISTINCT a.name ORDER BY a.name) AS applied
       FROM ${T('rollout_tenants')} rt JOIN ${T('rollouts')} r ON r.id = rt.rollout_id, unnest(rt.applied) AS a(name)
      WHERE rt.tenant_id = ANY($1) AND NOT coalesce((r.options->>'dryRun')::boolean, false)
      GROUP BY rt.tenant_id`,
    [tenantIds],
  );
  return new Map(r.rows.map((x) => [x.tenant_id, x.applied]));
}
