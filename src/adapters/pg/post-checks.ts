/**
 * Post-commit checks of a migrated tenant (the validate job): every index
 * valid, every constraint validated, and a fingerprint of the schema's
 * structure to compare with the rest of the fleet (drift). `flotilla drift`
 * reads the same items (schemaCatalog), so a rollout's drift warning and the
 * fleet's drift report fingerprint a schema the same way (core/drift.ts).
 *
 * Definitions are printed with search_path set to the tenant's schema (and the
 * schema stripped from index, trigger and function definitions, which Postgres
 * always qualifies), so schema-per-tenant and database-per-tenant tenants
 * fingerprint alike. Names Postgres makes up (constraints, indexes, sequences
 * of serial columns) are left out: objects are keyed by what they are.
 *
 * The catalog is reached through indexes only, so this stays cheap with
 * thousands of schemas in one database: the schema's relations, functions and
 * types through pg_depend's reference index (they depend on their schema);
 * columns, constraints, indexes and triggers by their table's oid.
 */
import { fingerprintOf, normaliseItems, type SchemaItem } from '../../core/drift.js';
import { quoteIdent, type Queryable } from './connection.js';
import { catalogQualified } from './catalog-names.js';

export interface PostChecks {
  fingerprint: string;
  invalidIndexes: string[];
  notValidConstraints: string[];
}

export interface SchemaCatalog extends PostChecks {
  items: SchemaItem[];
}

/** Exported for bench/drift.ts (its EXPLAIN). */
export const CATALOG_SQL = catalogQualified(`
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = $1),
dep AS (
  SELECT d.classid, d.objid FROM pg_depend d
   WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = (SELECT oid FROM ns) AND d.refobjsubid = 0 AND d.deptype = 'n'
     -- an extension's own objects stand under the extension's name and version
     AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = d.classid AND e.objid = d.objid AND e.deptype = 'e')),
rel AS (
  SELECT c.oid, c.relname::text AS name, c.relkind::text AS kind FROM dep JOIN pg_class c ON c.oid = dep.objid
   WHERE dep.classid = 'pg_class'::regclass AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND c.relname <> $2),
t AS (SELECT * FROM rel WHERE kind IN ('r', 'p', 'v', 'm', 'f')),
items AS (
  SELECT 'relation' AS k, t.name AS o, t.kind AS v FROM t
  UNION ALL SELECT 'view', t.name, pg_get_viewdef(t.oid) FROM t WHERE t.kind IN ('v', 'm')
  UNION ALL SELECT 'column', t.name || '.' || a.attname,
      format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
      || coalesce(CASE WHEN a.attgenerated = 's' THEN ' generated ' ELSE ' default ' END || pg_get_expr(ad.adbin, ad.adrelid), '')
      || CASE a.attidentity WHEN 'a' THEN ' identity always' WHEN 'd' THEN ' identity by default' ELSE '' END
      || CASE WHEN a.attcollation <> 0 AND a.attcollation <> (SELECT typcollation FROM pg_type WHERE oid = a.atttypid) THEN ' collate ' || a.attcollation::regcollation::text ELSE '' END
    FROM t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  UNION ALL SELECT 'constraint', t.name, pg_get_constraintdef(k.oid) FROM t JOIN pg_constraint k ON k.conrelid = t.oid
  UNION ALL SELECT 'index', t.name, pg_get_indexdef(i.indexrelid) FROM t JOIN pg_index i ON i.indrelid = t.oid
     WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = t.oid AND k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))
  UNION ALL SELECT 'trigger', t.name || '.' || g.tgname, pg_get_triggerdef(g.oid) FROM t JOIN pg_trigger g ON g.tgrelid = t.oid AND NOT g.tgisinternal
  UNION ALL SELECT 'function', p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', pg_get_functiondef(p.oid)
    FROM dep JOIN pg_proc p ON p.oid = dep.objid WHERE dep.classid = 'pg_proc'::regclass AND p.prokind IN ('f', 'p')
  UNION ALL SELECT 'type', ty.typname, CASE ty.typtype
      WHEN 'e' THEN 'enum (' || coalesce((SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = ty.oid), '') || ')'
      ELSE 'domain ' || format_type(ty.typbasetype, ty.typtypmod) || CASE WHEN ty.typnotnull THEN ' not null' ELSE '' END
        || coalesce(' default ' || ty.typdefault, '')
        || coalesce((SELECT ' ' || string_agg(pg_get_constraintdef(k.oid), ' ' ORDER BY 1) FROM pg_constraint k WHERE k.contypid = ty.oid), '') END
    FROM dep JOIN pg_type ty ON ty.oid = dep.objid WHERE dep.classid = 'pg_type'::regclass AND ty.typtype IN ('e', 'd')
  UNION ALL SELECT 'extension', x.extname, x.extversion FROM dep JOIN pg_extension x ON x.oid = dep.objid WHERE dep.classid = 'pg_extension'::regclass
  -- sequences a serial or identity column owns are named by Postgres: their column's default stands for them
  UNION ALL SELECT 'sequence', s.name, '' FROM rel s WHERE s.kind = 'S'
     AND NOT EXISTS (SELECT 1 FROM pg_depend o WHERE o.classid = 'pg_class'::regclass AND o.objid = s.oid AND o.deptype IN ('a', 'i'))
)
SELECT $1::text AS schema,
  (SELECT coalesce(json_agg(json_build_array(k, o, v)), '[]'::json) FROM items) AS items,
  (SELECT coalesce(array_agg(ic.relname::text ORDER BY ic.relname), '{}'::text[]) FROM t JOIN pg_index i ON i.indrelid = t.oid JOIN pg_class ic ON ic.oid = i.indexrelid WHERE NOT i.indisvalid) AS invalid_indexes,
  (SELECT coalesce(array_agg((t.name || '.' || k.conname)::text ORDER BY 1), '{}'::text[]) FROM t JOIN pg_constraint k ON k.conrelid = t.oid WHERE NOT k.convalidated) AS not_valid`);

/** The checks as two queries (the session's search_path, then the catalog), so a caller may batch them; the second's rows go to readPostChecks. */
export function postChecksQueries(schema: string, trackingTable: string): { text: string; values?: unknown[] }[] {
  return [{ text: `SET search_path TO ${quoteIdent(schema)}` }, { text: CATALOG_SQL, values: [schema, trackingTable] }];
}

/** The catalog query's rows -> the schema's items (core/drift.ts), its fingerprint, and what the post-commit checks look for. */
export function readPostChecks(rows: any[]): SchemaCatalog {
  const row = rows[0];
  const items = normaliseItems(row.items as [string, string, string][], row.schema);
  return { items, fingerprint: fingerprintOf(items), invalidIndexes: row.invalid_indexes, notValidConstraints: row.not_valid };
}

/** The schema's structure as items, its fingerprint, and the post-commit checks' findings. */
export async function schemaCatalog(db: Queryable, schema: string, trackingTable: string): Promise<SchemaCatalog> {
  const [set, q] = postChecksQueries(schema, trackingTable);
  await db.query(set!.text);
  return readPostChecks((await db.query(q!.text, q!.values)).rows);
}

export async function postChecks(db: Queryable, schema: string, trackingTable: string): Promise<PostChecks> {
  const { fingerprint, invalidIndexes, notValidConstraints } = await schemaCatalog(db, schema, trackingTable);
  return { fingerprint, invalidIndexes, notValidConstraints };
}
