/**
 * `flotilla lint [--dir] [--json]`: the lock-aware lint of core/lint over the
 * pending files: pending on the database when --database-url (or
 * DATABASE_URL) is given, read read-only; every file of the directory
 * otherwise. Exit 1 when an error-level finding is left unacknowledged.
 */
import { loadMigrationDir } from '../../adapters/fs-source.js';
import { readAppliedReadOnly } from '../../adapters/pg/read-only.js';
import { errorCount, lintMigrations, RULES, type LintFinding, type RelRef } from '../../core/lint/index.js';
import type { Migration } from '../../core/migration-set.js';
import { plan } from '../../core/plan.js';
import type { Output } from '../output.js';
import type { CommandContext } from './single.js';

export interface LintResult {
  dir: string;
  /** files linted: the pending ones (database given), or all of them */
  files: string[];
  against: 'database' | 'all files';
  findings: LintFinding[];
  /** acknowledged by their file's `-- flotilla:allow` header */
  allowed: LintFinding[];
  /** rules turned off in the config file */
  disabled: string[];
  errors: number;
  warnings: number;
}

export async function lintCommand(ctx: CommandContext): Promise<LintResult> {
  const { config } = ctx;
  const set = await loadMigrationDir(config.dir);
  let files: readonly Migration[] = set.migrations;
  let applied: Migration[] = [];
  if (config.databaseUrl) {
    const rows = await readAppliedReadOnly(config.databaseUrl, { schema: config.schema, trackingTable: config.trackingTable });
    const p = plan(set, rows);
    files = p.pending;
    applied = p.applied.map((a) => a.migration);
  }
  const report = lintMigrations(files, { disable: config.lint.disable, applied, singleTransaction: config.singleTransaction });
  return {
    dir: config.dir,
    files: files.map((m) => m.name),
    against: config.databaseUrl ? 'database' : 'all files',
    findings: report.findings,
    allowed: report.allowed,
    disabled: [...config.lint.disable],
    errors: errorCount(report.findings),
    warnings: report.findings.length - errorCount(report.findings),
  };
}

export function lockLabel(f: Pick<LintFinding, 'lock' | 'table' | 'index'>): string {
  if (!f.lock) return 'no table lock';
  const on = (r: RelRef) => (r.schema ? `${r.schema}.${r.name}` : r.name);
  return `${f.lock}${f.table ? ` on ${on(f.table)}` : f.index ? ` on the table of index ${on(f.index)}` : ''}`;
}

export function printFinding(out: Output, f: LintFinding, indent = ''): void {
  out.line(
    `${indent}${f.file}:${f.line}  ${f.severity}  ${f.rule}  (${lockLabel(f)}${RULES[f.rule].cost === 'brief' || RULES[f.rule].cost === 'fails' ? '' : `, ${costWords(f)}`})`,
  );
  out.line(`${indent}  ${f.message}`);
  out.line(`${indent}  why: ${f.why}`);
  out.line(`${indent}  safer: ${f.safer}`);
}

function costWords(f: LintFinding): string {
  return { rewrite: 'table rewrite', scan: 'full table scan', 'index-build': 'index build', rows: 'every row written', brief: '', fails: '' }[f.cost];
}

export function printLint(out: Output, r: LintResult): void {
  if (out.json) {
    out.data(r);
    return;
  }
  out.line(`Lint: ${r.files.length} ${r.against === 'database' ? 'pending ' : ''}file${r.files.length === 1 ? '' : 's'} in ${r.dir}`);
  for (const f of r.findings) {
    out.line();
    printFinding(out, f);
  }
  if (r.allowed.length) {
    out.line();
    out.line('Acknowledged by a -- flotilla:allow header:');
    for (const f of r.allowed) out.line(`  ${f.file}:${f.line}  ${f.rule}  (${lockLabel(f)})`);
  }
  out.line();
  const allowed = r.allowed.length ? `, ${r.allowed.length} acknowledged by header` : '';
  const disabled = r.disabled.length ? `; rules off in the config: ${r.disabled.join(', ')}` : '';
  out.line(`${r.errors ? '✗' : '✓'} ${r.errors} error${r.errors === 1 ? '' : 's'}, ${r.warnings} warning${r.warnings === 1 ? '' : 's'}${allowed}${disabled}`);
  if (r.errors) out.line('  Rewrite the statements the safer way, or acknowledge a finding with a "-- flotilla:allow <rule-id>" line at the top of its file.');
}

export async function lint(ctx: CommandContext): Promise<number> {
  const r = await lintCommand(ctx);
  printLint(ctx.out, r);
  return r.errors ? 1 : 0;
}
