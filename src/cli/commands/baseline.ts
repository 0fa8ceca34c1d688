/**
 * `flotilla baseline --up-to <NNN>`: record the files up to NNN as applied
 * without running them, for a database that existed before Flotilla (its
 * schema already has what they do). One database (DATABASE_URL), or a fleet
 * with `--tenants <file>` and a selector (--only, --tag, --all), at most
 * --concurrency tenants at once, URLs resolved from this process's environment.
 * The rows are marked as a baseline (core/baseline.ts) and `status` shows them so.
 * Refused (exit 2, nothing recorded) when NNN names no file or a file up to NNN
 * is already recorded with another checksum; with a fleet, per tenant.
 */
import { loadMigrationDir } from '../../adapters/fs-source.js';
import { connect } from '../../adapters/pg/connection.js';
import { connectLockSessions } from '../../adapters/pg/lock.js';
import { engineSettings, requireDatabaseUrl } from '../../config.js';
import { parseUpTo, planBaseline } from '../../core/baseline.js';
import { EXIT_CODES, isFlotillaError, type FlotillaError } from '../../core/errors.js';
import { redactSecrets } from '../../core/redact.js';
import { parseSelectorFlags, resolveDatabaseUrl } from '../../core/tenants.js';
import { Migrator, type BaselineReport } from '../../migrator.js';
import type { Output } from '../output.js';
import { intOption, type Flags } from '../requests.js';
import { loadTenants } from '../tenants-source.js';
import { cliIdentity, type CommandContext } from './single.js';

export interface BaselineTenantResult {
  id: string;
  recorded: string[];
  already: string[];
  error?: Record<string, unknown>;
}

export interface BaselineResult {
  upTo: string;
  /** one database: its report */
  database?: BaselineReport;
  /** a fleet: one entry per tenant, in the file's order */
  tenants?: BaselineTenantResult[];
}

async function baselineOne(ctx: CommandContext, url: string, schema: string | undefined, upTo: bigint, set: Awaited<ReturnType<typeof loadMigrationDir>>) {
  const client = await connect(url, { applicationName: 'flotilla-cli' });
  try {
    const settings = { ...engineSettings(ctx.config, cliIdentity()), ...(schema !== undefined ? { schema } : {}) };
    const lockSessions = connectLockSessions(url, { applicationName: 'flotilla-cli lock' });
    return await new Migrator(client, settings, undefined, { lockSessions }).baseline(set, upTo);
  } finally {
    await client.end().catch(() => {});
  }
}

export async function baselineCommand(ctx: CommandContext, o: Flags, env: Record<string, string | undefined> = process.env): Promise<BaselineResult> {
  const upTo = parseUpTo('--up-to', o.upTo);
  const set = await loadMigrationDir(ctx.config.dir);
  // refused before any database is touched when NNN names no file
  planBaseline(set, [], upTo);
  const name = set.migrations.find((m) => m.version === upTo)!.name;
  if (o.tenants === undefined) return { upTo: name, database: await baselineOne(ctx, requireDatabaseUrl(ctx.config), undefined, upTo, set) };
  const { selection, source } = parseSelectorFlags({ tenants: o.tenants, only: o.only, tag: o.tag, all: o.all });
  const tenants = await loadTenants({ ...(source.kind === 'file' ? { tenantsFile: source.path } : {}), selection }, undefined);
  const concurrency = intOption('--concurrency', o.concurrency) ?? 8;
  const results: BaselineTenantResult[] = new Array(tenants.length);
  let next = 0;
  const lane = async () => {
    while (next < tenants.length) {
      const i = next++;
      const t = tenants[i]!;
      try {
        const r = await baselineOne(ctx, resolveDatabaseUrl(t.databaseUrl, env, t.id), t.schema, upTo, set);
        results[i] = { id: t.id, recorded: r.recorded, already: r.already };
      } catch (e) {
        const error = isFlotillaError(e) ? e.toJSON() : { code: 'error', kind: 'migration', message: e instanceof Error ? e.message : String(e) };
        results[i] = { id: t.id, recorded: [], already: [], error: JSON.parse(redactSecrets(JSON.stringify(error))) };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, tenants.length)) }, lane));
  return { upTo: name, tenants: results };
}

export function printBaseline(out: Output, r: BaselineResult): void {
  if (out.json) {
    out.data(r);
    return;
  }
  const one = (recorded: string[], already: string[]) =>
    `${recorded.length} recorded as applied (baseline)${recorded.length ? `: ${recorded.join(', ')}` : ''}${already.length ? `; ${already.length} already recorded` : ''}`;
  if (r.database) out.line(`✓ Baseline up to ${r.upTo} in ${r.database.schema}: ${one(r.database.recorded, r.database.already)}`);
  for (const t of r.tenants ?? []) {
    if (t.error) out.line(`✗ ${t.id}: ${String(t.error.message)}`);
    else out.line(`✓ ${t.id}: ${one(t.recorded, t.already)}`);
  }
}

/** 0 when every database was baselined; else the most severe failure's code (2 refused, 3 unreachable, 1 other). */
export function baselineExitCode(r: BaselineResult): number {
  const kinds = (r.tenants ?? []).filter((t) => t.error).map((t) => String(t.error!.kind));
  if (!kinds.length) return 0;
  return Math.max(...kinds.map((k) => EXIT_CODES[k as FlotillaError['kind']] ?? 1));
}

export async function baseline(ctx: CommandContext, o: Flags): Promise<number> {
  const r = await baselineCommand(ctx, o);
  printBaseline(ctx.out, r);
  return baselineExitCode(r);
}
