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
}

type Node = Record<string, any>;

/** Statements that change no rows by themselves (function calls inside them are still collected). */
const NO_ROWS = new Set([
  'CreateStmt', 'IndexStmt', 'AlterTableStmt', 'CreateEnumStmt', 'AlterEnumStmt', 'CreateDomainStmt', 'AlterDomainStmt',
  'CompositeTypeStmt', 'CreateRangeStmt', 'DefineStmt', 'DropStmt', 'RenameStmt', 'CommentStmt', 'GrantStmt', 'GrantRoleStmt',
  'AlterDefaultPrivilegesStmt', 'CreateSchemaStmt', 'CreateSeqStmt', 'AlterSeqStmt', 'ViewStmt', 'CreateTableAsStmt',
  'AlterObjectSchemaStmt', 'AlterOwnerStmt', 'VariableSetStmt', 'VariableShowStmt', 'ReindexStmt', 'VacuumStmt', 'ClusterStmt',
  'LockStmt', 'CreatePolicyStmt', 'AlterPolicyStmt', 'CreateStatsStmt', 'AlterStatsStmt', 'RefreshMatViewStmt',
  'AlterFunctionStmt', 'CreateCastStmt', 'CreateOpClassStmt', 'CreateOpFamilyStmt', 'AlterOpFamilyStmt', 'CreateConversionStmt',
  'CreatePublicationStmt', 'AlterPublicationStmt', 'CreateRoleStmt', 'AlterRoleStmt', 'DropRoleStmt', 'AlterTableSpaceOptionsStmt',
  'AlterCollationStmt', 'AlterTypeStmt', 'AlterTSConfigurationStmt', 'AlterTSDictionaryStmt', 'SecLabelStmt', 'NotifyStmt',
  'ListenStmt', 'UnlistenStmt', 'DeallocateStmt', 'CheckPointStmt', 'DiscardStmt', 'ConstraintsSetStmt', 'TransactionStmt',
  'SelectStmt', 'ExplainStmt', 'PrepareStmt', 'AlterDatabaseStmt', 'AlterDatabaseSetStmt', 'AlterRoleSetStmt',
  // statements whose rows are DML targets, handled below
  'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt', 'TruncateStmt', 'CopyStmt',
  // definitions of code: recorded (defines, definesTriggers), they run nothing now
  'CreateFunctionStmt', 'CreateTrigStmt', 'RuleStmt',
]);

const DML = ['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt'];
/** ALTER TABLE subcommands that move rows in or out of a parent's count(*) */
const REPARENT = new Set(['AT_AttachPartition', 'AT_DetachPartition', 'AT_DetachPartitionFinalize', 'AT_AddInherit', 'AT_DropInherit']);

export function rowEffects(statements: { kind: string; node: Node }[]): RowEffects {
  const fx: RowEffects = { any: false, writes: [], functions: [], definesTriggers: false, defines: [] };
  const functions = new Set<string>();
  for (const s of statements) {
    const n = s.node;
    if (!NO_ROWS.has(s.kind)) fx.any = true; // DoStmt, CallStmt, ExecuteStmt, CreateExtensionStmt, CreateEventTrigStmt, unknown...
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
      case 'AlterTableStmt':
        for (const c of n.cmds ?? []) {
          const cmd = c?.AlterTableCmd;
          if (!REPARENT.has(cmd?.subtype)) continue;
          addRangeVar(fx, n.relation);
          addRangeVar(fx, cmd?.def?.PartitionCmd?.name);
          addRangeVar(fx, cmd?.def?.RangeVar);
        }
        break;
      case 'ExplainStmt':
        // EXPLAIN without ANALYZE runs nothing; with it, the walk below finds the DML
        break;
    }
    walk(n, fx, functions);
  }
  fx.functions = [...functions].sort();
  return fx;
}

/** Every DML node (data-modifying CTEs, EXPLAIN ANALYZE, INSERT ... ON CONFLICT) and every function call. */
function walk(node: unknown, fx: RowEffects, functions: Set<string>): void {
  if (Array.isArray(node)) {
    for (const x of node) walk(x, fx, functions);
    return;
  }
  if (!node || typeof node !== 'object') return;
  for (const [key, value] of Object.entries(node as Node)) {
    if (DML.includes(key)) addRangeVar(fx, (value as Node)?.relation);
    if (key === 'FuncCall') {
      const name = (value as Node)?.funcname;
      if (Array.isArray(name) && name.length) {
        const parts = name.map((p: Node) => String(p?.String?.sval ?? ''));
        // pg_catalog.x is a built-in by definition; anything else is looked up at run time
        if (!(parts.length === 2 && parts[0] === 'pg_catalog')) functions.add(parts[parts.length - 1]!);
      }
    }
    walk(value, fx, functions);
  }
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

/** The file itself says rows anywhere may change: count every table. */
export function changesAnyRows(fx: RowEffects): boolean {
  return fx.any || (fx.definesTriggers && fx.writes.length > 0) || fx.functions.some((f) => fx.defines.includes(f));
}

