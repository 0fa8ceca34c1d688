/**
 * The gate `rollout` and `schedule` pass before anything starts: the set's
 * error-level lint findings must each be acknowledged (--accept-risk <rule>,
 * the file's `-- flotilla:allow <rule>` header, or an earlier acknowledgement
 * of the same file content, rule and line in the control database), else
 * exit 2 naming them. The acknowledgements are recorded with who gave them.
 * Also reads `--order-by size` (small tenants first; sizes from plan.ts).
 */
import { hostname, userInfo } from 'node:os';
import type { Config } from '../../config.js';
import type { Queryable } from '../../adapters/pg/connection.js';
import { earlierAcks, knownApplied } from '../../control/risk-acks.js';
export { recordAcks } from '../../control/risk-acks.js';
import { ConfigError, UnacknowledgedRiskError } from '../../core/errors.js';
import { acknowledge, lintForTenants, parseAcceptRisk, relLabel, RULE_IDS, type RiskAck, type RuleId } from '../../core/lint/index.js';
import { orderBySize } from '../../core/lint/blast-radius.js';
import type { MigrationSet } from '../../core/migration-set.js';
import type { Tenant } from '../../core/tenants.js';
import type { Output } from '../output.js';
import type { Flags } from '../requests.js';

export interface SafetyRequest {
  acceptRisk: RuleId[];
  orderBy?: 'size';
}

export const NO_SAFETY_FLAGS: SafetyRequest = { acceptRisk: [] };

export function parseSafetyFlags(o: Flags): SafetyRequest {
  const problems: string[] = [];
  let acceptRisk: RuleId[] = [];
  if (o.acceptRisk !== undefined) {
    const r = parseAcceptRisk(Array.isArray(o.acceptRisk) ? o.acceptRisk : [String(o.acceptRisk)]);
    if ('unknown' in r)
      problems.push(
        `--accept-risk: ${r.unknown.map((u) => (u === '' ? 'an empty rule id (an unset shell variable?)' : `unknown lint rule "${u}"`)).join(', ')} (rules: ${RULE_IDS.join(', ')})`,
      );
    else acceptRisk = r.rules;
  }
  if (o.orderBy !== undefined && o.orderBy !== 'size')
    problems.push(`--order-by: "${String(o.orderBy)}" is not an order; the only one is size (small tenants first, the largest last)`);
  if (problems.length) throw new ConfigError(problems);
  return { acceptRisk, ...(o.orderBy === 'size' && { orderBy: 'size' as const }) };
}

/** Who acknowledges: FLOTILLA_ACTOR when set (a CI job names the reviewer), else the OS user; os_user is always user@host. */
export function actorOf(env: Record<string, string | undefined>): { actor: string; osUser: string } {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {}
  const osUser = `${user}@${hostname()}`;
  const named = env.FLOTILLA_ACTOR?.trim();
  return { actor: named || user, osUser };
}

/**
 * The acknowledgements of the set's error-level findings, or UnacknowledgedRiskError.
 * `db` is the control database: what the tenants are known to have applied, and earlier acknowledgements.
 */
export async function riskGate(
  set: MigrationSet,
  config: Config,
  accepted: readonly RuleId[],
  actor: string,
  db: Queryable,
  tenantIds: readonly string[],
): Promise<RiskAck[]> {
  const report = lintForTenants(set, await knownApplied(db, tenantIds), tenantIds, {
    disable: config.lint.disable,
    singleTransaction: config.singleTransaction,
  });
  const sums = new Map(set.migrations.map((m) => [m.name, m.checksum]));
  let result = acknowledge(report, sums, accepted, actor);
  if (result.missing.length) result = acknowledge(report, sums, accepted, actor, await earlierAcks(db, [...new Set(sums.values())]));
  if (result.missing.length)
    throw new UnacknowledgedRiskError(
      result.missing.map((f) => ({
        file: f.file,
        line: f.line,
        rule: f.rule,
        lock: f.lock,
        table: f.table ? relLabel(f.table) : f.index ? `the table of index ${relLabel(f.index)}` : null,
        message: f.message,
      })),
    );
  return result.acks;
}

/** Said on stderr: what was acknowledged and by whom (stdout stays the command's own output). */
export function noteAcks(out: Output, acks: readonly RiskAck[]): void {
  for (const a of acks)
    out.error(
      `⚠ acknowledged risk: ${a.file}:${a.line} ${a.rule}${a.lock ? ` (${a.lock}${a.table ? ` on ${a.table}` : ''})` : ''} by ${a.actor} via ${
        a.via === 'flag' ? '--accept-risk' : a.via === 'header' ? 'the file header' : `an earlier acknowledgement (${a.earlier})`
      }`,
    );
}

/** `--order-by size`: small tenants first, the largest (and those whose size could not be read) last. */
export async function orderTenants(
  tenants: Tenant[],
  set: MigrationSet,
  config: Config,
  env: Record<string, string | undefined>,
  out: Output,
): Promise<Tenant[]> {
  const { tenantSizes } = await import('./plan.js');
  const { sizes, unread } = await tenantSizes(tenants, set, config, env);
  for (const u of unread) out.error(`⚠ --order-by size: could not read the size of tenant ${u.tenant} (${u.error}); it goes last`);
  return orderBySize(tenants, sizes);
}
