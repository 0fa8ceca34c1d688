/**
 * The lint pass: walks the parse trees of a list of migration files, in
 * order, and reports the statements that take a lock or make a change a live
 * table cannot afford (rules.ts). Pure: no database, no files; the state it
 * keeps while walking is what earlier statements of the same list did:
 *
 * - tables (and indexes) created earlier in the list are new, not "existing":
 *   building an index on an empty table, or renaming it, hurts nobody;
 * - CHECK (col IS NOT NULL) constraints validated earlier (also in files
 *   already applied, given as `applied`) make a later SET NOT NULL cheap;
 * - enum values added earlier in the same transaction cannot be used yet.
 */
import type { Statement } from '../statements.js';
import { RULES, type Cost, type LockMode, type RuleId, type Severity } from './rules.js';

type Node = Record<string, any>;

export interface RelRef {
  schema?: string;
  name: string;
}

export interface LintFinding {
  rule: RuleId;
  severity: Severity;
  file: string;
  line: number;
  /** the start of the statement, on one line */
  statement: string;
  /** the table the lock is taken on (undefined when the statement does not name it: DROP INDEX, REINDEX SCHEMA) */
  table?: RelRef;
  /** DROP INDEX, REINDEX INDEX: the index named */
  index?: RelRef;
  column?: string;
  lock: LockMode | null;
  cost: Cost;
  /** what this statement does, in words */
  message: string;
  why: string;
  safer: string;
}

/** What lint needs of a migration file (a Migration fits). */
export interface LintFile {
  name: string;
  statements: readonly Pick<Statement, 'line' | 'sql' | 'kind' | 'node'>[];
  transactional: boolean;
  /** rules this file's `-- flotilla:allow` header acknowledges */
  allow?: readonly string[];
}

export interface LintInput {
  files: readonly LintFile[];
  /** files already applied: read only for what they prove (validated CHECK constraints), never reported */
  applied?: readonly LintFile[];
  /** rules turned off (config `lint.disable`): not checked at all */
  disable?: readonly string[];
  /** all files run in one transaction (--single-transaction): an enum value added in one file cannot be used in the next */
  singleTransaction?: boolean;
}

export interface LintReport {
  /** findings not acknowledged by their file's header, in file and line order */
  findings: LintFinding[];
  /** findings acknowledged by their file's `-- flotilla:allow <rule>` header */
  allowed: LintFinding[];
}

const SERIAL_TYPES = new Set(['serial', 'serial2', 'serial4', 'serial8', 'smallserial', 'bigserial']);

/**
 * Functions known not to be volatile (stable or immutable), common in
 * defaults. Any other function call in a default is treated as volatile: a
 * user function may well be, and in doubt we warn (an `allow` header or the
 * config turns the rule off where the author knows better).
 */
const NON_VOLATILE = new Set([
  'now',
  'transaction_timestamp',
  'statement_timestamp',
  'current_setting',
  'lower',
  'upper',
  'btrim',
  'ltrim',
  'rtrim',
  'concat',
  'length',
  'abs',
  'round',
  'to_timestamp',
  'to_date',
  'to_char',
  'to_jsonb',
  'to_json',
  'make_date',
  'make_interval',
  'jsonb_build_object',
  'json_build_object',
  'jsonb_build_array',
  'json_build_array',
  'array_fill',
  'timezone',
  'date_trunc',
]);

function rel(r: Node | undefined): RelRef | undefined {
  if (!r?.relname) return undefined;
  return r.schemaname ? { schema: String(r.schemaname), name: String(r.relname) } : { name: String(r.relname) };
}

function refFromNames(items: Node[] | undefined): RelRef | undefined {
  const names = (items ?? []).map((i) => i?.String?.sval).filter((s): s is string => typeof s === 'string');
  if (names.length === 0) return undefined;
  const name = names.at(-1)!;
  return names.length > 1 ? { schema: names.at(-2)!, name } : { name };
}

export function relLabel(r: RelRef): string {
  return r.schema ? `${r.schema}.${r.name}` : r.name;
}

/** Relations named alike: same name, and the same schema when both name one (an unqualified name may be either). */
function sameRel(a: RelRef, b: RelRef): boolean {
  return a.name === b.name && (a.schema === undefined || b.schema === undefined || a.schema === b.schema);
}

class RelSet {
  private readonly items: RelRef[] = [];
  add(r: RelRef | undefined): void {
    if (r) this.items.push(r);
  }
  has(r: RelRef | undefined): boolean {
    return !!r && this.items.some((x) => sameRel(x, r));
  }
  rename(from: RelRef, to: string): void {
    if (this.has(from)) this.items.push({ ...(from.schema ? { schema: from.schema } : {}), name: to });
  }
}

/** Every node of a tree, depth first. */
function* walk(n: unknown): Generator<Node> {
  if (Array.isArray(n)) for (const x of n) yield* walk(x);
  else if (n && typeof n === 'object') {
    yield n as Node;
    for (const v of Object.values(n)) if (v && typeof v === 'object') yield* walk(v);
  }
}

function funcName(f: Node): string {
  const names = (f.funcname ?? []).map((x: Node) => x?.String?.sval).filter(Boolean) as string[];
  return names.at(-1)?.toLowerCase() ?? '';
}

/** The first function call in an expression that is not known to be stable or immutable. */
function volatileCall(expr: unknown): string | undefined {
  for (const n of walk(expr)) {
    if (n.FuncCall) {
      const name = funcName(n.FuncCall);
      if (!NON_VOLATILE.has(name)) return name;
    }
  }
  return undefined;
}

/** `col IS NOT NULL` (the only CHECK that lets SET NOT NULL skip its scan): the column's name. */
function notNullCheckColumn(expr: Node | undefined): string | undefined {
  const t = expr?.NullTest;
  if (t?.nulltesttype !== 'IS_NOT_NULL') return undefined;
  const fields = t.arg?.ColumnRef?.fields;
  return Array.isArray(fields) && fields.length === 1 ? fields[0]?.String?.sval : undefined;
}

function oneLine(sql: string): string {
  const text = sql
    .replace(/^(\s*(--[^\n]*\n|\/\*[\s\S]*?\*\/))*\s*/, '')
    .replace(/\s+/g, ' ')
    .trim();
  return text.length > 100 ? `${text.slice(0, 97)}...` : text;
}

/** The state the walk carries from statement to statement. */
class Walk {
  readonly created = new RelSet();
  readonly createdIndexes = new RelSet();
  /** CHECK (col IS NOT NULL) constraints by name: their table and column, and whether validated */
  readonly checks = new Map<string, { table: RelRef; column: string; validated: boolean }>();
  readonly out: LintFinding[] = [];
  private file = '';
  private stmt: { line: number; sql: string } = { line: 0, sql: '' };

  constructor(
    private readonly disabled: ReadonlySet<string>,
    private readonly report: boolean,
  ) {}

  at(file: string, s: { line: number; sql: string }): void {
    this.file = file;
    this.stmt = s;
  }

  find(rule: RuleId, message: string, where: { table?: RelRef; index?: RelRef; column?: string } = {}): void {
    if (!this.report || this.disabled.has(rule)) return;
    const r = RULES[rule];
    this.out.push({
      rule,
      severity: r.severity,
      file: this.file,
      line: this.stmt.line,
      statement: oneLine(this.stmt.sql),
      ...where,
      lock: r.lock,
      cost: r.cost,
      message,
      why: r.why,
      safer: r.safer,
    });
  }

  existing(r: RelRef | undefined): r is RelRef {
    return !!r && !this.created.has(r);
  }

  hasValidatedNotNull(table: RelRef, column: string): boolean {
    for (const c of this.checks.values()) if (c.validated && c.column === column && sameRel(c.table, table)) return true;
    return false;
  }
}

function statement(w: Walk, kind: string, n: Node): void {
  switch (kind) {
    case 'CreateStmt':
      w.created.add(rel(n.relation));
      return;
    case 'CreateTableAsStmt':
      w.created.add(rel(n.into?.rel));
      return;
    case 'SelectStmt':
      if (n.intoClause) w.created.add(rel(n.intoClause.rel));
      return;
    case 'IndexStmt': {
      const t = rel(n.relation);
      if (n.idxname) w.createdIndexes.add({ ...(t?.schema ? { schema: t.schema } : {}), name: String(n.idxname) });
      if (!n.concurrent && w.existing(t))
        w.find(
          'create-index-not-concurrently',
          `CREATE ${n.unique ? 'UNIQUE ' : ''}INDEX ${n.idxname ?? ''} on existing table ${relLabel(t)} without CONCURRENTLY`.replace('  ', ' '),
          {
            table: t,
          },
        );
      return;
    }
    case 'DropStmt':
      drop(w, n);
      return;
    case 'RenameStmt':
      rename(w, n);
      return;
    case 'AlterTableStmt':
      if (n.objtype === 'OBJECT_TABLE' || n.objtype === undefined) alterTable(w, n);
      return;
    case 'VacuumStmt': {
      const full = (n.options ?? []).some((o: Node) => o?.DefElem?.defname === 'full' && o.DefElem.arg?.Boolean?.boolval !== false);
      if (!n.is_vacuumcmd || !full) return;
      const rels: (RelRef | undefined)[] = (n.rels ?? []).map((r: Node) => rel(r?.VacuumRelation?.relation));
      if (rels.length === 0) w.find('vacuum-full', 'VACUUM FULL of every table in the database');
      for (const t of rels) if (w.existing(t)) w.find('vacuum-full', `VACUUM FULL ${relLabel(t)}`, { table: t });
      return;
    }
    case 'ClusterStmt': {
      const t = rel(n.relation);
      if (!n.relation) w.find('cluster', 'CLUSTER of every previously clustered table');
      else if (w.existing(t)) w.find('cluster', `CLUSTER ${relLabel(t)}`, { table: t });
      return;
    }
    case 'ReindexStmt': {
      if ((n.params ?? []).some((o: Node) => o?.DefElem?.defname === 'concurrently')) return;
      const k = String(n.kind ?? '').replace('REINDEX_OBJECT_', '');
      const r = rel(n.relation);
      if (k === 'TABLE' && w.existing(r)) w.find('reindex-not-concurrently', `REINDEX TABLE ${relLabel(r)} without CONCURRENTLY`, { table: r });
      else if (k === 'INDEX' && r && !w.createdIndexes.has(r))
        w.find('reindex-not-concurrently', `REINDEX INDEX ${relLabel(r)} without CONCURRENTLY`, { index: r });
      else if (k !== 'TABLE' && k !== 'INDEX') w.find('reindex-not-concurrently', `REINDEX ${k}${n.name ? ` ${n.name}` : ''} without CONCURRENTLY`);
      return;
    }
    case 'UpdateStmt':
    case 'DeleteStmt': {
      const t = rel(n.relation);
      if (!n.whereClause && w.existing(t))
        w.find('data-change-without-where', `${kind === 'UpdateStmt' ? 'UPDATE' : 'DELETE FROM'} ${relLabel(t)} without WHERE: every row`, { table: t });
      return;
    }
  }
}

function drop(w: Walk, n: Node): void {
  const objects: RelRef[] = (n.objects ?? []).map((o: Node) => refFromNames(o?.List?.items)).filter(Boolean);
  if (n.removeType === 'OBJECT_TABLE') {
    for (const t of objects) if (w.existing(t)) w.find('drop-table', `DROP TABLE ${relLabel(t)}`, { table: t });
  } else if (n.removeType === 'OBJECT_INDEX' && !n.concurrent) {
    for (const i of objects)
      if (!w.createdIndexes.has(i)) w.find('drop-index-not-concurrently', `DROP INDEX ${relLabel(i)} without CONCURRENTLY`, { index: i });
  }
}

function rename(w: Walk, n: Node): void {
  const t = rel(n.relation);
  if (n.renameType === 'OBJECT_COLUMN' && (n.relationType === 'OBJECT_TABLE' || n.relationType === undefined)) {
    if (w.existing(t)) w.find('rename-column', `RENAME COLUMN ${n.subname} TO ${n.newname} on ${relLabel(t)}`, { table: t, column: String(n.subname) });
  } else if (n.renameType === 'OBJECT_TABLE' && t) {
    if (w.existing(t)) w.find('rename-table', `RENAME TABLE ${relLabel(t)} TO ${n.newname}`, { table: t });
    else w.created.rename(t, String(n.newname));
  }
}

function alterTable(w: Walk, n: Node): void {
  const t = rel(n.relation);
  const existing = w.existing(t);
  for (const item of n.cmds ?? []) {
    const c = item?.AlterTableCmd as Node | undefined;
    if (!c || !t) continue;
    switch (c.subtype) {
      case 'AT_AddColumn': {
        const def = c.def?.ColumnDef as Node | undefined;
        if (!def || !existing) break;
        addColumn(w, t, def);
        break;
      }
      case 'AT_SetNotNull':
        if (existing && !w.hasValidatedNotNull(t, String(c.name)))
          w.find('set-not-null', `SET NOT NULL on ${relLabel(t)}.${c.name} without a validated CHECK (${c.name} IS NOT NULL)`, {
            table: t,
            column: String(c.name),
          });
        break;
      case 'AT_AlterColumnType':
        if (existing) {
          const type = typeLabel(c.def?.ColumnDef?.typeName);
          w.find('alter-column-type', `ALTER COLUMN ${c.name} TYPE ${type} on ${relLabel(t)}`, { table: t, column: String(c.name) });
        }
        break;
      case 'AT_AddConstraint': {
        const con = c.def?.Constraint as Node | undefined;
        if (con) addConstraint(w, t, con, existing);
        break;
      }
      case 'AT_ValidateConstraint': {
        const check = w.checks.get(String(c.name));
        if (check && sameRel(check.table, t)) check.validated = true;
        break;
      }
      case 'AT_DropColumn':
        if (existing) w.find('drop-column', `DROP COLUMN ${c.name} from ${relLabel(t)}`, { table: t, column: String(c.name) });
        break;
    }
  }
}

function typeLabel(typeName: Node | undefined): string {
  const names = (typeName?.names ?? []).map((x: Node) => x?.String?.sval).filter((s: unknown) => s && s !== 'pg_catalog');
  return names.join('.') || '?';
}

function addColumn(w: Walk, t: RelRef, def: Node): void {
  const col = String(def.colname);
  const type = typeLabel(def.typeName);
  const where = { table: t, column: col };
  if ((def.typeName?.names ?? []).length === 1 && SERIAL_TYPES.has(type.toLowerCase()))
    w.find('add-column-serial', `ADD COLUMN ${col} ${type} to existing table ${relLabel(t)}`, where);
  for (const item of def.constraints ?? []) {
    const con = item?.Constraint as Node | undefined;
    if (!con) continue;
    switch (con.contype) {
      case 'CONSTR_DEFAULT': {
        const f = volatileCall(con.raw_expr);
        if (f)
          w.find(
            'add-column-volatile-default',
            `ADD COLUMN ${col} with a default calling ${f}(), volatile or not known to be stable, on ${relLabel(t)}`,
            where,
          );
        break;
      }
      case 'CONSTR_IDENTITY':
        w.find('add-column-serial', `ADD COLUMN ${col} GENERATED AS IDENTITY to existing table ${relLabel(t)}`, where);
        break;
      case 'CONSTR_GENERATED':
        // VIRTUAL generated columns (Postgres 18) store nothing: no rewrite
        if (con.generated_kind !== 'v') w.find('add-column-generated-stored', `ADD COLUMN ${col} GENERATED ALWAYS AS (...) STORED to ${relLabel(t)}`, where);
        break;
      case 'CONSTR_UNIQUE':
      case 'CONSTR_PRIMARY':
        w.find(
          'add-unique-constraint',
          `ADD COLUMN ${col} ${con.contype === 'CONSTR_PRIMARY' ? 'PRIMARY KEY' : 'UNIQUE'} on ${relLabel(t)} builds its index under the lock`,
          where,
        );
        break;
      case 'CONSTR_CHECK':
        w.find('add-check-constraint', `ADD COLUMN ${col} with a CHECK on ${relLabel(t)} (checked against every row)`, where);
        break;
      case 'CONSTR_FOREIGN':
        w.find(
          'add-foreign-key',
          `ADD COLUMN ${col} REFERENCES ${relLabel(rel(con.pktable) ?? { name: '?' })} on ${relLabel(t)} (validated against every row)`,
          where,
        );
        break;
    }
  }
}

function addConstraint(w: Walk, t: RelRef, con: Node, existing: boolean): void {
  const name = con.conname ? ` ${con.conname}` : '';
  switch (con.contype) {
    case 'CONSTR_CHECK': {
      const column = notNullCheckColumn(con.raw_expr);
      if (column && con.conname) w.checks.set(String(con.conname), { table: t, column, validated: !con.skip_validation });
      if (existing && !con.skip_validation) w.find('add-check-constraint', `ADD CONSTRAINT${name} CHECK on ${relLabel(t)} without NOT VALID`, { table: t });
      break;
    }
    case 'CONSTR_FOREIGN':
      if (existing && !con.skip_validation)
        w.find(
          'add-foreign-key',
          `ADD CONSTRAINT${name} FOREIGN KEY on ${relLabel(t)} referencing ${relLabel(rel(con.pktable) ?? { name: '?' })} without NOT VALID`,
          {
            table: t,
          },
        );
      break;
    case 'CONSTR_UNIQUE':
    case 'CONSTR_PRIMARY':
    case 'CONSTR_EXCLUSION':
      if (existing && !con.indexname) {
        const what = con.contype === 'CONSTR_PRIMARY' ? 'PRIMARY KEY' : con.contype === 'CONSTR_UNIQUE' ? 'UNIQUE' : 'EXCLUDE';
        w.find('add-unique-constraint', `ADD CONSTRAINT${name} ${what} on ${relLabel(t)} without USING INDEX`, { table: t });
      }
      break;
  }
}

/** Every string constant of a statement (where an enum value would appear). */
function stringConstants(node: unknown): Set<string> {
  const out = new Set<string>();
  for (const n of walk(node)) if (n.A_Const?.sval?.sval !== undefined) out.add(String(n.A_Const.sval.sval));
  return out;
}

export function lint(input: LintInput): LintReport {
  const disabled = new Set(input.disable ?? []);
  // files already applied: only what they prove about CHECK constraints is kept
  const before = new Walk(disabled, false);
  for (const f of input.applied ?? []) {
    for (const s of f.statements) {
      before.at(f.name, s);
      statement(before, s.kind, s.node as Node);
    }
  }
  const w = new Walk(disabled, true);
  for (const [k, v] of before.checks) if (v.validated) w.checks.set(k, v);
  const enumAdded = new Map<string, { file: string; line: number }>();
  for (const [i, f] of input.files.entries()) {
    if (!input.singleTransaction || i === 0) enumAdded.clear();
    for (const s of f.statements) {
      w.at(f.name, s);
      // a later use of an enum value added earlier in this transaction
      if (f.transactional && enumAdded.size && s.kind !== 'AlterEnumStmt') {
        for (const v of stringConstants(s.node)) {
          const added = enumAdded.get(v);
          if (added)
            w.find(
              'enum-value-used-in-transaction',
              `uses enum value '${v}' added by ALTER TYPE ... ADD VALUE at ${added.file === f.name ? 'line ' : `${added.file}:`}${added.line} in the same transaction`,
            );
        }
      }
      if (s.kind === 'AlterEnumStmt' && s.node.newVal !== undefined && !s.node.oldVal && f.transactional) {
        enumAdded.set(String(s.node.newVal), { file: f.name, line: s.line });
        continue;
      }
      statement(w, s.kind, s.node as Node);
    }
  }
  const allowedIn = new Map(input.files.map((f) => [f.name, new Set(f.allow ?? [])]));
  const findings: LintFinding[] = [];
  const allowed: LintFinding[] = [];
  for (const x of w.out) (allowedIn.get(x.file)?.has(x.rule) ? allowed : findings).push(x);
  return { findings, allowed };
}
