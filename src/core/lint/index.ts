/**
 * Lint for migration sets (pure): the rules (rules.ts), the pass (check.ts),
 * and what a rollout needs of them: which error-level findings are
 * acknowledged, by whom and how, and which are not.
 */
import type { Migration, MigrationSet } from '../migration-set.js';
import { plan } from '../plan.js';
import { parseValidationHeader } from '../validation.js';
import { lint, type LintFile, type LintFinding, type LintReport } from './check.js';
import { isRuleId, type RuleId } from './rules.js';

export { lint, relLabel, type LintFinding, type LintReport, type RelRef, type LintFile } from './check.js';
export { RULES, RULE_IDS, isRuleId, type RuleId, type RuleInfo, type Severity, type LockMode, type Cost } from './rules.js';

/** A migration as lint reads it, its `-- flotilla:allow` header included. */
export function lintFile(m: Pick<Migration, 'name' | 'sql' | 'statements' | 'transactional'>): LintFile {
  const h = parseValidationHeader(m.sql);
  return { name: m.name, statements: m.statements, transactional: m.transactional, allow: h.ok ? h.allow : [] };
}

export interface LintOptions {
  disable?: readonly string[];
  singleTransaction?: boolean;
  /** migrations already applied (what they prove about CHECK constraints) */
  applied?: readonly Migration[];
}

export function lintMigrations(migrations: readonly Migration[], o: LintOptions = {}): LintReport {
  return lint({
    files: migrations.map(lintFile),
    ...(o.applied && { applied: o.applied.map(lintFile) }),
    ...(o.disable && { disable: o.disable }),
    ...(o.singleTransaction && { singleTransaction: true }),
  });
}

/**
 * The set's findings as the selected tenants will meet them. A tenant the
 * control database knows (earlier rollouts applied files to it) has only the
 * rest pending, and the tables its applied files created are existing there;
 * a tenant nothing is known of gets the whole set (tables created earlier in
 * the set are new). The union over the tenants' distinct states, each finding once.
 * Known files are the set's own, by exact name: a tenant whose history has
 * other files under the same numbers is treated as unknown.
 */
export function lintForTenants(
  set: MigrationSet,
  appliedByTenant: ReadonlyMap<string, readonly string[]>,
  tenantIds: readonly string[],
  o: Omit<LintOptions, 'applied'> = {},
): LintReport {
  const states = new Map<string, readonly string[]>([['', []]]);
  if (tenantIds.length) states.clear();
  // only files of this set, by their exact name, count as known: a tenant with another history is one we know nothing of
  const inSet = new Set(set.migrations.map((m) => m.name));
  for (const id of tenantIds) {
    const names = (appliedByTenant.get(id) ?? []).filter((n) => inSet.has(n));
    states.set([...names].sort().join('\0'), names);
  }
  const findings = new Map<string, LintFinding>();
  const allowed = new Map<string, LintFinding>();
  const key = (f: LintFinding) => `${f.file}\0${f.line}\0${f.rule}\0${f.message}`;
  for (const names of states.values()) {
    const p = plan(
      set,
      names.map((name) => ({ name, checksum: null, appliedAt: null, durationMs: null, appliedBy: null })),
    );
    const r = lintMigrations(p.pending, { ...o, applied: p.applied.map((a) => a.migration) });
    for (const f of r.findings) findings.set(key(f), f);
    for (const f of r.allowed) allowed.set(key(f), f);
  }
  const order = (a: LintFinding, b: LintFinding) => a.file.localeCompare(b.file) || a.line - b.line;
  return { findings: [...findings.values()].sort(order), allowed: [...allowed.values()].sort(order) };
}

export function errorCount(findings: readonly LintFinding[]): number {
  return findings.filter((f) => f.severity === 'error').length;
}

/** How an error-level finding was acknowledged for a rollout or schedule. */
export type AckVia = 'flag' | 'header' | 'earlier';

export interface RiskAck {
  file: string;
  checksum: string;
  line: number;
  rule: RuleId;
  table: string | null;
  lock: string | null;
  via: AckVia;
  /** who: FLOTILLA_ACTOR or the OS user; for `earlier`, who acknowledged it then */
  actor: string;
  /** `earlier`: the rollout or schedule where it was first acknowledged */
  earlier?: string;
}

/** An acknowledgement recorded before, found by what it acknowledged (the same file content, rule and line). */
export interface EarlierAck {
  checksum: string;
  rule: string;
  line: number;
  actor: string;
  where: string;
}

/**
 * Which error-level findings of a set are acknowledged, and how: by
 * `--accept-risk <rule>`, by the file's `-- flotilla:allow <rule>` header, or
 * by an acknowledgement recorded for the very same file content, rule and
 * line in an earlier rollout or schedule (a file applied long ago is not
 * re-reviewed at every rollout). The rest is `missing`: the rollout is refused.
 */
export function acknowledge(
  report: LintReport,
  checksums: ReadonlyMap<string, string>,
  accepted: readonly RuleId[],
  actor: string,
  earlier: readonly EarlierAck[] = [],
): { acks: RiskAck[]; missing: LintFinding[] } {
  const acks: RiskAck[] = [];
  const missing: LintFinding[] = [];
  const base = (f: LintFinding) => ({
    file: f.file,
    checksum: checksums.get(f.file) ?? '',
    line: f.line,
    rule: f.rule,
    table: f.table ? `${f.table.schema ? `${f.table.schema}.` : ''}${f.table.name}` : f.index ? `index ${f.index.name}` : null,
    lock: f.lock,
  });
  for (const f of report.allowed) if (f.severity === 'error') acks.push({ ...base(f), via: 'header', actor });
  for (const f of report.findings) {
    if (f.severity !== 'error') continue;
    if (accepted.includes(f.rule)) {
      acks.push({ ...base(f), via: 'flag', actor });
      continue;
    }
    const b = base(f);
    const e = earlier.find((x) => x.checksum === b.checksum && x.rule === f.rule && x.line === f.line);
    if (e) acks.push({ ...b, via: 'earlier', actor: e.actor, earlier: e.where });
    else missing.push(f);
  }
  return { acks, missing };
}

/** `--accept-risk a,b --accept-risk c`: rule ids, or the unknown ones. */
export function parseAcceptRisk(values: readonly string[] | undefined): { rules: RuleId[] } | { unknown: string[] } {
  const words = (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim());
  const unknown = words.filter((w) => !isRuleId(w));
  if (unknown.length) return { unknown };
  return { rules: [...new Set(words as RuleId[])] };
}
