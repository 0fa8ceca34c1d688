/**
 * `flotilla drift --tenants t.yaml [--only|--tag|--all] [--json]`: each tenant's
 * schema (the schema holding its tracking table) fingerprinted and grouped by
 * what it applied; per group the majority and each outlier with its
 * differences (core/drift.ts). Read only: every connection is
 * `default_transaction_read_only`, with a short lock_timeout and
 * statement_timeout, at most --concurrency tenants at once. Tenant URLs are
 * resolved from this process's environment (${VAR} placeholders).
 *
 * Exit: 0 no drift · 1 drifted tenants · 3 a tenant could not be read (and no drift).
 * `rollout --skip-drifted` uses driftOfTenants to leave drifted tenants out.
 */
import type pg from 'pg';
import { connect } from '../../adapters/pg/connection.js';
import { readLedger, resolveLedger } from '../../adapters/pg/ledger.js';
import { schemaCatalog } from '../../adapters/pg/post-checks.js';
import { driftReport, type DriftReport, type TenantSchema } from '../../core/drift.js';
import { ConfigError, isFlotillaError } from '../../core/errors.js';
import { redactSecrets } from '../../core/redact.js';
import { parseSelectorFlags, resolveDatabaseUrl, type Tenant } from '../../core/tenants.js';
import type { Output } from '../output.js';
import { intOption, type Flags } from '../requests.js';
import { loadTenants } from '../tenants-source.js';
import type { CommandContext } from './single.js';

export interface DriftResult extends DriftReport {
  tenants: number;
  unreadable: { id: string; error: string }[];
}

export interface DriftReadOptions {
  trackingTable: string;
  concurrency: number;
  env: Record<string, string | undefined>;
  /** lock_timeout of the catalog reads (ms) */
  lockTimeoutMs?: number;
}

/** One tenant's applied migrations and schema items, on a read-only connection. */
async function readTenant(t: Tenant, o: DriftReadOptions): Promise<TenantSchema> {
  const client: pg.Client = await connect(resolveDatabaseUrl(t.databaseUrl, o.env, t.id), { applicationName: 'flotilla-drift' });
  try {
    await client.query(
      `SET default_transaction_read_only = on; SET lock_timeout = ${Math.max(1, Math.floor(o.lockTimeoutMs ?? 2000))}; SET statement_timeout = 60000`,
    );
    const ledger = await resolveLedger(client, t.schema, o.trackingTable);
    const rows = await readLedger(client, ledger);
    const catalog = await schemaCatalog(client, ledger.schema, o.trackingTable);
    return { id: t.id, applied: rows.map((r) => r.name), fingerprint: catalog.fingerprint, items: catalog.items };
  } finally {
    await client.end().catch(() => {});
  }
}

/** Read every tenant (at most `concurrency` at once) and build the report; unreadable tenants are listed, not fatal. */
export async function driftOfTenants(tenants: readonly Tenant[], o: DriftReadOptions): Promise<DriftResult> {
  const read: (TenantSchema | undefined)[] = new Array(tenants.length);
  const unreadable: { id: string; error: string }[] = [];
  let next = 0;
  const lane = async () => {
    while (next < tenants.length) {
      const i = next++;
      const t = tenants[i]!;
      try {
        read[i] = await readTenant(t, o);
      } catch (e) {
        unreadable.push({ id: t.id, error: redactSecrets(isFlotillaError(e) ? e.message : e instanceof Error ? e.message : String(e)) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, tenants.length)) }, lane));
  const report = driftReport(read.filter((x): x is TenantSchema => !!x));
  const order = new Map(tenants.map((t, i) => [t.id, i]));
  unreadable.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  return { tenants: tenants.length, ...report, unreadable };
}

export async function driftCommand(ctx: CommandContext, o: Flags, env: Record<string, string | undefined> = process.env): Promise<DriftResult> {
  // read-only: without --only/--tag/--all, every tenant of the file
  const selectors = o.only !== undefined || o.tag !== undefined || o.all !== undefined;
  const { selection, source } = parseSelectorFlags({ tenants: o.tenants, only: o.only, tag: o.tag, all: selectors ? o.all : true });
  if (source.kind !== 'file') throw new ConfigError(['--tenants <file>: required (the tenants to compare)']);
  const concurrency = intOption('--concurrency', o.concurrency) ?? 8;
  const tenants = await loadTenants({ tenantsFile: source.path, selection }, undefined);
  return driftOfTenants(tenants, { trackingTable: ctx.config.trackingTable, concurrency, env, lockTimeoutMs: Math.min(ctx.config.lockTimeout || 2000, 2000) });
}

export function printDrift(out: Output, r: DriftResult): void {
  if (out.json) {
    out.data(r);
    return;
  }
  out.line(
    `Drift: ${r.tenants} tenant${r.tenants === 1 ? '' : 's'}, ${r.groups.length} version group${r.groups.length === 1 ? '' : 's'}, ${r.drifted.length} drifted${r.unreadable.length ? `, ${r.unreadable.length} unreadable` : ''}`,
  );
  for (const g of r.groups) {
    out.line();
    out.line(`${g.version} (${g.applied} applied): ${g.tenants.length} tenant${g.tenants.length === 1 ? '' : 's'}`);
    out.line(
      `  ${g.tie ? 'no majority; first fingerprint' : 'majority'} ${g.majority.fingerprint.slice(0, 12)}: ${shortList(g.majority.tenants)} (${g.majority.tenants.length})`,
    );
    for (const x of g.outliers) {
      out.line(`  ✗ ${x.id} ${g.tie ? 'differs' : 'drifted'} (${x.fingerprint.slice(0, 12)}):`);
      for (const d of x.differences.slice(0, 50)) out.line(`      ${d}`);
      if (x.differences.length > 50) out.line(`      ... and ${x.differences.length - 50} more`);
    }
  }
  if (r.unreadable.length) {
    out.line();
    out.line('Could not be read:');
    for (const u of r.unreadable) out.line(`  ! ${u.id}: ${u.error}`);
  }
}

function shortList(ids: string[], max = 10): string {
  return ids.length > max ? `${ids.slice(0, max).join(', ')} and ${ids.length - max} more` : ids.join(', ');
}

export function driftExitCode(r: DriftResult): number {
  if (r.drifted.length) return 1;
  return r.unreadable.length ? 3 : 0;
}

export async function drift(ctx: CommandContext, o: Flags): Promise<number> {
  const r = await driftCommand(ctx, o);
  printDrift(ctx.out, r);
  return driftExitCode(r);
}

/**
 * `rollout --skip-drifted`: the selection without its drifted tenants, each
 * with the reason frozen in the rollout (shown by `rollout status`). A tenant
 * that cannot be read stays in (the rollout reports its connection failure).
 */
export async function withoutDrifted(
  fctx: CommandContext,
  tenants: Tenant[],
  env: Record<string, string | undefined> = process.env,
): Promise<{ tenants: Tenant[]; skipped: { id: string; reason: string }[] }> {
  const r = await driftOfTenants(tenants, { trackingTable: fctx.config.trackingTable, concurrency: 8, env });
  for (const u of r.unreadable) fctx.out.error(`! --skip-drifted: could not read ${u.id} (${u.error}); it stays in the rollout`);
  const reasons = new Map<string, string>();
  for (const g of r.groups)
    for (const x of g.outliers)
      if (r.drifted.includes(x.id)) {
        const more = x.differences.length > 1 ? ` (+${x.differences.length - 1} more)` : '';
        reasons.set(x.id, `schema drift at ${g.version}: ${x.differences[0] ?? 'fingerprint differs'}${more}`);
      }
  return {
    tenants: tenants.filter((t) => !reasons.has(t.id)),
    skipped: tenants.filter((t) => reasons.has(t.id)).map((t) => ({ id: t.id, reason: reasons.get(t.id)! })),
  };
}
