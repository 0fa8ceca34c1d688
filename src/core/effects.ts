/**
 * Which tables' row counts a migration can change, read from the parse tree.
 *
 * The validator's row-count check (the guide's "Table users: row count changed
 * from 100 to 95") needs exact counts, and count(*) costs time proportional to
 * the table: counting every table on every migration makes a one-line CREATE
 * INDEX on a small table take seconds on a tenant with big tables. Rows change
 * only through
 *   - DML naming its target (INSERT, UPDATE, DELETE, MERGE, TRUNCATE, COPY FROM,
 *     including data-modifying CTEs and EXPLAIN ANALYZE),
 *   - what that DML sets off: foreign-key actions on referencing tables,
 *     partitions and inheritance parents, triggers, rules,
 *   - code: functions called anywhere in a statement, DO, CALL, EXECUTE,
 *     extension scripts, event triggers,
 *   - attaching, detaching or dropping a partition or inheritance child
 *     (the parent's count(*) includes its children).
 * This module collects what the file itself says; adapters/pg/row-scope.ts
 * resolves it against the catalog (FK and inheritance closure, user triggers,
 * rules, user-defined functions, event triggers) inside the migration's
 * transaction. Anything it cannot see through means "count every table".
 *
 * Soundness is a whitelist, not a blacklist: a statement kind not known to run
 * nothing is "any"; user code can hide behind every name a statement uses, so
 * all of them are collected for the catalog check, not only function calls:
 * operators (explicit, and those implied by IN, BETWEEN, LIKE, ANY...),
 * operator classes, types (a domain's CHECK, a cast's function), and every
 * relation named, read or written (a view's body, an index expression, a
 * policy). Name resolution follows the file: schemas put on the search_path by
 * a literal SET / set_config are searched too, and a change the analysis
 * cannot read (RESET, a computed value, SET ROLE) searches every schema.
 */

export interface RelationRef {
  schema?: string;
  name: string;
}

export interface RowEffects {
  /** some statement can change rows anywhere (DO, CALL, CREATE EXTENSION, an unknown statement...) */
  any: boolean;
  /** relations named as DML targets, dropped or re-parented: existing ones are counted */
  writes: RelationRef[];
  /** names of functions called anywhere in the file (user-defined ones mean "any") */
  functions: string[];
  /** the file defines triggers or rules, which its own DML would fire */
  definesTriggers: boolean;
  /** functions the file defines (calling one of them in the same file means "any") */
  defines: string[];
  // The fields below are absent from sets frozen by an older version: absent means "unknown", count every table.
  /** operator names used, explicitly or implied (IN, BETWEEN, LIKE, = ANY...); user-defined ones mean "any" */
  operators?: string[];
  /** operator classes named (CREATE INDEX ... (c gin_trgm_ops)) */
  opclasses?: string[];
  /** type names used (casts, column types): a domain or type with user code means "any" */
  types?: string[];
  /**
   * schemas that qualify a type name in the file (`CAST(x AS s.t)`): a type name is looked for there and in the
   * search path only (absent, from an older version: in every schema, which on a schema-per-tenant database
   * finds every tenant's copy of it)
   */
  typeSchemas?: string[];
  /** every relation the file names, read or written: code attached to it (view body, index expression...) means "any" */
  relations?: RelationRef[];
  /** schemas the file adds to its search_path by a literal SET / set_config; unknown: a change the analysis cannot read */
  searchPath?: { schemas: string[]; unknown: boolean };
  /** a DROP ... CASCADE: tables, columns, constraints and indexes in any schema may go (count and compare every schema) */
  cascades?: boolean;
  /** extensions and languages the file creates (one that opens sessions: adapters/pg/other-sessions.ts) */
  extensions?: string[];
}

type Node = Record<string, any>;

/** Statements that change no rows by themselves (function calls inside them are still collected). */
const NO_ROWS = new Set([
  'CreateStmt',
  'IndexStmt',
  'AlterTableStmt',
  'CreateEnumStmt',
  'AlterEnumStmt',
  'CreateDomainStmt',
  'AlterDomainStmt',
  'CompositeTypeStmt',
  'CreateRangeStmt',
  'DefineStmt',
  'DropStmt',
  'RenameStmt',
  'CommentStmt',
  'GrantStmt',
  'GrantRoleStmt',
  'AlterDefaultPrivilegesStmt',
  'CreateSchemaStmt',
  'CreateSeqStmt',
  'AlterSeqStmt',
  'ViewStmt',
  'CreateTableAsStmt',
  'AlterObjectSchemaStmt',
  'AlterOwnerStmt',
  'VariableSetStmt',
  'VariableShowStmt',
  'ReindexStmt',
  'VacuumStmt',
  'ClusterStmt',
  'LockStmt',
  'CreatePolicyStmt',
  'AlterPolicyStmt',
  'CreateStatsStmt',
  'AlterStatsStmt',
  'RefreshMatViewStmt',
  'AlterFunctionStmt',
  'CreateCastStmt',
  'CreateOpClassStmt',
  'CreateOpFamilyStmt',
  'AlterOpFamilyStmt',
  'CreateConversionStmt',
  'CreatePublicationStmt',
  'AlterPublicationStmt',
  'CreateRoleStmt',
  'AlterRoleStmt',
  'DropRoleStmt',
  'AlterTableSpaceOptionsStmt',
  'AlterCollationStmt',
  'AlterTypeStmt',
  'AlterTSConfigurationStmt',
  'AlterTSDictionaryStmt',
  'SecLabelStmt',
  'NotifyStmt',
  'ListenStmt',
  'UnlistenStmt',
  'DeallocateStmt',
  'CheckPointStmt',
  'DiscardStmt',
  'ConstraintsSetStmt',
  'TransactionStmt',
  'SelectStmt',
  'ExplainStmt',
  'PrepareStmt',
  'AlterDatabaseStmt',
  'AlterDatabaseSetStmt',
  'AlterRoleSetStmt',
  // statements whose rows are DML targets, handled below
  'InsertStmt',
  'UpdateStmt',
  'DeleteStmt',
  'MergeStmt',
  'TruncateStmt',
  'CopyStmt',
  // definitions of code: recorded (defines, definesTriggers), they run nothing now
  'CreateFunctionStmt',
  'CreateTrigStmt',
  'RuleStmt',
]);

const DML = ['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt'];
/** Definitions whose code later statements run without naming it (operators, casts, opclasses, aggregates, types). */
const IMPLICIT_CODE = new Set([
  'DefineStmt',
  'CreateCastStmt',
  'CreateOpClassStmt',
  'CreateOpFamilyStmt',
  'AlterOpFamilyStmt',
  'CreateTransformStmt',
  'CreateConversionStmt',
  'CreateRangeStmt',
  'AlterTypeStmt', // a range's subtype_diff runs in GiST index builds
]);
/** Statements that evaluate no expression on data: safe after an IMPLICIT_CODE definition. */
const INERT = new Set([
  ...IMPLICIT_CODE,
  'CreateFunctionStmt',
  'CreateTrigStmt',
  'RuleStmt',
  'CommentStmt',
  'GrantStmt',
  'GrantRoleStmt',
  'AlterOwnerStmt',
  'AlterFunctionStmt',
  'AlterDefaultPrivilegesStmt',
  'CreateEnumStmt',
  'AlterEnumStmt',
  'CompositeTypeStmt',
  'CreateSeqStmt',
  'AlterSeqStmt',
  'VariableSetStmt',
  'VariableShowStmt',
  'DropStmt',
  'RenameStmt',
  'ViewStmt',
  'CreateRoleStmt',
  'AlterRoleStmt',
  'NotifyStmt',
]);
/**
 * Built-ins that run SQL given as text, or read a relation named at run time
 * (a view's body, an index expression): the names of what they run are not in
 * the parse tree. Found in PostgreSQL 15's pg_proc by argument names and types
 * (query, sqlquery, select, tbl, schema, cursor, regclass).
 */
export const RUNS_SQL_TEXT: ReadonlySet<string> = new Set([
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  'schema_to_xml',
  'schema_to_xmlschema',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xmlschema',
  'database_to_xml_and_xmlschema',
  'ts_stat',
  'ts_rewrite',
  'brin_summarize_range',
  'brin_summarize_new_values',
  'brin_desummarize_range',
  'gin_clean_pending_list',
]);
/** Settings that change how names resolve: their new value must be read, or every schema is searched. */
const NAME_SETTINGS = new Set(['search_path', 'role', 'session_authorization']);
/** ALTER TABLE subcommands that move rows in or out of a parent's count(*) */
const REPARENT = new Set(['AT_AttachPartition', 'AT_DetachPartition', 'AT_DetachPartitionFinalize', 'AT_AddInherit', 'AT_DropInherit']);

export function rowEffects(statements: { kind: string; node: Node }[]): RowEffects {
  const fx: RowEffects = {
    any: false,
    writes: [],
    functions: [],
    definesTriggers: false,
    defines: [],
    operators: [],
    opclasses: [],
    types: [],
    relations: [],
    searchPath: { schemas: [], unknown: false },
    cascades: false,
    extensions: [],
  };
  const names: Names = { functions: new Set(), operators: new Set(), opclasses: new Set(), types: new Set(), typeSchemas: new Set() };
  let implicitCode = false;
  const views = new Set<string>();
  for (const s of statements) {
    const n = s.node;
    if (!NO_ROWS.has(s.kind)) fx.any = true; // DoStmt, CallStmt, ExecuteStmt, CreateExtensionStmt, CreateEventTrigStmt, unknown...
    // an operator, cast or opclass defined above runs in any later statement that evaluates expressions
    if (implicitCode && !INERT.has(s.kind)) fx.any = true;
    if (IMPLICIT_CODE.has(s.kind)) implicitCode = true;
    if (DML.includes(s.kind)) addRangeVar(fx, n.relation); // nested DML is found by the walk
    switch (s.kind) {
      case 'CreateFunctionStmt':
        // the body is a string (run later, if ever); argument defaults are not calls now
        if (Array.isArray(n.funcname) && n.funcname.length) fx.defines.push(String(n.funcname[n.funcname.length - 1]?.String?.sval ?? ''));
        continue;
      case 'CreateTrigStmt':
      case 'RuleStmt':
        fx.definesTriggers = true;
        break;
      case 'VariableSetStmt':
        setting(fx, n);
        break;
      case 'VacuumStmt':
      case 'ClusterStmt':
        // ANALYZE / CLUSTER of every table: every index expression and statistics object runs
        if (!(n.rels ?? []).length && !n.relation) fx.any = true;
        break;
      case 'TruncateStmt':
        for (const r of n.relations ?? []) addRangeVar(fx, r?.RangeVar);
        break;
      case 'CopyStmt':
        if (n.is_from) addRangeVar(fx, n.relation);
        break;
      case 'DropStmt':
        if (n.removeType === 'OBJECT_TABLE' || n.removeType === 'OBJECT_FOREIGN_TABLE') {
          for (const o of n.objects ?? []) addNameList(fx, o?.List?.items);
        } else if (n.removeType === 'OBJECT_SCHEMA' || n.removeType === 'OBJECT_EXTENSION') {
          fx.any = true; // may drop partitions of tables elsewhere
        }
        break;
      case 'CreateStmt':
        // a new child of an existing parent: its rows count in the parent
        for (const r of n.inhRelations ?? []) addRangeVar(fx, r?.RangeVar);
        break;
      case 'ViewStmt':
        // an auto-updatable view writes its base tables: DML on it later in the file counts every table
        views.add(String(n.view?.relname ?? ''));
        break;
      case 'RenameStmt':
      case 'AlterObjectSchemaStmt': {
        // a table renamed or moved, written under its new name, and moved back: count it under its old one
        const type = n.renameType ?? n.objectType;
        if (type === 'OBJECT_TABLE' || type === 'OBJECT_FOREIGN_TABLE') addRangeVar(fx, n.relation);
        if (type === 'OBJECT_SCHEMA') fx.any = true;
        break;
      }
      case 'AlterDomainStmt':
        // its name is a plain list: VALIDATE CONSTRAINT re-runs the domain's CHECK on every column of it
        addType(names, n.typeName);
        break;
      case 'AlterTableStmt':
        // a foreign key added now makes this table a cascade target of DML later in the file (the catalog
        // closure is read before the file runs)
        if (has(n.cmds, (x) => x.contype === 'CONSTR_FOREIGN')) addRangeVar(fx, n.relation);
        for (const c of n.cmds ?? []) {
          const cmd = c?.AlterTableCmd;
          if (!REPARENT.has(cmd?.subtype)) continue;
          addRangeVar(fx, n.relation);
          addRangeVar(fx, cmd?.def?.PartitionCmd?.name);
          addRangeVar(fx, cmd?.def?.RangeVar);
        }
        break;
      case 'CreateExtensionStmt':
        fx.extensions!.push(String(n.extname ?? ''));
        break;
      case 'CreatePLangStmt':
        fx.extensions!.push(String(n.plname ?? ''));
        break;
      case 'ExplainStmt':
        // EXPLAIN without ANALYZE runs nothing; with it, the walk below finds the DML
        break;
    }
    walk(n, fx, names);
  }
  if (fx.writes.some((w) => views.has(w.name))) fx.any = true;
  fx.functions = [...names.functions].sort();
  fx.operators = [...names.operators].sort();
  fx.opclasses = [...names.opclasses].sort();
  fx.types = [...names.types].sort();
  fx.typeSchemas = [...names.typeSchemas].sort();
  return fx;
}

interface Names {
  functions: Set<string>;
  operators: Set<string>;
  opclasses: Set<string>;
  types: Set<string>;
  typeSchemas: Set<string>;
}

/** SET / SET LOCAL / RESET of a setting that changes name resolution. */
function setting(fx: RowEffects, n: Node): void {
  const path = fx.searchPath!;
  if (n.kind === 'VAR_RESET_ALL') path.unknown = true;
  if (!NAME_SETTINGS.has(n.name)) return;
  const values = (n.args ?? []).map((a: Node) => a?.A_Const?.sval?.sval);
  if (n.name !== 'search_path' || n.kind !== 'VAR_SET_VALUE' || values.some((v: unknown) => typeof v !== 'string')) path.unknown = true;
  else path.schemas.push(...(values as string[]));
}

/** set_config('search_path', 'a, b', ...): a literal path is followed; anything else searches every schema. */
function setConfig(fx: RowEffects, args: Node[] | undefined): void {
  const name = args?.[0]?.A_Const?.sval?.sval;
  if (typeof name === 'string' && !NAME_SETTINGS.has(name.toLowerCase())) return;
  const value = args?.[1]?.A_Const?.sval?.sval;
  if (typeof name !== 'string' || name.toLowerCase() !== 'search_path' || typeof value !== 'string') {
    fx.searchPath!.unknown = true;
    return;
  }
  for (const part of value.split(',')) {
    const p = part.trim();
    if (p) fx.searchPath!.schemas.push(p.startsWith('"') && p.endsWith('"') ? p.slice(1, -1).replace(/""/g, '"') : p.toLowerCase());
  }
}

/** Operators implied by A_Expr kinds whose name is not an operator. */
const IMPLIED: Record<string, string[]> = {
  AEXPR_BETWEEN: ['<=', '>='],
  AEXPR_NOT_BETWEEN: ['<=', '>='],
  AEXPR_BETWEEN_SYM: ['<=', '>='],
  AEXPR_NOT_BETWEEN_SYM: ['<=', '>='],
};

/** Every DML node, function call, operator, type and relation named anywhere in the tree. */
function walk(node: unknown, fx: RowEffects, names: Names): void {
  if (Array.isArray(node)) {
    for (const x of node) walk(x, fx, names);
    return;
  }
  if (!node || typeof node !== 'object') return;
  const obj = node as Node;
  // a RangeVar, wrapped ({RangeVar: ...}) or not (InsertStmt.relation): a relation the statement names
  if (typeof obj.relname === 'string') addRelation(fx, obj);
  if (obj.behavior === 'DROP_CASCADE') fx.cascades = true;
  // a trigger or rule defined inside another statement (CREATE SCHEMA s CREATE TRIGGER ...)
  if (obj.CreateTrigStmt || obj.RuleStmt) fx.definesTriggers = true;
  for (const [key, value] of Object.entries(obj)) {
    const v = value as Node;
    if (DML.includes(key)) addRangeVar(fx, v?.relation);
    switch (key) {
      case 'ExecuteStmt': // CREATE TABLE ... AS EXECUTE: a prepared statement we may not have seen
        fx.any = true;
        break;
      case 'FuncCall': {
        const parts = Array.isArray(v?.funcname) ? v.funcname.map((p: Node) => String(p?.String?.sval ?? '')) : [];
        const last = parts[parts.length - 1] ?? '';
        if (RUNS_SQL_TEXT.has(last)) fx.any = true;
        if (last === 'set_config') setConfig(fx, v?.args); // pg_catalog.set_config included
        // pg_catalog-qualified too: a superuser can put a function of their own there
        if (last) names.functions.add(last);
        break;
      }
      case 'ColumnRef': {
        // x.f is also a call of f(x) when x's row type has no column f (functional notation): checked like a call
        const fields = Array.isArray(v?.fields) ? (v.fields as Node[]) : [];
        const f = fields.length >= 2 ? fields[fields.length - 1]?.String?.sval : undefined;
        if (typeof f === 'string' && f) names.functions.add(f);
        break;
      }
      case 'A_Expr':
        if (IMPLIED[v?.kind]) for (const o of IMPLIED[v.kind]!) names.operators.add(o);
        else addName(names.operators, v?.name);
        break;
      case 'SubLink':
        // x IN (SELECT ...) has no operator name: it means =
        if (['ANY_SUBLINK', 'ALL_SUBLINK', 'ROWCOMPARE_SUBLINK'].includes(v?.subLinkType)) {
          if (Array.isArray(v?.operName) && v.operName.length) addName(names.operators, v.operName);
          else names.operators.add('=');
        }
        break;
      case 'useOp': // ORDER BY x USING <op>
        addName(names.operators, v);
        break;
      case 'exclusions': // EXCLUDE USING gist (c WITH &&)
        for (const pair of (value as Node[]) ?? []) addName(names.operators, pair?.List?.items?.[1]?.List?.items);
        break;
      case 'opclass':
        addName(names.opclasses, v);
        break;
      case 'typeName':
      case 'TypeName':
        addType(names, v?.names);
        break;
      case 'ofTypename':
        addType(names, v?.names);
        break;
    }
    walk(value, fx, names);
  }
}

/** Does any node under `node` satisfy `test`? */
function has(node: unknown, test: (n: Node) => boolean): boolean {
  if (Array.isArray(node)) return node.some((x) => has(x, test));
  if (!node || typeof node !== 'object') return false;
  return test(node as Node) || Object.values(node as Node).some((v) => has(v, test));
}

/** The last part of a qualified name, or undefined for a pg_catalog-qualified one (a built-in by definition). */
function qualified(list: unknown): string | undefined {
  if (!Array.isArray(list) || !list.length) return undefined;
  const parts = list.map((p: Node) => String(p?.String?.sval ?? ''));
  if (parts.length >= 2 && parts[parts.length - 2] === 'pg_catalog') return undefined;
  return parts[parts.length - 1] || undefined;
}

/** A type name, and the schema that qualifies it if any (pg_catalog's are built-ins: left out, as by addName). */
function addType(names: Names, list: unknown): void {
  addName(names.types, list);
  if (!Array.isArray(list) || list.length < 2) return;
  const schema = String((list[list.length - 2] as Node)?.String?.sval ?? '');
  if (schema && schema !== 'pg_catalog') names.typeSchemas.add(schema);
}

function addName(into: Set<string>, list: unknown): void {
  const name = qualified(list);
  if (name) into.add(name);
}

function addRelation(fx: RowEffects, rv: Node): void {
  const ref: RelationRef = rv.schemaname ? { schema: String(rv.schemaname), name: String(rv.relname) } : { name: String(rv.relname) };
  if (!fx.relations!.some((r) => r.name === ref.name && r.schema === ref.schema)) fx.relations!.push(ref);
}

function addRangeVar(fx: RowEffects, rv: Node | undefined): void {
  if (!rv?.relname) return;
  const ref: RelationRef = rv.schemaname ? { schema: String(rv.schemaname), name: String(rv.relname) } : { name: String(rv.relname) };
  if (!fx.writes.some((w) => w.name === ref.name && w.schema === ref.schema)) fx.writes.push(ref);
}

function addNameList(fx: RowEffects, items: Node[] | undefined): void {
  const parts = (items ?? []).map((i) => String(i?.String?.sval ?? ''));
  if (parts.length === 1) addRangeVar(fx, { relname: parts[0] });
  else if (parts.length >= 2) addRangeVar(fx, { schemaname: parts[parts.length - 2], relname: parts[parts.length - 1] });
}

/** The file itself says rows anywhere may change (or was analysed by an older version): count every table. */
export function changesAnyRows(fx: RowEffects): boolean {
  if (!fx.operators || !fx.opclasses || !fx.types || !fx.relations || !fx.searchPath) return true;
  // a DROP ... CASCADE (of a type, domain, function, sequence, server, collation, column...) can take whole
  // tables with it (a typed table, a table in a dropped schema), recreated later under the same name: the
  // objects it reaches are not in the file, so every table is counted, in every schema (absent: older set)
  if (fx.cascades !== false) return true;
  return fx.any || (fx.definesTriggers && fx.writes.length > 0) || fx.functions.some((f) => fx.defines.includes(f));
}

/**
 * Statements that only make new objects: no existing table loses or changes a
 * column, constraint or index, and no table is dropped. An index counts only on
 * a table the same file creates (with IF NOT EXISTS too: if that table already
 * existed, the build runs only built-in code over its rows, as a file naming user
 * code is never guessed), never ON ONLY or CONCURRENTLY. A file made only of these
 * can fail structure validation in one way only, by creating a table where
 * `allowTableCreation` is off (constraints made with a table are always
 * validated, and an index built in a transaction on a plain table is valid), so
 * the engine takes no catalog snapshot around it when creation is allowed
 * (engine/apply.ts guess).
 */
const ONLY_CREATES = new Set([
  'CreateStmt',
  'IndexStmt',
  'CreateSeqStmt',
  'CreateEnumStmt',
  'CompositeTypeStmt',
  'CreateDomainStmt',
  'CreateFunctionStmt',
  'CreateTrigStmt',
  'ViewStmt',
  'CommentStmt',
]);

export function onlyCreates(statements: readonly { kind: string; node: Node }[]): boolean {
  const made = new Set<string>();
  const key = (r: Node | undefined) => `${r?.schemaname ?? ''}.${r?.relname ?? ''}`;
  return statements.every((s) => {
    if (!ONLY_CREATES.has(s.kind)) return false;
    switch (s.kind) {
      case 'CreateStmt':
        // a partition or an inheritance child joins an existing table (a default partition's rows are checked)
        if (s.node.partbound || s.node.inhRelations?.length) return false;
        made.add(key(s.node.relation));
        return true;
      case 'IndexStmt':
        // only on a table this file made; not ON ONLY a partitioned table (left INVALID until its partitions'
        // indexes are attached), not CONCURRENTLY
        // (the parse tree leaves `inh` out for ON ONLY: only an explicit true is a plain index)
        return !s.node.concurrent && s.node.relation?.inh === true && made.has(key(s.node.relation));
      case 'CreateTrigStmt':
        // CREATE CONSTRAINT TRIGGER adds a constraint (contype 't') to an existing table
        return !s.node.isconstraint;
      default:
        return true;
    }
  });
}
