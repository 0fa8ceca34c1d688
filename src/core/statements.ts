/**
 * Splitting and classifying a migration's SQL with the real Postgres parser
 * (libpg-query, the server's own grammar compiled to WASM), never regexes:
 * semicolons in strings, E'' escapes, nested block comments and dollar-quoted
 * bodies containing BEGIN/END;/COMMIT are the parser's business.
 *
 * The parser reports statement positions as UTF-8 *byte* offsets, so we slice
 * a Buffer, not the JS string, in one pass: splitting is linear in file size.
 * Files larger than the parser can take are refused before it is called
 * (core/file-bytes.ts MAX_MIGRATION_BYTES).
 */

export type StatementMode =
  /** ordinary statement: runs inside the engine's transaction */
  | 'transactional'
  /** must run outside a transaction block (CREATE INDEX CONCURRENTLY, VACUUM, ...) */
  | 'non-transactional'
  /** the file's own BEGIN/COMMIT: dropped, the engine owns the transaction */
  | 'transaction-control'
  /** ROLLBACK, PREPARE TRANSACTION, ...: refused */
  | 'forbidden';

export interface Statement {
  /**
   * 0-based position among the file's statements; in a Migration, among the
   * statements that run (the file's own BEGIN/COMMIT are dropped and not
   * counted). Shown 1-based: "statement 2 (line 5)".
   */
  index: number;
  /** 1-based line of the statement's first token */
  line: number;
  /** the statement text, as written (comments before it included) */
  sql: string;
  /** the parser's node type, e.g. CreateStmt, IndexStmt */
  kind: string;
  mode: StatementMode;
  /** short human label, e.g. "CREATE INDEX CONCURRENTLY" */
  label: string;
  /** the parse tree node (for classification of what a statement touches) */
  node: Record<string, unknown>;
}

export interface ParseFailure {
  message: string;
  /** 1-based line of the error, when the parser gave a position */
  line: number;
  /** the parser gave up on the statement's size or nesting, not on its syntax */
  limit?: boolean;
}

let loaded: Promise<void> | undefined;
let parseSync: ((sql: string) => unknown) | undefined;
/**
 * The WASM parser loads once per process, and only when asked for: importing
 * libpg-query compiles its 1.7 MB of WASM, which a command that parses nothing
 * (`--help`, `worker`, `rollout status`) must not pay for. Call it before
 * splitStatements.
 */
export function loadParser(): Promise<void> {
  loaded ??= import('libpg-query').then(async (m) => {
    await m.loadModule();
    parseSync = m.parseSync;
  });
  return loaded;
}

type Node = Record<string, any>;

/** What the parser returns for a text that parses: plain JSON, so it can be kept and given back (`tree` below). */
export type ParseTree = { stmts?: { stmt: Node; stmt_location?: number; stmt_len?: number }[] };

/** The parser's tree of `sql`, or the error it raised; null for '' (no statements). Needs loadParser first. */
export function parseTree(sql: string): ParseTree | null {
  // libpg-query throws "Query cannot be empty" for '' (but not for white space): no statements
  if (sql === '') return null;
  if (!parseSync) throw new Error('the SQL parser is not loaded: await loadParser() first');
  return parseSync(sql) as ParseTree;
}

/**
 * The file's statements, classified. `tree`, when given, is parseTree(sql) as an
 * earlier run computed it (a cache): only a text that parsed has one.
 */
export function splitStatements(sql: string, tree?: ParseTree): { statements: Statement[] } | { error: ParseFailure } {
  let result: ParseTree;
  if (sql === '') return { statements: [] };
  try {
    result = tree ?? parseTree(sql)!;
  } catch (e: any) {
    const pos: number | undefined = e?.sqlDetails?.cursorPosition;
    // cursorPosition is a 0-based offset in characters (code points, as the server counts them),
    // not in UTF-16 units: an emoji before the error is 1 character but 2 units of a JS string
    const line = pos === undefined || pos < 0 ? 1 : lineAt(sql, Array.from(sql).slice(0, pos).join('').length);
    // psql-style data after COPY ... FROM STDIN is not SQL: report the COPY, not a syntax error in the data
    const copy = copyBefore(sql, line);
    if (copy) return copy;
    const message = String(e?.sqlDetails?.message ?? e?.message ?? e);
    // no SQL error details: the WASM module aborted or the JS stack overflowed reading its tree
    const limit = !e?.sqlDetails || /memory exhausted|stack depth limit exceeded/i.test(message);
    return { error: { message, line, ...(limit ? { limit: true } : {}) } };
  }
  const bytes = Buffer.from(sql, 'utf8');
  const statements: Statement[] = [];
  // One pass over the file: each statement decodes only its own bytes, and line
  // numbers advance from the previous statement (0x0A never occurs inside a
  // multi-byte UTF-8 sequence, so counting it in the bytes is exact).
  let cursor = 0;
  let line = 1;
  for (const [index, raw] of (result.stmts ?? []).entries()) {
    const start = raw.stmt_location ?? 0;
    const end = raw.stmt_len === undefined || raw.stmt_len === 0 ? bytes.length : start + raw.stmt_len;
    if (start < cursor) {
      // never seen (statements come in order), but counting again from the top stays correct
      cursor = 0;
      line = 1;
    }
    for (; cursor < start; cursor++) if (bytes[cursor] === 10) line++;
    const text = bytes.subarray(start, end).toString('utf8');
    const lead = firstTokenOffset(text);
    let first = line;
    for (let i = 0; i < lead; i++) if (text.charCodeAt(i) === 10) first++;
    const kind = Object.keys(raw.stmt)[0] ?? 'Unknown';
    const node = (raw.stmt[kind] ?? {}) as Node;
    const { mode, label } = classify(kind, node);
    statements.push({ index, line: first, sql: text, kind, mode, label, node });
  }
  return { statements };
}

/** The statements before line `line` when the last of them is COPY ... FROM STDIN (its data lines follow). */
function copyBefore(sql: string, line: number): { statements: Statement[] } | undefined {
  if (line <= 1 || !/\bstdin\b/i.test(sql)) return undefined;
  const prefix = sql
    .split('\n')
    .slice(0, line - 1)
    .join('\n');
  const split = splitStatements(prefix);
  if (!('statements' in split)) return undefined;
  const last = split.statements.at(-1);
  return last?.label === 'COPY FROM STDIN' ? split : undefined;
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Offset of the first character that is neither white space nor a comment. */
function firstTokenOffset(text: string): number {
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (text.startsWith('--', i)) {
      const nl = text.indexOf('\n', i);
      i = nl === -1 ? text.length : nl + 1;
    } else if (text.startsWith('/*', i)) {
      // Postgres block comments nest
      let depth = 1;
      i += 2;
      while (i < text.length && depth > 0) {
        if (text.startsWith('/*', i)) {
          depth++;
          i += 2;
        } else if (text.startsWith('*/', i)) {
          depth--;
          i += 2;
        } else i++;
      }
    } else break;
  }
  return i;
}

function hasOption(options: unknown, name: string): boolean {
  return Array.isArray(options) && options.some((o: Node) => o?.DefElem?.defname === name);
}

/** Which statements Postgres refuses inside a transaction block (see STACK-NOTES and the docs of each command). */
export function classify(kind: string, n: Node): { mode: StatementMode; label: string } {
  const tx = (label: string) => ({ mode: 'transactional' as const, label });
  const nonTx = (label: string) => ({ mode: 'non-transactional' as const, label });
  switch (kind) {
    case 'TransactionStmt': {
      const k = String(n.kind ?? '');
      if (k === 'TRANS_STMT_BEGIN' || k === 'TRANS_STMT_START') return { mode: 'transaction-control', label: 'BEGIN' };
      if (k === 'TRANS_STMT_COMMIT') return { mode: 'transaction-control', label: 'COMMIT' };
      if (k === 'TRANS_STMT_SAVEPOINT' || k === 'TRANS_STMT_RELEASE' || k === 'TRANS_STMT_ROLLBACK_TO')
        return tx(k.replace('TRANS_STMT_', '').replace('_', ' '));
      // "PREPARE" alone would read as a prepared statement (which is allowed): name the command
      return { mode: 'forbidden', label: k === 'TRANS_STMT_PREPARE' ? 'PREPARE TRANSACTION' : k.replace('TRANS_STMT_', '').replace('_', ' ') };
    }
    case 'CopyStmt':
      // FROM STDIN reads rows the client sends after the statement (psql sends the lines that follow it): a runner has none
      return n.is_from && !n.filename && !n.is_program ? { mode: 'forbidden', label: 'COPY FROM STDIN' } : tx('COPY');
    case 'IndexStmt':
      return n.concurrent ? nonTx('CREATE INDEX CONCURRENTLY') : tx('CREATE INDEX');
    case 'DropStmt':
      return n.concurrent ? nonTx('DROP INDEX CONCURRENTLY') : tx('DROP');
    case 'ReindexStmt': {
      const k = String(n.kind ?? '');
      if (hasOption(n.params, 'concurrently')) return nonTx('REINDEX CONCURRENTLY');
      if (/DATABASE|SYSTEM|SCHEMA/.test(k)) return nonTx(`REINDEX ${k.replace('REINDEX_OBJECT_', '')}`);
      return tx('REINDEX');
    }
    case 'VacuumStmt':
      return n.is_vacuumcmd ? nonTx('VACUUM') : tx('ANALYZE');
    case 'CreatedbStmt':
      return nonTx('CREATE DATABASE');
    case 'DropdbStmt':
      return nonTx('DROP DATABASE');
    case 'CreateTableSpaceStmt':
      return nonTx('CREATE TABLESPACE');
    case 'DropTableSpaceStmt':
      return nonTx('DROP TABLESPACE');
    case 'AlterSystemStmt':
      return nonTx('ALTER SYSTEM');
    case 'CreateSubscriptionStmt':
      return nonTx('CREATE SUBSCRIPTION');
    case 'DropSubscriptionStmt':
      return nonTx('DROP SUBSCRIPTION');
    case 'DiscardStmt':
      return n.target === 'DISCARD_ALL' ? nonTx('DISCARD ALL') : tx('DISCARD');
    case 'ClusterStmt':
      return n.relation ? tx('CLUSTER') : nonTx('CLUSTER (all tables)');
    case 'AlterDatabaseStmt':
      return hasOption(n.options, 'tablespace') ? nonTx('ALTER DATABASE SET TABLESPACE') : tx('ALTER DATABASE');
    case 'AlterTableStmt': {
      const detachConcurrently = (n.cmds ?? []).some(
        (c: Node) => c?.AlterTableCmd?.subtype === 'AT_DetachPartition' && c?.AlterTableCmd?.def?.PartitionCmd?.concurrent,
      );
      return detachConcurrently ? nonTx('ALTER TABLE DETACH PARTITION CONCURRENTLY') : tx('ALTER TABLE');
    }
    default:
      return tx(kind.replace(/Stmt$/, ''));
  }
}
