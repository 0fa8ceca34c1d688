/**
 * `flotilla plan --tenants t.yaml [--dir] [--json]`: the fleet's blast radius
 * before a rollout. Each tenant is read on a read-only session (bounded
 * concurrency, short lock and statement timeouts, nothing written): its
 * tracking table gives the files pending there, lint gives their findings,
 * and the size of each table a finding locks comes from the tenant itself
 * (reltuples, pg_total_relation_size). Also the size measure behind
 * `rollout --order-by size` (tenantSizes).
 */
import { loadMigrationDir } from '../../adapters/fs-source.js';
import { openReadOnly, readApplied, relationSizes, type RelationRef } from '../../adapters/pg/read-only.js';
import { ConfigError, isFlotillaError } from '../../core/errors.js';
import {
  ASSUMED_BYTES_PER_SECOND,
  blastRadius,
  humanBytes,
  humanRows,
  humanSeconds,
  MANY_ROWS,
  namedRelations,
  type BlastGroup,
  type TenantFinding,
} from '../../core/lint/blast-radius.js';
import { lintMigrations } from '../../core/lint/index.js';
import type { MigrationSet } from '../../core/migration-set.js';
import { plan } from '../../core/plan.js';
import { redactSecrets } from '../../core/redact.js';
import { parseSelectorFlags, resolveDatabaseUrl, type Tenant } from '../../core/tenants.js';
import type { Config } from '../../config.js';
import type { Output } from '../output.js';
import { intOption, type Flags } from '../requests.js';
import { readTenantsFile } from '../tenants-source.js';
import { lockLabel } from './lint.js';
import type { CommandContext } from './single.js';
import { selectTenants } from '../../core/tenants.js';

export interface PlanRequest {
  tenantsFile: string;
  selection: Parameters<typeof selectTenants>[1];
  concurrency: number;
}

/**
 * --tenants is required. The file is an explicit list and plan writes nothing: without
 * --only/--tag/--all it covers the whole file (an empty value is still refused).
 */
export function parsePlan(o: Flags): PlanRequest {
  if (o.tenants === undefined) throw new ConfigError(['--tenants <file>: required (the tenants to plan for)']);
  const selectorGiven = o.only !== undefined || o.tag !== undefined || o.all !== undefined;
  const { source, selection } = parseSelectorFlags({ tenants: o.tenants, only: o.only, tag: o.tag, all: selectorGiven ? o.all : true });
  if (source.kind !== 'file') throw new ConfigError(['--tenants <file>: required']);
  return { tenantsFile: source.path, selection, concurrency: intOption('--concurrency', o.concurrency) ?? 8 };
}

export interface TenantPlan {
  tenant: string;
  /** why the tenant could not be read (nothing else is known of it) */
  error?: string;
  pending: string[];
  findings: TenantFinding[];
}

export interface PlanResult {
  tenants: number;
  unreachable: { tenant: string; error: string }[];
  groups: BlastGroup[];
  assumedBytesPerSecond: typeof ASSUMED_BYTES_PER_SECOND;
  errors: number;
  warnings: number;
}

/** Runs `fn` over `items`, at most `n` at a time, results in input order. */
export async function boundedMap<T, R>(items: readonly T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  return out;
}

function describeError(e: unknown): string {
  const m = isFlotillaError(e) ? e.message : e instanceof Error ? e.message : String(e);
  return redactSecrets(m);
}

/** One tenant: pending files, their findings, the sizes of the tables they lock. Never throws: an error is the tenant's result. */
export async function planTenant(t: Tenant, set: MigrationSet, config: Config, env: Record<string, string | undefined>): Promise<TenantPlan> {
  const schema = t.schema ?? config.schema;
  try {
    const url = resolveDatabaseUrl(t.databaseUrl, env, t.id);
    const client = await openReadOnly(url, { schema, lockTimeoutMs: Math.min(config.lockTimeout, 2000), connectTimeoutMs: 10_000 });
    try {
      const p = plan(set, await readApplied(client, schema, config.trackingTable));
      const report = lintMigrations(p.pending, {
        disable: config.lint.disable,
        applied: p.applied.map((a) => a.migration),
        singleTransaction: config.singleTransaction,
      });
      const located = report.findings.filter((f) => f.table || f.index);
      const refs: RelationRef[] = located.map((f) => (f.table ? { ...f.table } : { ...f.index!, index: true }));
      const sizes = await relationSizes(client, refs);
      const findings: TenantFinding[] = report.findings.map((finding) => {
        const i = located.indexOf(finding);
        const s = i >= 0 ? sizes[i] : undefined;
        return { finding, table: s?.table ?? null, rows: s?.rows ?? null, bytes: s?.bytes ?? null };
      });
      return { tenant: t.id, pending: p.pending.map((m) => m.name), findings };
    } finally {
      await client.end().catch(() => {});
    }
  } catch (e) {
    return { tenant: t.id, error: describeError(e), pending: [], findings: [] };
  }
}

export async function planCommand(ctx: CommandContext, req: PlanRequest, env: Record<string, string | undefined> = process.env): Promise<PlanResult> {
  const set = await loadMigrationDir(ctx.config.dir);
  const tenants = selectTenants(await readTenantsFile(req.tenantsFile), req.selection);
  const results = await boundedMap(tenants, req.concurrency, (t) => planTenant(t, set, ctx.config, env));
  const groups = blastRadius(new Map(results.filter((r) => !r.error).map((r) => [r.tenant, r.findings])));
  return {
    tenants: tenants.length,
    unreachable: results.filter((r) => r.error).map((r) => ({ tenant: r.tenant, error: r.error! })),
    groups,
    assumedBytesPerSecond: ASSUMED_BYTES_PER_SECOND,
    errors: groups.filter((g) => g.severity === 'error').length,
    warnings: groups.filter((g) => g.severity === 'warning').length,
  };
}

const COST_WORDS: Record<string, string> = { rewrite: 'table rewrite', scan: 'full scan', 'index-build': 'index build', rows: 'every row written' };

export function printPlan(out: Output, r: PlanResult): void {
  if (out.json) {
    out.data(r);
    return;
  }
  out.line(`Plan: ${r.tenants} tenant${r.tenants === 1 ? '' : 's'}${r.unreachable.length ? `, ${r.unreachable.length} not read` : ''}`);
  for (const g of r.groups) {
    out.line();
    const cost = COST_WORDS[g.cost];
    const where = lockLabel({ lock: g.lock, table: g.target && !g.target.startsWith('index ') ? { name: g.target } : undefined, index: undefined });
    out.line(`${where}${cost ? ` (${cost})` : ''}: ${g.file}:${g.line} ${g.rule} [${g.severity}]`);
    out.line(`  ${g.message}`);
    const big = g.tenants.filter((t) => (t.rows ?? 0) > MANY_ROWS);
    const show = (ts: typeof g.tenants) =>
      ts
        .slice(0, 10)
        .map((t) =>
          t.table === null
            ? `${t.tenant} (table not found)`
            : `${t.tenant} ${humanRows(t.rows)} / ${humanBytes(t.bytes)}${t.estimateSeconds !== null ? ` (~${humanSeconds(t.estimateSeconds)})` : ''}`,
        )
        .join(', ') + (ts.length > 10 ? `, ... and ${ts.length - 10} more` : '');
    if (big.length) out.line(`  ${big.length} tenant${big.length === 1 ? '' : 's'} over 1M rows: ${show(big)}`);
    out.line(`  ${g.tenants.length} tenant${g.tenants.length === 1 ? '' : 's'} with this file pending, largest first: ${show(g.tenants)}`);
    out.line(`  safer: ${g.safer}`);
  }
  if (r.unreachable.length) {
    out.line();
    out.line('Not read (nothing is known of these tenants):');
    for (const u of r.unreachable) out.line(`  ${u.tenant}: ${u.error}`);
  }
  out.line();
  const speeds = Object.entries(r.assumedBytesPerSecond)
    .map(([k, v]) => `${COST_WORDS[k] ?? k} ${Math.round(v / 1e6)} MB/s`)
    .join(', ');
  out.line(`Times are estimates from each table's size at an assumed ${speeds}; real speed depends on the server, its load, indexes and TOAST.`);
  out.line(
    `${r.errors ? '✗' : '✓'} ${r.errors} error finding${r.errors === 1 ? '' : 's'}, ${r.warnings} warning${r.warnings === 1 ? '' : 's'} across the fleet`,
  );
}

export async function planRun(ctx: CommandContext, o: Flags): Promise<number> {
  const r = await planCommand(ctx, parsePlan(o));
  printPlan(ctx.out, r);
  return r.unreachable.length ? 3 : r.errors ? 1 : 0;
}

/**
 * `rollout --order-by size`: each tenant's size is the total size of the
 * tables the set names, as found in that tenant (tiebreak: its database's
 * size). Read-only, bounded concurrency. A tenant that cannot be read has no
 * size (ordered last by core's orderBySize) and is named in `unread`.
 */
export async function tenantSizes(
  tenants: readonly Tenant[],
  set: MigrationSet,
  config: Config,
  env: Record<string, string | undefined>,
  concurrency = 8,
): Promise<{ sizes: Map<string, { bytes: number | null; tiebreak: number | null }>; unread: { tenant: string; error: string }[] }> {
  const refs: RelationRef[] = namedRelations(set.migrations);
  const sizes = new Map<string, { bytes: number | null; tiebreak: number | null }>();
  const unread: { tenant: string; error: string }[] = [];
  await boundedMap(tenants, concurrency, async (t) => {
    try {
      const client = await openReadOnly(resolveDatabaseUrl(t.databaseUrl, env, t.id), { schema: t.schema ?? config.schema, lockTimeoutMs: 2000 });
      try {
        const found = await relationSizes(client, refs);
        const db = await client.query<{ n: string }>('SELECT pg_database_size(current_database()) AS n');
        sizes.set(t.id, { bytes: found.reduce((s, x) => s + (x.bytes ?? 0), 0), tiebreak: Number(db.rows[0]!.n) });
      } finally {
        await client.end().catch(() => {});
      }
    } catch (e) {
      sizes.set(t.id, { bytes: null, tiebreak: null });
      unread.push({ tenant: t.id, error: describeError(e) });
    }
  });
  return { sizes, unread };
}
