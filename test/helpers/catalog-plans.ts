/**
 * The catalog queries a worker runs per tenant, with their plans: a pg.Client
 * that EXPLAINs every catalog query it is asked to run, just before running it,
 * in the same transaction state (behind a savepoint, or in a transaction of its
 * own that is rolled back), so the plan is the one the query gets. Used by the
 * regression test (test/integration/scale-catalog-plans.test.ts, with
 * enable_seqscan off: a Seq Scan left in a plan is one with no index path) and
 * by `bench/catalog-plans.ts` on a database of 10,000 tenant schemas.
 */
import pg from 'pg';

/** Catalogs that grow with every tenant schema: a scan of one of them is O(fleet) per tenant. */
export const GROWING_CATALOGS = [
  'pg_class',
  // a row per tenant schema
  'pg_namespace',
  'pg_attribute',
  'pg_constraint',
  'pg_type',
  'pg_index',
  'pg_depend',
  'pg_attrdef',
  'pg_trigger',
  'pg_proc',
  'pg_rewrite',
];

export interface RecordedPlan {
  /** what the caller was doing (set with `doing`) */
  step: string;
  sql: string;
  values?: unknown[];
  plan: string;
  /** with `analyze`: rows each scan of a catalog read (EXPLAIN ANALYZE) */
  reads?: CatalogRead[];
  /** how long the EXPLAIN ANALYZE took */
  analyzeMs?: number;
}

export interface CatalogRead {
  relation: string;
  node: string;
  index?: string;
  /** (rows returned + rows removed by filter or recheck) x loops */
  rows: number;
}

/** Rows read per scan node of a catalog, from EXPLAIN (ANALYZE, FORMAT JSON). */
export function catalogReads(plan: any): CatalogRead[] {
  const out: CatalogRead[] = [];
  const walk = (node: any) => {
    const rel: string | undefined = node['Relation Name'];
    if (rel?.startsWith('pg_')) {
      const loops = node['Actual Loops'] ?? 0;
      const rows = (node['Actual Rows'] + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0)) * loops;
      out.push({ relation: rel, node: node['Node Type'], ...(node['Index Name'] ? { index: node['Index Name'] } : {}), rows: Math.round(rows) });
    }
    for (const child of node.Plans ?? []) walk(child);
  };
  walk(plan);
  return out;
}

const CATALOG = /\bpg_(class|attribute|constraint|namespace|type|depend|index|attrdef|trigger|proc|rewrite|stat_xact|locks)\b|to_regclass/;

/** One statement per SELECT/WITH of a simple-protocol batch (catalog statements never contain a `;` of their own). */
function catalogStatements(text: string, values: unknown[] | undefined): string[] {
  const parts = values?.length ? [text] : text.replace(/--[^\n]*/g, '').split(/;\s*(?=[A-Za-z])/);
  return parts.map((p) => p.trim().replace(/;\s*$/, '')).filter((p) => /^(SELECT|WITH)\b/i.test(p) && CATALOG.test(p));
}

export class PlanRecordingClient extends pg.Client {
  plans: RecordedPlan[] = [];
  step = '';
  recording = true;
  /** settings made local to each EXPLAIN (e.g. enable_seqscan = off) */
  explainSettings: Record<string, string> = { jit: 'off' };
  /** also EXPLAIN ANALYZE each query (it runs twice: catalog reads only, behind the savepoint) to count the rows it reads */
  analyze = false;

  /** when each step started (performance.now()) */
  steps: { step: string; at: number }[] = [];

  doing(step: string): this {
    this.step = step;
    this.steps.push({ step, at: performance.now() });
    return this;
  }

  override query(...args: any[]): any {
    const [text, values] = args;
    if (!this.recording || typeof text !== 'string' || typeof args[args.length - 1] === 'function') return (super.query as any)(...args);
    const statements = catalogStatements(text, Array.isArray(values) ? values : undefined);
    if (!statements.length) return (super.query as any)(...args);
    return this.explainAll(statements, Array.isArray(values) ? values : undefined).then(() => (super.query as any)(...args));
  }

  private async explainAll(statements: string[], values: unknown[] | undefined): Promise<void> {
    const raw = (sql: string, v?: unknown[]) => (pg.Client.prototype.query as any).call(this, sql, v) as Promise<pg.QueryResult>;
    let inTransaction = true;
    try {
      await raw('SAVEPOINT flotilla_explain');
    } catch {
      // 25P01 outside a transaction block (25P02 in an aborted one: the query itself will fail)
      inTransaction = false;
      await raw('BEGIN');
    }
    try {
      for (const [k, v] of Object.entries(this.explainSettings)) await raw(`SELECT set_config($1, $2, true)`, [k, v]);
      for (const sql of statements) {
        try {
          const r = await raw(`EXPLAIN (COSTS OFF) ${sql}`, values);
          const recorded: RecordedPlan = { step: this.step, sql, values, plan: r.rows.map((x) => x['QUERY PLAN']).join('\n') };
          if (this.analyze) {
            const t = performance.now();
            const a = await raw(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, FORMAT JSON) ${sql}`, values);
            const json = a.rows[0]['QUERY PLAN'];
            recorded.reads = catalogReads((typeof json === 'string' ? JSON.parse(json) : json)[0].Plan);
            recorded.analyzeMs = Math.round(performance.now() - t);
          }
          this.plans.push(recorded);
        } catch (e) {
          // e.g. the table the statement reads does not exist yet: the query itself will say so
          this.plans.push({ step: this.step, sql, values, plan: `(not explained: ${(e as Error).message})` });
          if (inTransaction) await raw('ROLLBACK TO SAVEPOINT flotilla_explain');
          else {
            await raw('ROLLBACK');
            await raw('BEGIN');
          }
          for (const [k, v] of Object.entries(this.explainSettings)) await raw(`SELECT set_config($1, $2, true)`, [k, v]);
        }
      }
    } finally {
      if (inTransaction) await raw('ROLLBACK TO SAVEPOINT flotilla_explain; RELEASE SAVEPOINT flotilla_explain');
      else await raw('ROLLBACK');
    }
  }
}

/** The scans of a plan: "Seq Scan on pg_class c", "Index Scan using pg_class_oid_index on pg_class c", ... */
export function scans(plan: string): string[] {
  return [...plan.matchAll(/((?:Parallel )?(?:Seq Scan|Index Only Scan|Index Scan|Bitmap Heap Scan)(?: Backward)?(?: using \S+)? on \S+)/g)].map((m) => m[1]!);
}

/** Seq Scans of catalogs that grow with the fleet. */
export function growingSeqScans(plan: string): string[] {
  return scans(plan).filter((s) => {
    const m = /^(?:Parallel )?Seq Scan on (\S+)/.exec(s);
    return !!m && GROWING_CATALOGS.includes(m[1]!);
  });
}

/**
 * What a worker does to one schema tenant, through `client` (tracking table
 * `migrations`): read the ledger, migrate the guide's files (or `files`), the
 * post-commit checks, then the no-op run; a --single-transaction pair, a
 * non-transactional file, and a database-tenant style run (no --schema).
 * Each step is named in `client.step`. Returns nothing: read `client.plans`.
 */
export async function perTenantQueries(
  client: PlanRecordingClient,
  schema: string,
  guide: import('../../src/core/migration-set.js').MigrationFile[],
): Promise<void> {
  const { buildMigrationSet } = await import('../../src/core/migration-set.js');
  const { Migrator } = await import('../../src/migrator.js');
  const { readLedger, resolveLedger } = await import('../../src/adapters/pg/ledger.js');
  const { postChecks } = await import('../../src/adapters/pg/post-checks.js');
  const ok = (r: { failed?: { error: unknown } }) => {
    if (r.failed) throw r.failed.error;
  };
  const set = await buildMigrationSet(guide);
  client.doing('read ledger (new schema)');
  await readLedger(client, await resolveLedger(client, schema, 'migrations'));
  client.doing('migrate (guide files, new schema)');
  ok(await new Migrator(client, { schema }).migrate(set));
  client.doing('post-checks + fingerprint');
  await postChecks(client, schema, 'migrations');
  client.doing('no-op migrate');
  ok(await new Migrator(client, { schema }).migrate(set));
  client.doing('read ledger (existing schema)');
  await readLedger(client, await resolveLedger(client, schema, 'migrations'));
  const more = await buildMigrationSet([
    ...guide,
    { name: '901_rows.sql', sql: "UPDATE products SET description = '' WHERE description IS NULL;\nDELETE FROM users WHERE id < 0;" },
    { name: '902_deferred.sql', sql: 'CREATE TABLE notes (id int PRIMARY KEY, user_id int REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED);' },
  ]);
  client.doing('migrate --single-transaction (two files)');
  ok(await new Migrator(client, { schema, singleTransaction: true }).migrate(more));
  const alone = await buildMigrationSet([
    ...more.migrations.map((m) => ({ name: m.name, sql: m.sql })),
    { name: '903_concurrently.sql', sql: 'CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_products_price ON products (price);' },
    // the careful path naming one table: its snapshot looks the table up by (relname, relnamespace), not by name alone
    { name: '904_one_table.sql', sql: 'UPDATE products SET name = name WHERE false;' },
  ]);
  client.doing('migrate (non-transactional file)');
  ok(await new Migrator(client, { schema }).migrate(alone));
  client.doing('post-checks (again)');
  await postChecks(client, schema, 'migrations');
  client.doing('status, no --schema (database tenant: current schema)');
  await client.query(`SET search_path TO "${schema.replace(/"/g, '""')}"`);
  await new Migrator(client, {}).status(alone);
  await client.query('RESET search_path');
}
