/**
 * Which tables the validator must count for one migration, resolved inside the
 * migration's transaction (so against the catalog it will run on):
 *
 *   the file's write targets (core/effects.ts), resolved through search_path
 *   + every table referencing them by foreign key, transitively (ON DELETE
 *     CASCADE deletes rows there; SET NULL updates fire their triggers)
 *   + partitions and inheritance parents and children (a parent's count(*)
 *     includes its children)
 *   -> count every table instead when any of those tables has a user trigger,
 *      a rule, or a default or constraint calling a user-defined function, a
 *      target is a view, the file calls a user-defined function,
 *      defines code that its own DML could run, or the database has an enabled
 *      event trigger (it fires on DDL and may write anywhere).
 *
 * Returns the "schema.table" names to count ([] = none), or undefined for
 * "every table". Exact where it matters, cheap where nothing can change.
 */
import { changesAnyRows, type RowEffects } from '../../core/effects.js';
import { quoteIdent, type Queryable } from './connection.js';

const EVENT_TRIGGERS = `EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtenabled <> 'D')`;

const SCOPE_SQL = `
WITH RECURSIVE targets AS (
  SELECT c.oid, c.relkind FROM unnest($1::text[]) AS x(name) JOIN pg_class c ON c.oid = to_regclass(x.name)
), closure(oid) AS (
  SELECT oid FROM targets
  UNION
  SELECT s.other FROM closure cl, LATERAL (
    SELECT k.conrelid AS other FROM pg_constraint k WHERE k.contype = 'f' AND k.confrelid = cl.oid
    UNION ALL SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = cl.oid
    UNION ALL SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = cl.oid
  ) s
)
SELECT
  (SELECT coalesce(array_agg(n.nspname || '.' || c.relname), '{}'::text[])
     FROM closure cl JOIN pg_class c ON c.oid = cl.oid JOIN pg_namespace n ON n.oid = c.relnamespace) AS tables,
  EXISTS (SELECT 1 FROM targets WHERE relkind NOT IN ('r', 'p', 'f'))
  OR EXISTS (SELECT 1 FROM closure cl JOIN pg_trigger t ON t.tgrelid = cl.oid WHERE NOT t.tgisinternal)
  OR EXISTS (SELECT 1 FROM closure cl JOIN pg_rewrite r ON r.ev_class = cl.oid WHERE r.rulename <> '_RETURN')
  OR EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE p.proname = ANY($2::text[]) AND n.nspname NOT IN ('pg_catalog', 'information_schema'))
  -- column defaults and constraints of those tables that call user-defined functions
  OR EXISTS (SELECT 1 FROM closure cl
               JOIN pg_depend d ON d.refclassid = 'pg_proc'::regclass
                AND ((d.classid = 'pg_attrdef'::regclass AND d.objid IN (SELECT oid FROM pg_attrdef WHERE adrelid = cl.oid))
                  OR (d.classid = 'pg_constraint'::regclass AND d.objid IN (SELECT oid FROM pg_constraint WHERE conrelid = cl.oid)))
               JOIN pg_proc p ON p.oid = d.refobjid JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))
  OR ${EVENT_TRIGGERS} AS everything`;

const CODE_ONLY_SQL = `SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE p.proname = ANY($1::text[]) AND n.nspname NOT IN ('pg_catalog', 'information_schema')) OR ${EVENT_TRIGGERS} AS everything,
  ${EVENT_TRIGGERS} AS events`;

/**
 * Built-in functions that migrations call all the time (defaults, index
 * expressions). Unqualified, they resolve to pg_catalog first unless a
 * search_path names pg_catalog explicitly after a schema defining the same
 * name; calls to them need no catalog lookup.
 */
const COMMON_BUILTINS = new Set([
  'now', 'lower', 'upper', 'coalesce', 'length', 'gen_random_uuid', 'nextval', 'currval', 'setval', 'count', 'sum', 'min', 'max', 'avg',
  'md5', 'random', 'concat', 'trim', 'btrim', 'replace', 'substring', 'left', 'right', 'date_trunc', 'to_char', 'to_timestamp',
  'jsonb_build_object', 'json_build_object', 'jsonb_build_array', 'array_agg', 'string_agg', 'clock_timestamp', 'statement_timestamp',
  'transaction_timestamp', 'timezone', 'nullif', 'greatest', 'least', 'abs', 'round', 'floor', 'ceil', 'pg_sleep', 'current_setting',
]);

/** Cache for one migrate() call: whether the database has enabled event triggers. */
export interface RowScopeCache {
  eventTriggers?: boolean;
}

export async function rowCountScope(db: Queryable, fx: RowEffects, cache: RowScopeCache = {}): Promise<string[] | undefined> {
  if (changesAnyRows(fx)) {
    delete cache.eventTriggers; // the file may create one
    return undefined;
  }
  if (fx.writes.length === 0) {
    // no DML: only a user-defined function or an event trigger could change rows
    const unknown = fx.functions.filter((f) => !COMMON_BUILTINS.has(f));
    if (unknown.length === 0 && cache.eventTriggers !== undefined) return cache.eventTriggers ? undefined : [];
    const r = await db.query<{ everything: boolean; events: boolean }>(CODE_ONLY_SQL, [unknown]);
    cache.eventTriggers = r.rows[0]!.events;
    return r.rows[0]!.everything ? undefined : [];
  }
  const names = fx.writes.map((w) => (w.schema ? `${quoteIdent(w.schema)}.${quoteIdent(w.name)}` : quoteIdent(w.name)));
  const r = await db.query<{ tables: string[]; everything: boolean }>(SCOPE_SQL, [names, fx.functions]);
  const row = r.rows[0]!;
  return row.everything ? undefined : row.tables.sort();
}
