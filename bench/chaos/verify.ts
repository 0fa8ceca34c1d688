/**
 * The chaos run's verdict, read from the databases themselves (never from the
 * tool's report): tracking rows, side-effect counters and the catalog of every
 * tenant, compared with a reference schema built by plain SQL, and the control
 * database's per-tenant results compared with what the tenants hold.
 */
import pg from 'pg';
import type { MigrationSet } from '../../src/core/migration-set.js';
import { appliedByRollout, rolloutAppliedBy } from '../../src/core/rollout-applied.js';

export interface VerifyTenant {
  id: string;
  url: string;
  database: string;
  schema?: string;
}

export interface VerifyInput {
  tenants: VerifyTenant[];
  set: MigrationSet;
  /** extra migrations whose side effect (one chaos_effects row each) is counted */
  counted: string[];
  /** a database where the same files were applied with plain SQL (schema public) */
  referenceUrl: string;
  /** databases holding schema tenants: their public schema must stay empty */
  sharedDatabases: { url: string; database: string }[];
  controlUrl: string;
  rolloutId: string;
  /** ids of every worker process started (applied_by is `worker <id>`) */
  workerIds: Set<string>;
  /** applied_by of the CLI runs (pre-applied files, concurrent `pending` runners) */
  cliAppliedBy: string;
  /** tenants that a CLI run may have migrated */
  cliTenants: Set<string>;
  trackingTable?: string;
  parallel?: number;
}

export interface VerifyFigures {
  tenantsChecked: number;
  trackingRows: number;
  appliedByWorkers: number;
  appliedByCli: number;
  /** migrations a worker committed but never recorded (killed between commit and record) */
  unrecordedApplies: number;
  claims: number;
  tenantsClaimedMoreThanOnce: number;
  maxClaims: number;
  attemptRows: Record<string, number>;
  attemptErrors: Record<string, number>;
  tenantsRetried: number;
  finalRolloutState: string;
}

export interface VerifyResult {
  violations: string[];
  figures: VerifyFigures;
}

interface TenantFacts {
  id: string;
  rows: { name: string; checksum: string | null; applied_at: Date; applied_by: string | null }[];
  effects: Map<string, number>;
  signature: string[];
  invalidIndexes: string[];
  error?: string;
}

const q = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Catalog of one schema as sorted text lines, independent of the schema's name. */
export async function schemaSignature(c: pg.Client, schema: string, exclude: string[] = []): Promise<string[]> {
  await c.query(`SET search_path TO ${q(schema)}`);
  const strip = (s: string) =>
    s
      .split(`${q(schema)}.`)
      .join('')
      .split(`${schema}.`)
      .join('');
  const r = await c.query(
    `WITH rel AS (
       SELECT c.oid, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND NOT (c.relname = ANY($2::text[])))
     SELECT 'rel ' || relkind::text || ' ' || relname AS x FROM rel WHERE relkind IN ('r', 'p', 'v', 'm', 'S')
     UNION ALL SELECT 'col ' || rel.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                      || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
       FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE rel.relkind IN ('r', 'p')
     UNION ALL SELECT 'con ' || rel.relname || '.' || k.conname || ' ' || pg_get_constraintdef(k.oid) || CASE WHEN k.convalidated THEN '' ELSE ' NOT VALIDATED' END
       FROM rel JOIN pg_constraint k ON k.conrelid = rel.oid
     UNION ALL SELECT 'idx ' || pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END FROM rel JOIN pg_index i ON i.indrelid = rel.oid
     UNION ALL SELECT 'trg ' || rel.relname || '.' || t.tgname || ' ' || pg_get_triggerdef(t.oid) FROM rel JOIN pg_trigger t ON t.tgrelid = rel.oid WHERE NOT t.tgisinternal
     UNION ALL SELECT 'typ ' || ty.typname || ' ' || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = ty.oid), '')
       FROM pg_type ty JOIN pg_namespace n ON n.oid = ty.typnamespace WHERE n.nspname = $1 AND ty.typtype = 'e'
     UNION ALL SELECT 'fn ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1`,
    [schema, exclude],
  );
  return r.rows.map((x) => strip(x.x as string)).sort();
}

async function invalidIndexes(c: pg.Client, schema: string): Promise<string[]> {
  const r = await c.query(
    `SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace WHERE n.nspname = $1 AND NOT i.indisvalid ORDER BY 1`,
    [schema],
  );
  return r.rows.map((x) => x.relname as string);
}

/** A short-lived client for `fn`, closed afterwards whatever happens. */
export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>, applicationName = 'flotilla-chaos-verify'): Promise<T> {
  const c = new pg.Client({ connectionString: url, application_name: applicationName });
  c.on('error', () => {});
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

async function tenantFacts(t: VerifyTenant, table: string): Promise<TenantFacts> {
  const schema = t.schema ?? 'public';
  try {
    return await withClient(t.url, async (c) => {
      const exists = (await c.query(`SELECT to_regclass($1) IS NOT NULL AS ok`, [`${q(schema)}.${q(table)}`])).rows[0].ok as boolean;
      const rows = exists ? (await c.query(`SELECT name, checksum, applied_at, applied_by FROM ${q(schema)}.${q(table)} ORDER BY applied_at, name`)).rows : [];
      const hasEffects = (await c.query(`SELECT to_regclass($1) IS NOT NULL AS ok`, [`${q(schema)}.chaos_effects`])).rows[0].ok as boolean;
      const effects = new Map<string, number>();
      if (hasEffects)
        for (const r of (await c.query(`SELECT migration, count(*)::int AS n FROM ${q(schema)}.chaos_effects GROUP BY 1`)).rows) effects.set(r.migration, r.n);
      return {
        id: t.id,
        rows,
        effects,
        signature: await schemaSignature(c, schema, [table, `${table}_pkey`]),
        invalidIndexes: await invalidIndexes(c, schema),
      };
    });
  } catch (e) {
    return { id: t.id, rows: [], effects: new Map(), signature: [], invalidIndexes: [], error: (e as Error).message };
  }
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

function diffLines(expected: string[], actual: string[]): string {
  const a = new Set(actual);
  const e = new Set(expected);
  const missing = expected.filter((x) => !a.has(x));
  const extra = actual.filter((x) => !e.has(x));
  const show = (xs: string[]) => xs.slice(0, 3).join(' | ') + (xs.length > 3 ? ` (+${xs.length - 3})` : '');
  return [missing.length ? `missing ${show(missing)}` : '', extra.length ? `unexpected ${show(extra)}` : ''].filter(Boolean).join('; ');
}

export async function verifyFleet(input: VerifyInput): Promise<VerifyResult> {
  const violations: string[] = [];
  const table = input.trackingTable ?? 'migrations';
  const expected = input.set.migrations.map((m) => m.name);
  const checksums = new Map(input.set.migrations.map((m) => [m.name, m.checksum]));
  const reference = await withClient(input.referenceUrl, (c) => schemaSignature(c, 'public'));
  if (!reference.length) violations.push('reference schema is empty (the reference build failed)');

  const facts = await mapLimit(input.tenants, input.parallel ?? 4, (t) => tenantFacts(t, table));
  const byId = new Map(facts.map((f) => [f.id, f]));
  let trackingRows = 0;
  let appliedByWorkers = 0;
  let appliedByCli = 0;
  for (const f of facts) {
    if (f.error) {
      violations.push(`${f.id}: cannot read the tenant: ${f.error}`);
      continue;
    }
    trackingRows += f.rows.length;
    const names = f.rows.map((r) => r.name);
    // every migration, once, in file order (applied_at order)
    if (names.join(',') !== expected.join(','))
      violations.push(`${f.id}: tracking rows [${names.join(', ')}] are not the ${expected.length} migrations in order`);
    if (new Set(names).size !== names.length) violations.push(`${f.id}: duplicate tracking rows`);
    for (const r of f.rows) {
      if (checksums.has(r.name) && r.checksum !== checksums.get(r.name))
        violations.push(`${f.id}: ${r.name} recorded with checksum ${r.checksum}, the file's is ${checksums.get(r.name)}`);
      const by = r.applied_by ?? '';
      const worker = /^worker (\S+) \(rollout (\S+)\)$/.exec(by);
      if (worker && input.workerIds.has(worker[1]!) && worker[2] === input.rolloutId) appliedByWorkers++;
      else if (by === input.cliAppliedBy && input.cliTenants.has(f.id)) appliedByCli++;
      else violations.push(`${f.id}: ${r.name} applied by an unexpected runner "${by}"`);
    }
    // side effects: exactly one per counted migration, nothing else
    for (const name of input.counted) {
      const n = f.effects.get(name) ?? 0;
      if (n !== 1) violations.push(`${f.id}: side effect of ${name} counted ${n} times (expected exactly 1)`);
    }
    for (const [name, n] of f.effects) if (!input.counted.includes(name)) violations.push(`${f.id}: unexpected side effect "${name}" x${n}`);
    // nothing partially applied: the catalog is the reference's, no INVALID index
    const d = diffLines(reference, f.signature);
    if (d) violations.push(`${f.id}: schema differs from the reference: ${d}`);
    if (f.invalidIndexes.length) violations.push(`${f.id}: INVALID indexes ${f.invalidIndexes.join(', ')}`);
  }
  for (const s of input.sharedDatabases) {
    const leaked = await withClient(s.url, (c) => schemaSignature(c, 'public')).catch((e: Error) => [`(cannot read: ${e.message})`]);
    if (leaked.length) violations.push(`${s.database}: public schema of the shared database is not empty: ${leaked.slice(0, 3).join(' | ')}`);
  }

  // the control database: every tenant accounted for, results that agree with the tenants
  const figures: VerifyFigures = {
    tenantsChecked: facts.length,
    trackingRows,
    appliedByWorkers,
    appliedByCli,
    unrecordedApplies: 0,
    claims: 0,
    tenantsClaimedMoreThanOnce: 0,
    maxClaims: 0,
    attemptRows: {},
    attemptErrors: {},
    tenantsRetried: 0,
    finalRolloutState: '?',
  };
  await withClient(input.controlUrl, async (c) => {
    const rollout = (await c.query(`SELECT state, created_at FROM flotilla.rollouts WHERE id = $1`, [input.rolloutId])).rows[0];
    figures.finalRolloutState = rollout?.state ?? 'missing';
    if (!rollout) {
      violations.push(`control: rollout ${input.rolloutId} not found`);
      return;
    }
    if (rollout.state !== 'succeeded') violations.push(`control: rollout is ${rollout.state}, not succeeded`);
    const rts = (
      await c.query(
        `SELECT tenant_id, state, generation, attempts, applied, checks, error FROM flotilla.rollout_tenants WHERE rollout_id = $1 ORDER BY position`,
        [input.rolloutId],
      )
    ).rows;
    const attempts = (
      await c.query(
        `SELECT tenant_id, generation, attempt, kind, state, applied, error, worker FROM flotilla.attempts WHERE rollout_id = $1 ORDER BY tenant_id, generation, attempt`,
        [input.rolloutId],
      )
    ).rows;
    const seen = new Set<string>();
    for (const rt of rts) {
      if (seen.has(rt.tenant_id)) violations.push(`control: ${rt.tenant_id} appears twice in rollout_tenants`);
      seen.add(rt.tenant_id);
    }
    for (const t of input.tenants) if (!seen.has(t.id)) violations.push(`control: tenant ${t.id} is missing from the rollout (lost)`);
    for (const id of seen) if (!byId.has(id)) violations.push(`control: unknown tenant ${id} in the rollout`);

    for (const a of attempts) {
      figures.attemptRows[`${a.kind}:${a.state}`] = (figures.attemptRows[`${a.kind}:${a.state}`] ?? 0) + 1;
      if (a.error) {
        const code = String(a.error.pg?.code ?? (a.error.code && a.error.code !== 'error' ? a.error.code : String(a.error.message ?? 'error').slice(0, 40)));
        figures.attemptErrors[code] = (figures.attemptErrors[code] ?? 0) + 1;
      }
    }
    for (const rt of rts) {
      const f = byId.get(rt.tenant_id);
      figures.claims += rt.attempts;
      figures.maxClaims = Math.max(figures.maxClaims, rt.attempts);
      if (rt.attempts > 1) figures.tenantsClaimedMoreThanOnce++;
      if (rt.generation > 0) figures.tenantsRetried++;
      if (rt.state !== 'succeeded') violations.push(`control: ${rt.tenant_id} is ${rt.state}${rt.error ? ` (${rt.error.message})` : ''}`);
      if (!f || f.error) continue;
      const rowsByName = new Map(f.rows.map((r) => [r.name, r]));
      const applied: string[] = rt.applied ?? [];
      // what the control database says this generation applied is in the tenant, applied by a worker of this run
      for (const name of applied) {
        const row = rowsByName.get(name);
        if (!row) violations.push(`control: ${rt.tenant_id} says ${name} was applied, the tenant has no such tracking row`);
        else if (!(row.applied_by ?? '').startsWith('worker '))
          violations.push(`control: ${rt.tenant_id} says a worker applied ${name}, the tenant says "${row.applied_by}"`);
        else if (row.applied_at < rollout.created_at)
          violations.push(`control: ${rt.tenant_id} says ${name} was applied by this rollout, it was applied before it (${row.applied_at.toISOString()})`);
      }
      // the report equals the databases: the applied list is exactly what the tracking table says this rollout applied
      const truth = appliedByRollout(
        expected,
        f.rows.map((r) => ({ name: r.name, appliedBy: r.applied_by })),
        input.rolloutId,
      );
      if (applied.join(',') !== truth.join(','))
        violations.push(
          `control: ${rt.tenant_id}'s applied list [${applied.join(', ')}] is not what its tracking table says this rollout applied [${truth.join(', ')}]`,
        );
      // a tenant whose generation applied something was validated afterwards (post-commit checks recorded)
      if (applied.length && rt.state === 'succeeded' && !rt.checks)
        violations.push(`control: ${rt.tenant_id} succeeded with ${applied.length} applied migrations but without its post-commit checks`);
      if (rt.checks?.invalidIndexes?.length)
        violations.push(`control: ${rt.tenant_id} post-checks report INVALID indexes ${rt.checks.invalidIndexes.join(', ')}`);
      const mine = attempts.filter((a) => a.tenant_id === rt.tenant_id);
      const recorded = new Set<string>();
      for (const a of mine) {
        for (const name of (a.applied as string[]) ?? []) {
          recorded.add(name);
          const row = rowsByName.get(name);
          // each attempt's claim is backed by a tracking row written by that very worker
          if (!row)
            violations.push(`control: attempt ${a.generation}/${a.attempt} of ${rt.tenant_id} says ${name} was applied, the tenant has no such tracking row`);
          else if (row.applied_by !== rolloutAppliedBy(a.worker, input.rolloutId))
            violations.push(
              `control: attempt ${a.generation}/${a.attempt} of ${rt.tenant_id} (worker ${a.worker}) says it applied ${name}, the tenant says "${row.applied_by}"`,
            );
        }
        // a later attempt of the same generation must not erase what an earlier one applied
        if (a.generation === rt.generation && a.kind === 'migrate' && a.state === 'succeeded') {
          for (const name of (a.applied as string[]) ?? [])
            if (!applied.includes(name))
              violations.push(
                `control: ${rt.tenant_id}'s applied list [${applied.join(', ')}] lost ${name} (recorded as applied by attempt ${a.attempt}, ${a.state})`,
              );
        }
      }
      for (const r of f.rows) if ((r.applied_by ?? '').startsWith('worker ') && !recorded.has(r.name)) figures.unrecordedApplies++;
    }
  });
  return { violations, figures };
}
