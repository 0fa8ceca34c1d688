/**
 * `npm run build && npm run build:bench && node .bench-dist/bench/drift.js [--schemas 3000] [--reads 200]`:
 * the schema fingerprint (adapters/pg/post-checks.ts schemaCatalog: the workers'
 * post-commit check and `flotilla drift`) on one database holding many tenant
 * schemas, next to the query it replaced (the schema's relations found by
 * joining pg_class to pg_namespace by name, no index on relnamespace), same
 * run, same schemas. Prints ms per schema (median) for both, and whether
 * EXPLAIN of the new query scans pg_class.
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { CATALOG_SQL, schemaCatalog } from '../src/adapters/pg/post-checks.js';
import { adminQuery, dbUrl } from '../test/helpers/fleet-base.js';

const { values } = parseArgs({ options: { schemas: { type: 'string', default: '3000' }, reads: { type: 'string', default: '200' } } });
const admin = process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB = 'flotilla_bench_drift';
const SCHEMAS = Number(values.schemas);
const READS = Math.min(Number(values.reads), SCHEMAS);

/** The post-commit fingerprint query before this change (git show 8d97e72:src/adapters/pg/post-checks.ts), the baseline. */
const OLD_SQL = `WITH t AS (
       SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm') AND c.relname <> $2)
     SELECT
       (SELECT md5(coalesce(string_agg(x, E'\\n' ORDER BY x), '')) FROM (
          SELECT 'col ' || t.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END AS x
            FROM t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
          UNION ALL SELECT 'con ' || t.relname || '.' || k.conname || ' ' || pg_get_constraintdef(k.oid) FROM t JOIN pg_constraint k ON k.conrelid = t.oid
          UNION ALL SELECT 'idx ' || replace(pg_get_indexdef(i.indexrelid), ' ON ' || quote_ident($1) || '.', ' ON ') FROM t JOIN pg_index i ON i.indrelid = t.oid
          UNION ALL SELECT 'typ ' || ty.typname || ' ' || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = ty.oid), '')
            FROM pg_type ty JOIN pg_namespace n ON n.oid = ty.typnamespace WHERE n.nspname = $1 AND ty.typtype = 'e'
       ) parts) AS fingerprint`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function setup(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (let from = 1; from <= SCHEMAS; from += 200) {
      const to = Math.min(SCHEMAS, from + 199);
      await c.query(`DO $$ BEGIN FOR i IN ${from}..${to} LOOP EXECUTE format(
        'CREATE SCHEMA s%1$s; CREATE TABLE s%1$s.users (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
         CREATE TABLE s%1$s.orders (id serial PRIMARY KEY, user_id int REFERENCES s%1$s.users (id), note varchar(200) CHECK (note <> %2$L));
         CREATE INDEX ON s%1$s.orders (user_id); CREATE TYPE s%1$s.state AS ENUM (%3$L, %4$L);
         CREATE FUNCTION s%1$s.touch() RETURNS trigger LANGUAGE plpgsql AS %5$L;
         CREATE TRIGGER orders_touch BEFORE UPDATE ON s%1$s.orders FOR EACH ROW EXECUTE FUNCTION s%1$s.touch();
         CREATE TABLE s%1$s.migrations (name text PRIMARY KEY, checksum text, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms integer, applied_by text)',
        i, '', 'on', 'off', 'BEGIN RETURN NEW; END'); END LOOP; END $$`);
    }
    await c.query('ANALYZE');
  } finally {
    await c.end();
  }
}

async function main(): Promise<void> {
  await adminQuery(admin, `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await adminQuery(admin, `CREATE DATABASE ${DB}`);
  const url = dbUrl(admin, DB);
  const t0 = performance.now();
  await setup(url);
  console.log(`${SCHEMAS} schemas (2 tables, an index, an enum, a function, a trigger each) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const picks = Array.from({ length: READS }, (_, i) => `s${1 + Math.floor((i * SCHEMAS) / READS)}`);
    const oldMs: number[] = [];
    const newMs: number[] = [];
    const fingerprints = new Set<string>();
    for (const s of picks) {
      let t = performance.now();
      await c.query(OLD_SQL, [s, 'migrations']);
      oldMs.push(performance.now() - t);
      t = performance.now();
      fingerprints.add((await schemaCatalog(c, s, 'migrations')).fingerprint);
      newMs.push(performance.now() - t);
    }
    console.log(
      `per schema, median of ${READS}: before (pg_class by namespace name) ${median(oldMs).toFixed(2)} ms · now (pg_depend index) ${median(newMs).toFixed(2)} ms`,
    );
    console.log(`fingerprints: ${fingerprints.size} distinct over ${READS} identical schemas (expected 1)`);
    const plan = await c.query(`EXPLAIN ${CATALOG_SQL}`, ['s1', 'migrations']);
    const scans = plan.rows.map((r) => String(r['QUERY PLAN'])).filter((l) => /Seq Scan on pg_(class|depend|attribute|constraint|index|proc|type)\b/.test(l));
    console.log(
      `EXPLAIN of the catalog query: ${scans.length ? `sequential scans:\n${scans.join('\n')}` : 'no sequential scan of pg_class, pg_depend, pg_attribute, pg_constraint, pg_index, pg_proc, pg_type'}`,
    );
  } finally {
    await c.end();
    await adminQuery(admin, `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
