/**
 * The fleet's blast radius (pure): each tenant's lint findings (of the files
 * pending there) joined with the real size of the table each one locks,
 * grouped by finding, tenants sorted by risk (largest first), with a rough
 * time estimate from the size. Also the size order of `rollout --order-by size`.
 */
import type { Migration } from '../migration-set.js';
import type { LintFinding, RelRef } from './check.js';
import { RULES, type Cost, type Severity } from './rules.js';

/**
 * Assumed throughput, bytes per second, for the work a statement does under
 * its lock. Figures of an ordinary server with SSDs, not measured on the
 * tenant: an estimate to rank tenants and spot the minutes-long ones, never
 * a promise (indexes, TOAST, I/O load and CPU change it several-fold).
 */
export const ASSUMED_BYTES_PER_SECOND: Readonly<Partial<Record<Cost, number>>> = Object.freeze({
  rewrite: 50e6,
  'index-build': 50e6,
  rows: 50e6,
  scan: 200e6,
});

export const MANY_ROWS = 1_000_000;

export interface TenantSize {
  tenant: string;
  /** the table as found in the tenant (schema-qualified), null when not found */
  table: string | null;
  rows: number | null;
  bytes: number | null;
  /** seconds, from bytes and the assumed throughput; null when no estimate applies */
  estimateSeconds: number | null;
}

export interface BlastGroup {
  rule: LintFinding['rule'];
  severity: Severity;
  file: string;
  line: number;
  lock: LintFinding['lock'];
  cost: Cost;
  /** the table (or index) as the file names it */
  target: string | null;
  message: string;
  safer: string;
  /** tenants where the file is pending, largest first; not found last */
  tenants: TenantSize[];
  /** how many of them hold more than MANY_ROWS rows */
  overManyRows: number;
}

export interface TenantFinding {
  finding: LintFinding;
  table: string | null;
  rows: number | null;
  bytes: number | null;
}

export function estimateSeconds(cost: Cost, bytes: number | null): number | null {
  const speed = ASSUMED_BYTES_PER_SECOND[cost];
  return speed === undefined || bytes === null ? null : bytes / speed;
}

function targetOf(f: LintFinding): string | null {
  const l = (r: RelRef) => (r.schema ? `${r.schema}.${r.name}` : r.name);
  return f.table ? l(f.table) : f.index ? `index ${l(f.index)}` : null;
}

/** Larger is riskier: bytes, then rows; unknown sizes after known ones, tables not found last. */
function byRisk(a: TenantSize, b: TenantSize): number {
  const rank = (t: TenantSize) => (t.table === null ? 2 : t.bytes === null && t.rows === null ? 1 : 0);
  return rank(a) - rank(b) || (b.bytes ?? -1) - (a.bytes ?? -1) || (b.rows ?? -1) - (a.rows ?? -1) || a.tenant.localeCompare(b.tenant);
}

export function blastRadius(perTenant: ReadonlyMap<string, readonly TenantFinding[]>): BlastGroup[] {
  const groups = new Map<string, BlastGroup>();
  for (const [tenant, list] of perTenant) {
    for (const { finding: f, table, rows, bytes } of list) {
      const key = `${f.file}\0${f.line}\0${f.rule}\0${targetOf(f)}\0${f.message}`;
      let g = groups.get(key);
      if (!g) {
        g = {
          rule: f.rule,
          severity: f.severity,
          file: f.file,
          line: f.line,
          lock: f.lock,
          cost: f.cost,
          target: targetOf(f),
          message: f.message,
          safer: RULES[f.rule].safer,
          tenants: [],
          overManyRows: 0,
        };
        groups.set(key, g);
      }
      g.tenants.push({ tenant, table, rows, bytes, estimateSeconds: table === null ? null : estimateSeconds(f.cost, bytes) });
    }
  }
  const out = [...groups.values()];
  for (const g of out) {
    g.tenants.sort(byRisk);
    g.overManyRows = g.tenants.filter((t) => (t.rows ?? 0) > MANY_ROWS).length;
  }
  const top = (g: BlastGroup) => g.tenants[0]?.bytes ?? -1;
  return out.sort(
    (a, b) => (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1) || top(b) - top(a) || a.file.localeCompare(b.file) || a.line - b.line,
  );
}

/** Every relation the set's statements name (RangeVars): what `--order-by size` weighs. */
export function namedRelations(migrations: readonly Pick<Migration, 'statements'>[]): RelRef[] {
  const seen = new Map<string, RelRef>();
  const visit = (n: unknown): void => {
    if (Array.isArray(n)) for (const x of n) visit(x);
    else if (n && typeof n === 'object') {
      const o = n as Record<string, any>;
      if (o.RangeVar?.relname) add(o.RangeVar);
      else if (typeof o.relname === 'string' && 'inh' in o) add(o);
      for (const v of Object.values(o)) if (v && typeof v === 'object') visit(v);
    }
  };
  const add = (r: Record<string, any>) => {
    const ref: RelRef = r.schemaname ? { schema: String(r.schemaname), name: String(r.relname) } : { name: String(r.relname) };
    seen.set(`${ref.schema ?? ''}.${ref.name}`, ref);
  };
  for (const m of migrations) for (const s of m.statements) visit(s.node);
  return [...seen.values()];
}

/**
 * Small tenants first, the largest last (stable: equal sizes keep their
 * order). A tenant whose size could not be read counts as the largest: a
 * canary drawn from the small ones must not be a tenant we know nothing of.
 */
export function orderBySize<T extends { id: string }>(
  tenants: readonly T[],
  size: ReadonlyMap<string, { bytes: number | null; tiebreak?: number | null }>,
): T[] {
  const key = (t: T) => size.get(t.id);
  return tenants
    .map((t, i) => ({ t, i }))
    .sort((a, b) => {
      const x = key(a.t);
      const y = key(b.t);
      const xb = x?.bytes ?? Infinity;
      const yb = y?.bytes ?? Infinity;
      if (xb !== yb) return xb < yb ? -1 : 1;
      const xt = x?.tiebreak ?? Infinity;
      const yt = y?.tiebreak ?? Infinity;
      if (xt !== yt) return xt < yt ? -1 : 1;
      return a.i - b.i;
    })
    .map((x) => x.t);
}

export function humanBytes(n: number | null): string {
  if (n === null) return '? B';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v >= 100 || u === 0 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}

export function humanRows(n: number | null): string {
  if (n === null) return '? rows';
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}G rows`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M rows`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k rows`;
  return `${n} rows`;
}

export function humanSeconds(s: number | null): string {
  if (s === null) return '';
  if (s < 1) return '<1 s';
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
