/**
 * Post-commit checks of a migrated tenant (the validate job): every index
 * valid, every constraint validated, and a fingerprint of the schema's
 * structure to compare with the rest of the fleet (drift).
 *
 * Definitions are printed with search_path set to the tenant's schema (and the
 * schema stripped from index definitions, which Postgres always qualifies), so
 * schema-per-tenant and database-per-tenant tenants fingerprint alike.
 */
import type { Sql } from './batch.js';
import { quoteIdent, type Queryable } from './connection.js';

export interface PostChecks {
  fingerprint: string;
  invalidIndexes: string[];
  notValidConstraints: string[];
}

export async function postChecks(db: Queryable, schema: string, trackingTable: string): Promise<PostChecks> {
  const [set, q] = postChecksQueries(schema, trackingTable);
  await db.query(set!.text);
  const r = await db.query(q!.text, q!.values as unknown[]);
  return readPostChecks(r.rows);
}

/** The checks as two queries (the session's search_path, then the checks), for a batch (adapters/pg/batch.ts); the second's rows go to readPostChecks. */
export function postChecksQueries(schema: string, trackingTable: string): Sql[] {
  return [
    { text: `SET search_path TO ${quoteIdent(schema)}` },
    {
      text: `WITH t AS (
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
       ) parts) AS fingerprint,
       (SELECT coalesce(array_agg(ic.relname::text ORDER BY ic.relname), '{}'::text[]) FROM t JOIN pg_index i ON i.indrelid = t.oid JOIN pg_class ic ON ic.oid = i.indexrelid WHERE NOT i.indisvalid) AS invalid_indexes,
       (SELECT coalesce(array_agg((t.relname || '.' || k.conname)::text ORDER BY 1), '{}'::text[]) FROM t JOIN pg_constraint k ON k.conrelid = t.oid WHERE NOT k.convalidated) AS not_valid`,
      values: [schema, trackingTable],
    },
  ];
}

export function readPostChecks(rows: any[]): PostChecks {
  const row = rows[0];
  return { fingerprint: row.fingerprint, invalidIndexes: row.invalid_indexes, notValidConstraints: row.not_valid };
}
