/**
 * Schema drift: a tenant whose schema differs from the other tenants at the
 * same applied version (someone added an index by hand, a hotfix changed a
 * column type on one database). Pure: the catalog is read by
 * adapters/pg/post-checks.ts (schemaCatalog), which both the workers' post-commit
 * check and `flotilla drift` use, so the two fingerprint a schema alike.
 *
 * A schema is a list of items (kind, object, value). Names that Postgres makes
 * up and that legitimately differ between tenants (auto-named constraints,
 * indexes, serial sequences) are no part of an item: constraints and indexes
 * are keyed by their definition, serial defaults by what they are.
 */
import { createHash } from 'node:crypto';
import { parseFileName } from './filename.js';

export interface SchemaItem {
  kind: string;
  object: string;
  value: string;
}

const RELKINDS: Record<string, string> = { r: 'table', p: 'partitioned table', v: 'view', m: 'materialized view', f: 'foreign table' };

/** `"my schema".` or `app.`, as Postgres qualifies names of that schema. */
function qualifier(schema: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(schema) ? `${schema}.` : `"${schema.replace(/"/g, '""')}".`;
}

/** Catalog rows [kind, object, value] -> items with made-up names and the schema's own name taken out. */
export function normaliseItems(raw: readonly [string, string, string][], schema: string): SchemaItem[] {
  const q = qualifier(schema);
  const unqualify = (s: string) => s.split(q).join('');
  const items: SchemaItem[] = [];
  for (const [kind, object, value] of raw) {
    switch (kind) {
      case 'relation':
        items.push({ kind: RELKINDS[value] ?? 'relation', object, value: '' });
        break;
      case 'column':
        // nextval('orders_id_seq'::regclass): the sequence's name is Postgres's, not the schema's
        items.push({ kind, object, value: unqualify(value).replace(/nextval\('(?:[^']|'')*'::regclass\)/g, 'nextval(<sequence>)') });
        break;
      case 'constraint':
        items.push({ kind, object: `on ${object}: ${unqualify(value)}`, value: '' });
        break;
      case 'index':
        // CREATE [UNIQUE] INDEX <name> ON [ONLY] <schema>.<table> USING ...: the name is left out
        items.push({ kind, object: unqualify(value).replace(/^CREATE (UNIQUE )?INDEX (?:"(?:[^"]|"")*"|\S+) ON /, '$1INDEX ON '), value: '' });
        break;
      default:
        items.push({ kind, object, value: unqualify(value).replace(/\s+/g, ' ').trim() });
    }
  }
  return items.sort((a, b) => cmp(line(a), line(b)));
}

function line(i: SchemaItem): string {
  return `${i.kind}\t${i.object}\t${i.value}`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** One hash of the whole structure. */
export function fingerprintOf(items: readonly SchemaItem[]): string {
  const h = createHash('sha256');
  for (const l of items.map(line).sort(cmp)) h.update(`${l}\n`);
  return h.digest('hex').slice(0, 32);
}

const DEFINITION_ONLY = new Set(['function', 'view', 'trigger']);

/** What differs in `other` from `majority`, one readable line each ("column orders.note: text, majority character varying(200)"). */
export function describeDifferences(majority: readonly SchemaItem[], other: readonly SchemaItem[]): string[] {
  const key = (i: SchemaItem) => `${i.kind}\t${i.object}`;
  const group = (items: readonly SchemaItem[]) => {
    const m = new Map<string, string[]>();
    for (const i of items) m.set(key(i), [...(m.get(key(i)) ?? []), i.value]);
    return m;
  };
  const a = group(majority);
  const b = group(other);
  const out: string[] = [];
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort(cmp);
  for (const k of keys) {
    const [kind, object] = k.split('\t') as [string, string];
    const mv = a.get(k);
    const ov = b.get(k);
    const show = (vs: string[]) => (vs[0] && !DEFINITION_ONLY.has(kind) ? ` ${vs.join(' | ')}` : '');
    const sep = object.startsWith('on ') ? ' ' : ': ';
    if (!ov) out.push(`${kind} missing${sep}${object}${show(mv!)}`);
    else if (!mv) out.push(`${kind} extra${sep}${object}${show(ov)}`);
    else if (mv.join('\n') !== ov.join('\n')) {
      if (DEFINITION_ONLY.has(kind)) out.push(`${kind} ${object}: definition differs from the majority's`);
      else if (mv.length === ov.length) out.push(`${kind} ${object}: ${ov.join(' | ')}, majority ${mv.join(' | ')}`);
      else out.push(`${kind} ${object}: ${ov.length} of them, majority ${mv.length}`);
    }
  }
  return out;
}

/** One tenant's schema as read for a drift report. */
export interface TenantSchema {
  id: string;
  /** applied migrations (names), for grouping */
  applied: readonly string[];
  fingerprint: string;
  items: readonly SchemaItem[];
}

export interface DriftGroup {
  /** the newest applied migration of the group (or "(none)") */
  version: string;
  applied: number;
  tenants: string[];
  majority: { fingerprint: string; tenants: string[] };
  /** no fingerprint has more tenants than every other: nobody is called drifted */
  tie: boolean;
  outliers: { id: string; fingerprint: string; differences: string[] }[];
}

export interface DriftReport {
  groups: DriftGroup[];
  /** tenants whose schema differs from their group's majority (ties excluded) */
  drifted: string[];
}

/**
 * Tenants grouped by what they applied (the same list of migrations); in each
 * group the fingerprint most tenants share is the majority (first in the
 * given order on equal counts, then flagged as a tie), and every other tenant
 * an outlier, with its differences to the majority.
 */
export function driftReport(tenants: readonly TenantSchema[]): DriftReport {
  const groups = new Map<string, TenantSchema[]>();
  for (const t of tenants) {
    const k = [...t.applied].sort().join('\n');
    groups.set(k, [...(groups.get(k) ?? []), t]);
  }
  const out: DriftGroup[] = [];
  const drifted: string[] = [];
  for (const members of groups.values()) {
    const counts = new Map<string, number>();
    for (const t of members) counts.set(t.fingerprint, (counts.get(t.fingerprint) ?? 0) + 1);
    const ranked = [...counts.entries()].sort((x, y) => y[1] - x[1]);
    const [top, n] = ranked[0]!;
    const tie = ranked.length > 1 && ranked[1]![1] === n;
    const reference = members.find((t) => t.fingerprint === top)!;
    const outliers = members
      .filter((t) => t.fingerprint !== top)
      .map((t) => ({ id: t.id, fingerprint: t.fingerprint, differences: describeDifferences(reference.items, t.items) }));
    if (!tie) drifted.push(...outliers.map((o) => o.id));
    const applied = [...members[0]!.applied].sort((x, y) => {
      const vx = parseFileName(x)?.version ?? -1n;
      const vy = parseFileName(y)?.version ?? -1n;
      return vx < vy ? -1 : vx > vy ? 1 : cmp(x, y);
    });
    out.push({
      version: applied[applied.length - 1] ?? '(none)',
      applied: applied.length,
      tenants: members.map((t) => t.id),
      majority: { fingerprint: top, tenants: members.filter((t) => t.fingerprint === top).map((t) => t.id) },
      tie,
      outliers,
    });
  }
  return { groups: out, drifted };
}
