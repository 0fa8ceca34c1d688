/**
 * Post-commit checks of a migrated tenant (the validate job): every index
 * valid, every constraint validated, and a fingerprint of the schema's
 * structure to compare with the rest of the fleet (drift).
 *
 * Definitions are printed with search_path set to the tenant's schema (and the
 * schema stripped from index definitions, which Postgres always qualifies), so
 * schema-per-tenant and database-per-tenant tenants fingerprint alike.
 *
 * The schema's relations and enum types are found through pg_depend's index
 * on (refclassid, refobjid), from the schema's oid; their columns, constraints
 * and indexes through attrelid, conrelid and indrelid: nothing here reads more
 * of the catalog than the schema's own objects (a schema-per-tenant database
 * holds the whole fleet's).
 */
import { quoteIdent, type Queryable } from './connection.js';

export interface PostChecks {
  fingerprint: string;
  invalidIndexes: string[];
  notValidConstraints: string[];
}

export async function postChecks(db: Queryable, schema: string, trackingTable: string): Promise<PostChecks> {
  await db.query(`SET search_path TO ${quoteIdent(schema)}`);
  const r = await db.query(
    `WITH t AS (
       SELECT c.oid, c.relname FROM pg_namespace n
         JOIN pg_depend d ON d.refclassid = 'pg_namespace'::regclass AND d.refobjid = n.oid AND d.classid = 'pg_class'::regclass AND d.objsubid = 0
         JOIN pg_class c ON c.oid = d.objid
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm') AND c.relname <> $2)
     SELECT
       (SELECT md5(coalesce(string_agg(x, E'\\n' ORDER BY x), '')) FROM (
          SELECT 'col ' || t.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END AS x
            FROM t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
          UNION ALL SELECT 'con ' || t.relname || '.' || k.conname || ' ' || pg_get_constraintdef(k.oid) FROM t JOIN pg_constraint k ON k.conrelid = t.oid
          UNION ALL SELECT 'idx ' || replace(pg_get_indexdef(i.indexrelid), ' ON ' || quote_ident($1) || '.', ' ON ') FROM t JOIN pg_index i ON i.indrelid = t.oid
          UNION ALL SELECT 'typ ' || ty.typname || ' ' || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = ty.oid), '')
            FROM pg_namespace n
            JOIN pg_depend d ON d.refclassid = 'pg_namespace'::regclass AND d.refobjid = n.oid AND d.classid = 'pg_type'::regclass AND d.objsubid = 0
            JOIN pg_type ty ON ty.oid = d.objid WHERE n.nspname = $1 AND ty.typtype = 'e'
       ) parts) AS fingerprint,
       (SELECT coalesce(array_agg(ic.relname::text ORDER BY ic.relname), '{}'::text[]) FROM t JOIN pg_index i ON i.indrelid = t.oid JOIN pg_class ic ON ic.oid = i.indexrelid WHERE NOT i.indisvalid) AS invalid_indexes,
       (SELECT coalesce(array_agg((t.relname || '.' || k.conname)::text ORDER BY 1), '{}'::text[]) FROM t JOIN pg_constraint k ON k.conrelid = t.oid WHERE NOT k.convalidated) AS not_valid`,
    [schema, trackingTable],
  );
  const row = r.rows[0];
  return { fingerprint: row.fingerprint, invalidIndexes: row.invalid_indexes, notValidConstraints: row.not_valid };
}
