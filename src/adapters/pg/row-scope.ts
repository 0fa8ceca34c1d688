/**
 * Which tables the validator must count for one migration, resolved inside the
 * migration's transaction (so against the catalog it will run on):
 *
 *   the file's write targets (core/effects.ts), resolved in every schema of
 *     the search_path and of the paths the file sets (not only the first
 *     match: DDL or a path change may make another one the target); in every
 *     schema when the file changes name resolution in a way we cannot read
 *   + every table referencing them by foreign key, transitively (ON DELETE
 *     CASCADE deletes rows there; SET NULL updates fire their triggers)
 *   + partitions and inheritance parents and children (a parent's count(*)
 *     includes its children)
 *   -> count every table instead when user code could run: a written table has
 *      a user trigger or a rule; any relation the file names (read, written or
 *      altered; views expanded to what they read) has a view body, default,
 *      constraint, index expression or operator class, policy or statistics
 *      object using a user-defined function or operator, is a foreign table,
 *      or has a column of a type with user code; a target is a view; the file
 *      uses a user-defined function, operator or operator class by name, a type
 *      with user code (a domain whose CHECK calls one, a base or range type, an
 *      enum with user operators or casts), a type a user-defined cast
 *      converts; defines code that its own statements could run; or the
 *      database has an enabled event trigger (it fires on DDL and may write
 *      anywhere). "User-defined" is anything outside pg_catalog and
 *      information_schema: extensions included.
 *
 * Returns the "schema.table" names to count ([] = none), or undefined for
 * "every table". Exact where it matters, cheap where nothing can change.
 */
import { changesAnyRows, RUNS_SQL_TEXT, type RowEffects } from '../../core/effects.js';
import { inline, type Sql } from './batch.js';
import type { Queryable } from './connection.js';
import { catalogQualified } from './catalog-names.js';
import { FILE_SCHEMAS } from './safe-path.js';

const QUALIFIED = (oid: string) => `(SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ${oid})`;
const EVENT_TRIGGERS = catalogQualified(`EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtenabled <> 'D')`);
/**
 * The system schemas (pg_catalog, information_schema) by oid: "not a system schema" tested on an object's namespace column, never by joining
 * pg_namespace, which the planner may scan whole to hash it, and which holds a row per tenant schema.
 */
const SYSTEM_NS = `('pg_catalog'::regnamespace, (SELECT n.oid FROM pg_namespace n WHERE n.nspname = 'information_schema'))`;
/**
 * A regular expression matching a stored expression tree (pg_node_tree as text) that calls a built-in which runs
 * SQL given as text (core/effects.ts RUNS_SQL_TEXT: query_to_xml('select purge()')...). Postgres records no
 * dependency on built-ins (pinned objects), so a view or CHECK calling one is found by its function oid in the tree.
 */
const SQL_TEXT_CALLS = `(SELECT ':funcid (' || pg_catalog.string_agg(p.oid::pg_catalog.text, '|') || ') ' FROM pg_catalog.pg_proc p
   WHERE p.proname OPERATOR(pg_catalog.=) ANY ('{${[...RUNS_SQL_TEXT].join(',')}}'::pg_catalog.name[]) AND p.pronamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace)`;
/** The expression trees of an attached object (a row of the scope query's `attached`), as text. */
const TREES = (a: string) => `CASE ${a}.classid
    WHEN 'pg_rewrite'::regclass THEN (SELECT w.ev_action::text FROM pg_rewrite w WHERE w.oid = ${a}.objid)
    WHEN 'pg_attrdef'::regclass THEN (SELECT d.adbin::text FROM pg_attrdef d WHERE d.oid = ${a}.objid)
    WHEN 'pg_constraint'::regclass THEN (SELECT k.conbin::text FROM pg_constraint k WHERE k.oid = ${a}.objid)
    WHEN 'pg_class'::regclass THEN (SELECT coalesce(i.indexprs::text, '') || coalesce(i.indpred::text, '') FROM pg_index i WHERE i.indexrelid = ${a}.objid)
    WHEN 'pg_policy'::regclass THEN (SELECT coalesce(pl.polqual::text, '') || coalesce(pl.polwithcheck::text, '') FROM pg_policy pl WHERE pl.oid = ${a}.objid)
    WHEN 'pg_statistic_ext'::regclass THEN (SELECT st.stxexprs::text FROM pg_statistic_ext st WHERE st.oid = ${a}.objid)
  END`;
// OFFSET 0: a lookup by oid per row, never pulled up into a join that scans pg_proc to hash it
const USER_PROC = (oid: string) => `EXISTS (SELECT 1 FROM pg_proc p WHERE p.oid = ${oid} AND (p.pronamespace NOT IN ${SYSTEM_NS} OR p.oid >= 16384) OFFSET 0)`;
const USER_OPERATOR = (oid: string) =>
  `EXISTS (SELECT 1 FROM pg_operator o WHERE o.oid = ${oid} AND (o.oprnamespace NOT IN ${SYSTEM_NS} OR ${USER_PROC('o.oprcode')}) OFFSET 0)`;
/*
 * $1/$2 write targets and $3/$4 relations named, as parallel arrays of schema ('' = unqualified) and name;
 * $5 functions, $6 operators, $7 operator classes, $8 types; $9 schemas the file adds to its path; $10 every schema;
 * $11 schemas qualifying type names; $12 type names in every schema (a set frozen before typeSchemas was recorded)
 */
const SCOPE_SQL = catalogQualified(`
WITH RECURSIVE path AS MATERIALIZED (
  SELECT n.oid FROM unnest(${FILE_SCHEMAS} || array(SELECT CASE WHEN s = '$user' THEN current_user::text ELSE s END FROM unnest($9::text[]) s)) AS p(name)
    CROSS JOIN LATERAL (SELECT n.oid FROM pg_namespace n WHERE n.nspname = p.name OFFSET 0) n
), named(kind, schema, name) AS (
  SELECT 'w', x.s, x.n FROM unnest($1::text[], $2::text[]) AS x(s, n)
  UNION ALL SELECT 'r', x.s, x.n FROM unnest($3::text[], $4::text[]) AS x(s, n)
), resolved AS (
  -- by (relname, relnamespace): qualified names in their schema, unqualified ones in each schema of the paths,
  -- by name in every schema only when the file changes name resolution in a way we cannot read ($10)
  SELECT nm.kind, c.oid, c.relkind FROM named nm
    CROSS JOIN LATERAL (
      SELECT n.oid FROM pg_namespace n WHERE nm.schema <> '' AND n.nspname = nm.schema
      UNION SELECT p.oid FROM path p WHERE nm.schema = '' AND NOT $10 OFFSET 0) ns
    CROSS JOIN LATERAL (SELECT c.oid, c.relkind FROM pg_class c WHERE c.relname = nm.name AND c.relnamespace = ns.oid OFFSET 0) c
  UNION ALL
  SELECT nm.kind, c.oid, c.relkind FROM named nm JOIN pg_class c ON c.relname = nm.name
   WHERE nm.schema = '' AND $10
), targets AS (
  SELECT oid, relkind FROM resolved WHERE kind = 'w'
), closure(oid) AS (
  SELECT oid FROM targets
  UNION
  SELECT s.other FROM closure cl, LATERAL (
    -- a foreign key depends on the table it references (pg_depend's reference index: pg_constraint has none on confrelid)
    SELECT k.conrelid AS other FROM pg_depend d JOIN pg_constraint k ON k.oid = d.objid
     WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = cl.oid AND d.classid = 'pg_constraint'::regclass
       AND k.contype = 'f' AND k.confrelid = cl.oid
    UNION ALL SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = cl.oid
    UNION ALL SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = cl.oid
  ) s
), rels(oid) AS (
  -- everything named or written, an index's table, and what views read, transitively
  SELECT oid FROM resolved UNION SELECT oid FROM closure
  UNION SELECT i.indrelid FROM resolved r JOIN pg_index i ON i.indexrelid = r.oid
  UNION
  SELECT x.oid FROM rels r CROSS JOIN LATERAL (
    SELECT d.refobjid AS oid FROM pg_rewrite w
      JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid AND d.refclassid = 'pg_class'::regclass
     WHERE w.ev_class = r.oid AND w.rulename = '_RETURN' AND d.refobjid <> r.oid OFFSET 0) x -- OFFSET 0: an index lookup per view, not a scan of pg_depend
), types(oid) AS (
  -- a type name in the schemas of the paths and those the file qualifies type names with ($11), by (typname,
  -- typnamespace), in every schema when the path is unknown ($10) or the set is older than typeSchemas ($12)
  SELECT x.oid FROM unnest($8::text[]) AS tn(name) CROSS JOIN LATERAL (
    SELECT t.oid FROM pg_type t WHERE t.typname = tn.name AND ($10 OR $12)
    UNION ALL
    SELECT t.oid FROM (SELECT p.oid FROM path p UNION SELECT n.oid FROM pg_namespace n WHERE n.nspname = ANY($11::text[])) ns
      CROSS JOIN LATERAL (SELECT t.oid FROM pg_type t WHERE t.typname = tn.name AND t.typnamespace = ns.oid OFFSET 0) t
     WHERE NOT ($10 OR $12) OFFSET 0) x
  UNION SELECT a.atttypid FROM rels r CROSS JOIN LATERAL (
    SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped OFFSET 0) a
  UNION
  -- array elements, domain bases, range subtypes, composite attributes (0 and NULL lead nowhere)
  SELECT x.oid FROM types ty CROSS JOIN LATERAL (
    SELECT unnest(ARRAY[t.typelem, t.typbasetype, (SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = t.oid)]
                  || ARRAY(SELECT a.atttypid FROM pg_attribute a WHERE t.typrelid <> 0 AND a.attrelid = t.typrelid AND a.attnum > 0)) AS oid
      FROM pg_type t WHERE t.oid = ty.oid OFFSET 0) x
), user_types AS (
  SELECT t.* FROM types ty CROSS JOIN LATERAL (
    SELECT t.oid, t.typtype, t.typsubscript FROM pg_type t
     WHERE t.oid = ty.oid AND t.typnamespace NOT IN ${SYSTEM_NS} OFFSET 0) t
), attached(classid, objid) AS (
  -- catalog objects whose expressions run when the file touches what it names: view bodies, defaults and
  -- generated columns, constraints, index expressions, policies, statistics, domain checks and defaults
  -- (each a lookup per relation or type, by the catalog's index on it: LATERAL ... OFFSET 0 keeps the planner from
  -- scanning a whole catalog to hash it, which it may estimate cheaper, and which grows with every tenant)
  SELECT x.* FROM rels r CROSS JOIN LATERAL (
    SELECT 'pg_rewrite'::regclass, w.oid FROM pg_rewrite w WHERE w.ev_class = r.oid
    UNION ALL SELECT 'pg_attrdef'::regclass, a.oid FROM pg_attrdef a WHERE a.adrelid = r.oid
    UNION ALL SELECT 'pg_constraint'::regclass, k.oid FROM pg_constraint k WHERE k.conrelid = r.oid
    UNION ALL SELECT 'pg_class'::regclass, i.indexrelid FROM pg_index i WHERE i.indrelid = r.oid
    UNION ALL SELECT 'pg_policy'::regclass, pl.oid FROM pg_policy pl WHERE pl.polrelid = r.oid
    UNION ALL SELECT 'pg_statistic_ext'::regclass, st.oid FROM pg_statistic_ext st WHERE st.stxrelid = r.oid OFFSET 0) x
  UNION ALL SELECT x.* FROM user_types t CROSS JOIN LATERAL (
    SELECT 'pg_constraint'::regclass, k.oid FROM pg_constraint k WHERE k.contypid = t.oid OFFSET 0) x
  UNION ALL SELECT 'pg_type'::regclass, t.oid FROM user_types t
), code AS (
  SELECT d.refclassid, d.refobjid FROM attached a CROSS JOIN LATERAL (
    SELECT d.refclassid, d.refobjid FROM pg_depend d
     WHERE d.classid = a.classid AND d.objid = a.objid AND d.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass) OFFSET 0) d
)
SELECT
  -- (scalar subqueries: one index lookup per table, never a scan of pg_class)
  (SELECT coalesce(array_agg(${QUALIFIED('cl.oid')}), '{}'::text[]) FROM closure cl) AS tables,
  (SELECT coalesce(array_agg(DISTINCT ${QUALIFIED('r.oid')}), '{}'::text[]) FROM resolved r WHERE r.relkind IN ('r', 'p')) AS named,
  EXISTS (SELECT 1 FROM targets WHERE relkind NOT IN ('r', 'p', 'f'))
  OR EXISTS (SELECT 1 FROM closure cl CROSS JOIN LATERAL (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = cl.oid AND NOT t.tgisinternal OFFSET 0) x)
  OR EXISTS (SELECT 1 FROM closure cl CROSS JOIN LATERAL (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = cl.oid AND r.rulename <> '_RETURN' OFFSET 0) x)
  -- foreign tables run their wrapper's code
  OR EXISTS (SELECT 1 FROM rels r WHERE (SELECT c.relkind FROM pg_class c WHERE c.oid = r.oid) = 'f')
  OR EXISTS (SELECT 1 FROM code c WHERE (c.refclassid = 'pg_proc'::regclass AND ${USER_PROC('c.refobjid')})
                                     OR (c.refclassid = 'pg_operator'::regclass AND ${USER_OPERATOR('c.refobjid')}))
  -- operator classes of the indexes of what is named (index builds and inserts call their support functions)
  OR EXISTS (SELECT 1 FROM rels r CROSS JOIN LATERAL (SELECT i.indclass FROM pg_index i WHERE i.indrelid = r.oid OFFSET 0) i
               CROSS JOIN LATERAL unnest(i.indclass::oid[]) AS ic(oid)
               JOIN pg_opclass oc ON oc.oid = ic.oid WHERE oc.opcnamespace NOT IN ${SYSTEM_NS})
  -- types with code: base, range and multirange types outside pg_catalog (arrays are judged by their element),
  -- any type with user operators, casts or operator classes
  OR EXISTS (SELECT 1 FROM user_types t WHERE t.typtype IN ('b', 'r', 'm') AND t.typsubscript <> 'array_subscript_handler'::regproc)
  OR EXISTS (SELECT 1 FROM user_types t CROSS JOIN LATERAL (
               SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_type'::regclass AND d.refobjid = t.oid
                  AND d.classid IN ('pg_operator'::regclass, 'pg_cast'::regclass, 'pg_opclass'::regclass) OFFSET 0) x)
  -- a user-defined cast runs when something must become its target type: a type named, or a column's
  OR EXISTS (SELECT 1 FROM pg_cast ca WHERE ca.castfunc <> 0 AND ca.casttarget IN (SELECT oid FROM types) AND ${USER_PROC('ca.castfunc')})
  OR EXISTS (SELECT 1 FROM pg_opclass oc
              WHERE oc.opcnamespace NOT IN ${SYSTEM_NS} AND (oc.opcname = ANY($7::text[]) OR (oc.opcdefault AND oc.opcintype IN (SELECT oid FROM types))))
  -- names the file uses: functions (and aggregates), operators
  OR EXISTS (SELECT 1 FROM unnest($5::text[]) f(name) CROSS JOIN LATERAL (
              SELECT 1 FROM pg_proc p
               WHERE p.proname = f.name AND (p.pronamespace NOT IN ${SYSTEM_NS} OR p.oid >= 16384) OFFSET 0) x)
  OR EXISTS (SELECT 1 FROM unnest($6::text[]) f(name) CROSS JOIN LATERAL (
              SELECT 1 FROM pg_operator o
               WHERE o.oprname = f.name AND o.oprnamespace NOT IN ${SYSTEM_NS} OFFSET 0) x)
  -- a view body, default, constraint, index expression, policy or statistics calling a built-in that runs SQL text
  OR EXISTS (SELECT 1 FROM attached a WHERE ${TREES('a')} ~ ${SQL_TEXT_CALLS})
  OR ${EVENT_TRIGGERS} AS everything,
  ${EVENT_TRIGGERS} AS events`);

/** Cache for one migrate() call: whether the database has enabled event triggers. */
export interface RowScopeCache {
  eventTriggers?: boolean;
  /** false once codeFreeQuery failed in this run: later files take the scope query's guard at once; unset: not known yet */
  codeFree?: boolean;
  /**
   * true once codeFreeQuery with its expression-tree checks held in this run, until a file that was not guessed
   * (which may have made a view or CHECK calling query_to_xml...: a file that calls one by name takes the careful
   * path) runs: later probes leave those checks out (their planning costs a few ms per file)
   */
  treesClean?: boolean;
}

/**
 * The cheap twin of the scope query, for the batch's guard (engine/apply.ts):
 * true when nothing the scope query could find exists at all, so a file that
 * writes no table by name counts nothing but the tracking table (`ledger`,
 * "schema"."table" quoted), whatever it names. "User" objects are those with
 * an oid of at least 16384 (FirstNormalObjectId: made after initdb, by a user
 * or an extension, also after the oid counter wraps around). True when there is
 *   no user operator, operator class, cast, base, range or multirange type,
 *   foreign table or enabled event trigger;
 *   no user function the file names (`functions`), and none that anything but
 *   a trigger depends on (a default, generated column, constraint, domain
 *   check, index expression, view, policy, statistics, type, cast, operator,
 *   language, another function...: pg_depend by reference). A trigger runs
 *   only for DML, and a file guessed to count nothing runs none but the
 *   tracking row;
 *   the tracking table a plain table with no trigger, rule, inheritance parent
 *   or child, or foreign key pointing at it (what the scope query's closure of
 *   the tracking table would add).
 * The common case it keeps cheap: tables, indexes, views and trigger functions
 * such as "set updated_at". Index probes only (oid ranges, pg_depend by
 * reference, pg_proc by name): the same cost on a catalog of any size.
 * Operators qualified: a user's search_path must not pick them.
 */
export function codeFreeQuery(ledger: string, functions: readonly string[], opts: { trees?: boolean } = {}): string {
  const trees = opts.trees ?? true;
  const eq = 'OPERATOR(pg_catalog.=)';
  const ne = 'OPERATOR(pg_catalog.<>)';
  const user = 'OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid';
  const none = (catalog: string, more = '') => `NOT EXISTS (SELECT FROM pg_catalog.${catalog} x WHERE x.oid ${user}${more})`;
  const conditions = [
    none('pg_operator'),
    none('pg_opclass'),
    none('pg_cast'),
    none(
      'pg_type',
      ` AND x.typtype ${eq} ANY ('{b,r,m}'::pg_catalog."char"[]) AND x.typsubscript ${ne} 'pg_catalog.array_subscript_handler'::pg_catalog.regproc`,
    ),
    'NOT EXISTS (SELECT FROM pg_catalog.pg_foreign_table)',
    `NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger e WHERE e.evtenabled ${ne} 'D')`,
    `NOT EXISTS (SELECT FROM pg_catalog.pg_proc p WHERE p.proname ${eq} ANY (${inline({ text: '$1', values: [[...functions]] })}::pg_catalog.name[]) AND p.oid ${user})`,
    `NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.refclassid ${eq} 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.refobjid ${user}
      AND d.classid ${ne} 'pg_catalog.pg_trigger'::pg_catalog.regclass)`,
    // no stored expression calling a built-in that runs SQL text (no dependency is recorded on a built-in);
    // `trees` false: already checked in this run, and no file since could have made one (engine/apply.ts)
    ...(trees
      ? [
          `NOT EXISTS (SELECT FROM pg_catalog.pg_rewrite x WHERE x.oid ${user} AND x.ev_action::pg_catalog.text OPERATOR(pg_catalog.~) t.re)`,
          `NOT EXISTS (SELECT FROM pg_catalog.pg_attrdef x WHERE x.oid ${user} AND x.adbin::pg_catalog.text OPERATOR(pg_catalog.~) t.re)`,
          `NOT EXISTS (SELECT FROM pg_catalog.pg_constraint x WHERE x.oid ${user} AND x.conbin::pg_catalog.text OPERATOR(pg_catalog.~) t.re)`,
          `NOT EXISTS (SELECT FROM pg_catalog.pg_index x WHERE x.indexrelid ${user}
       AND (x.indexprs::pg_catalog.text OPERATOR(pg_catalog.~) t.re OR x.indpred::pg_catalog.text OPERATOR(pg_catalog.~) t.re))`,
          `NOT EXISTS (SELECT FROM pg_catalog.pg_policy x WHERE x.oid ${user}
       AND (x.polqual::pg_catalog.text OPERATOR(pg_catalog.~) t.re OR x.polwithcheck::pg_catalog.text OPERATOR(pg_catalog.~) t.re))`,
          `NOT EXISTS (SELECT FROM pg_catalog.pg_statistic_ext x WHERE x.oid ${user} AND x.stxexprs::pg_catalog.text OPERATOR(pg_catalog.~) t.re)`,
        ]
      : []),
    `(SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid ${eq} t.oid) ${eq} 'r'`,
    `NOT EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE i.inhrelid ${eq} t.oid OR i.inhparent ${eq} t.oid)`,
    `NOT EXISTS (SELECT FROM pg_catalog.pg_trigger g WHERE g.tgrelid ${eq} t.oid AND NOT g.tgisinternal)`,
    `NOT EXISTS (SELECT FROM pg_catalog.pg_rewrite r WHERE r.ev_class ${eq} t.oid AND r.rulename ${ne} '_RETURN')`,
    // a foreign key depends on the table it references (pg_depend's reference index; pg_constraint has none on confrelid)
    `NOT EXISTS (SELECT FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_constraint k ON k.oid ${eq} d.objid
      WHERE d.refclassid ${eq} 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid ${eq} t.oid
        AND d.classid ${eq} 'pg_catalog.pg_constraint'::pg_catalog.regclass AND k.contype ${eq} 'f' AND k.confrelid ${eq} t.oid)`,
  ];
  const table = inline({ text: '$1', values: [ledger] });
  return `SELECT ${conditions.join('\n  AND ')} AS code_free
  FROM (SELECT pg_catalog.to_regclass(${table})::pg_catalog.oid AS oid${trees ? `, ${SQL_TEXT_CALLS} AS re` : ''}) t`;
}

/**
 * What the validator looks at for one file: `count`, the "schema.table" names
 * to count ([] = none, undefined = every table), and `look`, the existing
 * tables the file names, whose structure is compared wherever they are (a
 * file under --schema may alter a table in public).
 */
export interface ValidationScope {
  count: string[] | undefined;
  look: string[];
}

export async function rowCountScope(db: Queryable, fx: RowEffects, cache: RowScopeCache = {}): Promise<string[] | undefined> {
  return (await validationScope(db, fx, cache)).count;
}

/** `alsoWritten`: tables the engine itself writes in the file's transaction (the tracking table): their triggers count too */
export async function validationScope(
  db: Queryable,
  fx: RowEffects,
  cache: RowScopeCache = {},
  alsoWritten: { schema: string; table: string }[] = [],
): Promise<ValidationScope> {
  if (changesAnyRows(fx)) {
    delete cache.eventTriggers; // the file may create one
    return { count: undefined, look: [] };
  }
  const writes = [...fx.writes, ...alsoWritten.map((t) => ({ schema: t.schema, name: t.table }))];
  const names = [writes, fx.relations!, fx.functions, fx.operators!, fx.opclasses!, fx.types!];
  // names nothing (SET, NOTIFY, COMMENT...): only an event trigger could change rows
  if (names.every((n) => n.length === 0) && cache.eventTriggers !== undefined) return { count: cache.eventTriggers ? undefined : [], look: [] };
  // Many small catalog subplans look expensive to the planner: JIT would compile them for seconds. jit is off for
  // this query alone, in its round trip: saved, off, the query, restored (transaction-local settings, which a
  // failure rolls back anyway). Its parameters go in as literals (adapters/pg/batch.ts inline: the simple protocol).
  const results = (await db.query(
    `SELECT set_config('flotilla.saved_jit', current_setting('jit'), true), set_config('jit', 'off', true);
     ${inline(scopeQuery(fx, alsoWritten))};
     SELECT set_config('jit', current_setting('flotilla.saved_jit'), true)`,
  )) as unknown as { rows: ScopeRow[] }[];
  const row = results[1]!.rows[0]!;
  cache.eventTriggers = row.events;
  // the engine's own tables are left out of every snapshot
  const own = new Set(alsoWritten.map((t) => `${t.schema}.${t.table}`));
  const mine = (list: string[]) => list.filter((t) => !own.has(t)).sort();
  return { count: row.everything ? undefined : mine(row.tables), look: mine(row.named) };
}

/** A row of the scope query: `tables` to count (with the engine's own), relations `named`, `everything`, enabled event triggers. */
export interface ScopeRow {
  tables: string[];
  named: string[];
  everything: boolean;
  events: boolean;
}

/**
 * The scope query for a file that names something (not changesAnyRows), for a
 * batch (adapters/pg/batch.ts); run it with jit off. Its row is a ScopeRow.
 */
export function scopeQuery(fx: RowEffects, alsoWritten: { schema: string; table: string }[] = []): Sql {
  const writes = [...fx.writes, ...alsoWritten.map((t) => ({ schema: t.schema, name: t.table }))];
  return {
    text: SCOPE_SQL,
    values: [
      writes.map((w) => w.schema ?? ''),
      writes.map((w) => w.name),
      fx.relations!.map((w) => w.schema ?? ''),
      fx.relations!.map((w) => w.name),
      fx.functions,
      fx.operators,
      fx.opclasses,
      fx.types,
      fx.searchPath!.schemas,
      fx.searchPath!.unknown,
      fx.typeSchemas ?? [],
      fx.typeSchemas === undefined,
    ],
  };
}
