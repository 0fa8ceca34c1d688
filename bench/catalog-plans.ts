/**
 * `npm run bench:catalog-plans -- --database <name> [--seqscan-off] [--json file]`
 *
 * The plan of every catalog query a worker runs per tenant (ledger, lock,
 * validation scope and snapshots, deferred triggers, post-checks and
 * fingerprint, status), EXPLAINed in place on a database that holds many tenant
 * schemas (build one with `--build 10000`: the guide's migrations in schemas
 * tenant_1..tenant_N). Prints each query's scans and flags a Seq Scan on a
 * catalog that grows with the fleet (test/helpers/catalog-plans.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { readMigrationFiles } from '../src/adapters/fs-source.js';
import { GROWING_CATALOGS, PlanRecordingClient, growingSeqScans, perTenantQueries, scans } from '../test/helpers/catalog-plans.js';
import { REPO, adminQuery, dbUrl } from '../test/helpers/fleet-base.js';

const { values } = parseArgs({
  options: {
    database: { type: 'string', default: 'flotilla_catalog_plans' },
    build: { type: 'string', default: '0' },
    'seqscan-off': { type: 'boolean', default: false },
    analyze: { type: 'boolean', default: false },
    json: { type: 'string', default: 'catalog-plans.json' },
  },
});
const admin = process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function build(url: string, n: number): Promise<void> {
  const guide = (await readMigrationFiles(join(REPO, 'migrations'))).map((f) => f.sql).join('\n');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('SET synchronous_commit = off');
    const have = Number((await client.query(`SELECT count(*) AS n FROM pg_namespace WHERE nspname LIKE 'tenant\\_%'`)).rows[0].n);
    for (let i = have + 1; i <= n; i++) {
      const sql = `CREATE SCHEMA tenant_${i}; SET search_path TO tenant_${i};\n${guide}
        CREATE TABLE migrations (name text PRIMARY KEY, checksum text, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms integer, applied_by text);`;
      // one implicit transaction per schema; the shared lock table is shared with whatever else runs: retry
      for (let attempt = 1; ; attempt++) {
        try {
          await client.query(sql);
          break;
        } catch (e) {
          if (attempt >= 10) throw e;
          await new Promise((r) => setTimeout(r, 2000));
        }
      }
      if (i % 1000 === 0) console.log(`built ${i} schemas`);
    }
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  const url = dbUrl(admin, values.database!);
  if (Number(values.build) > 0) {
    await adminQuery(admin, `CREATE DATABASE ${values.database}`).catch(() => {});
    await build(url, Number(values.build));
  }
  const client = new PlanRecordingClient({ connectionString: url });
  await client.connect();
  if (values['seqscan-off']) client.explainSettings = { enable_seqscan: 'off', jit: 'off' };
  client.analyze = values.analyze!;
  const schema = `plans_${Date.now()}`;
  let failure: string | undefined;
  const info = (
    await client.query(`SELECT (SELECT count(*) FROM pg_namespace)::int AS schemas, (SELECT count(*) FROM pg_class)::int AS classes, version() AS v`)
  ).rows[0];
  console.log(`database ${values.database}: ${info.schemas} schemas, ${info.classes} pg_class rows; ${info.v}`);
  try {
    await perTenantQueries(client, schema, await readMigrationFiles(join(REPO, 'migrations')));
  } catch (e) {
    failure = `[${client.step}] ${(e as Error).message}`;
  } finally {
    client.recording = false;
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await client.end();
  }
  // one line per distinct query text and step
  const seen = new Set<string>();
  let bad = 0;
  const out: { step: string; sql: string; scans: string[]; growingSeqScans: string[]; plan: string; rowsRead?: number; reads?: unknown; analyzeMs?: number }[] =
    [];
  for (const p of client.plans) {
    const key = `${p.step}\n${p.sql}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const g = growingSeqScans(p.plan);
    bad += g.length ? 1 : 0;
    const rowsRead = p.reads?.filter((x) => GROWING_CATALOGS.includes(x.relation)).reduce((a, x) => a + x.rows, 0);
    out.push({ step: p.step, sql: p.sql, scans: scans(p.plan), growingSeqScans: g, plan: p.plan, rowsRead, reads: p.reads, analyzeMs: p.analyzeMs });
    console.log(`\n[${p.step}] ${p.sql.replace(/\s+/g, ' ').slice(0, 140)}`);
    console.log(`  ${g.length ? 'SEQ SCAN OF A GROWING CATALOG: ' : ''}${[...new Set(scans(p.plan))].join('; ') || p.plan.split('\n')[0]}`);
    if (rowsRead !== undefined) console.log(`  rows read from catalogs that grow with the fleet: ${rowsRead}; EXPLAIN ANALYZE ${p.analyzeMs} ms`);
  }
  writeFileSync(values.json!, `${JSON.stringify({ database: values.database, ...info, failure, queries: out }, null, 2)}\n`);
  if (failure) console.log(`\nthe scenario stopped: ${failure}`);
  console.log(`\n${out.length} distinct catalog queries, ${bad} with a Seq Scan of a growing catalog; written to ${values.json}`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
