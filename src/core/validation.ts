import { isRuleId, RULE_IDS, type RuleId } from './lint/rules.js';

/**
 * The guide's validator, as pure data: a snapshot of tables (row counts,
 * columns, constraints, indexes) and a diff of two snapshots under options.
 * Taking the snapshots is the Postgres adapter's job (adapters/pg/snapshot.ts).
 */

export interface ValidationOptions {
  /** new tables may appear (guide default: true) */
  allowTableCreation: boolean;
  /** new columns on existing tables (guide default: true) */
  allowColumnAddition: boolean;
  /** the row count of an existing table may change (guide default: false) */
  allowRowChanges: boolean;
  /** constraints of existing tables may be added, dropped or changed (guide default: false) */
  allowConstraintModification: boolean;
  /** existing tables may be dropped */
  allowTableDrop: boolean;
  /** columns of existing tables may be dropped */
  allowColumnDrop: boolean;
  /** the type or nullability of existing columns may change */
  allowColumnModification: boolean;
  /** indexes of existing tables may be dropped */
  allowIndexDrop: boolean;
  /** a constraint may be left NOT VALID (to VALIDATE in a later migration) */
  allowNotValidConstraints: boolean;
  /** the file may run code that writes through another session (dblink, a foreign table...): neither validated nor rolled back */
  allowOtherSessions: boolean;
}

export const DEFAULT_VALIDATION_OPTIONS: Readonly<ValidationOptions> = Object.freeze({
  allowTableCreation: true,
  allowColumnAddition: true,
  allowRowChanges: false,
  allowConstraintModification: false,
  allowTableDrop: false,
  allowColumnDrop: false,
  allowColumnModification: false,
  allowIndexDrop: false,
  allowNotValidConstraints: false,
  allowOtherSessions: false,
});

export const VALIDATION_OPTION_NAMES = Object.keys(DEFAULT_VALIDATION_OPTIONS) as (keyof ValidationOptions)[];

export interface ColumnSnapshot {
  type: string;
  nullable: boolean;
}
export interface ConstraintSnapshot {
  /** p, u, f, c, x (pg_constraint.contype) */
  type: string;
  definition: string;
  validated: boolean;
}
export interface IndexSnapshot {
  definition: string;
  valid: boolean;
}
export interface TableSnapshot {
  schema: string;
  name: string;
  /** exact count(*), or null where the table was not counted */
  rowCount: number | null;
  /**
   * Where "every table" is to be counted but this one was not (outside the
   * schemas counted, adapters/pg/snapshot.ts): this transaction's inserted and
   * deleted tuples (pg_stat_get_xact_*), and whether the transaction holds an
   * ACCESS EXCLUSIVE lock on it (a TRUNCATE, which those counters do not see).
   */
  written?: { inserted: number; deleted: number; exclusive: boolean };
  columns: Record<string, ColumnSnapshot>;
  constraints: Record<string, ConstraintSnapshot>;
  indexes: Record<string, IndexSnapshot>;
}
export interface Snapshot {
  /** keyed by "schema.table" */
  tables: Record<string, TableSnapshot>;
}

export interface ValidationResult {
  valid: boolean;
  issues: string[];
}

function label(t: TableSnapshot): string {
  return t.schema === 'public' ? t.name : `${t.schema}.${t.name}`;
}

export function diffSnapshots(before: Snapshot, after: Snapshot, options: Partial<ValidationOptions> = {}): ValidationResult {
  const o = { ...DEFAULT_VALIDATION_OPTIONS, ...options };
  const issues: string[] = [];
  for (const [key, b] of Object.entries(before.tables)) {
    const a = after.tables[key];
    const T = `Table ${label(b)}`;
    if (!a) {
      if (!o.allowTableDrop) issues.push(`${T}: dropped`);
      continue;
    }
    if (!o.allowRowChanges && b.rowCount !== null && a.rowCount !== null && b.rowCount !== a.rowCount) {
      issues.push(`${T}: row count changed from ${b.rowCount} to ${a.rowCount}`);
    }
    if (!o.allowRowChanges && a.written && b.written) {
      const net = a.written.inserted - a.written.deleted - (b.written.inserted - b.written.deleted);
      if (a.written.exclusive)
        issues.push(`${T}: locked ACCESS EXCLUSIVE by code the file runs (a TRUNCATE or an ALTER TABLE); its row count cannot be compared without counting it`);
      else if (net !== 0 && (b.rowCount === null || a.rowCount === null))
        // counted after (it was written), not before: what it held before is what the file's writes explain
        issues.push(
          a.rowCount !== null
            ? `${T}: row count changed from ${a.rowCount - net} to ${a.rowCount} (by the rows this file inserted and deleted, attempts rolled back to a savepoint included)`
            : `${T}: row count changed by ${net > 0 ? '+' : ''}${net} (rows inserted minus rows deleted by this file)`,
        );
    }
    for (const [col, bc] of Object.entries(b.columns)) {
      const ac = a.columns[col];
      if (!ac) {
        if (!o.allowColumnDrop) issues.push(`${T}: column ${col} removed`);
      } else if (!o.allowColumnModification) {
        if (ac.type !== bc.type) issues.push(`${T}: column ${col} type changed from ${bc.type} to ${ac.type}`);
        if (ac.nullable !== bc.nullable)
          issues.push(`${T}: column ${col} changed from ${bc.nullable ? 'NULL' : 'NOT NULL'} to ${ac.nullable ? 'NULL' : 'NOT NULL'}`);
      }
    }
    if (!o.allowColumnAddition) {
      for (const col of Object.keys(a.columns)) if (!b.columns[col]) issues.push(`${T}: column ${col} added`);
    }
    if (!o.allowConstraintModification) {
      for (const [name, bc] of Object.entries(b.constraints)) {
        const ac = a.constraints[name];
        if (!ac) issues.push(`${T}: constraint ${name} removed`);
        else if (ac.definition !== bc.definition) issues.push(`${T}: constraint ${name} changed from ${bc.definition} to ${ac.definition}`);
      }
      for (const name of Object.keys(a.constraints)) if (!b.constraints[name]) issues.push(`${T}: constraint ${name} added`);
    }
    if (!o.allowIndexDrop) {
      for (const name of Object.keys(b.indexes)) if (!a.indexes[name] && !b.constraints[name]) issues.push(`${T}: index ${name} dropped`);
    }
  }
  for (const [key, a] of Object.entries(after.tables)) {
    const b = before.tables[key];
    if (!b && !o.allowTableCreation) issues.push(`Table ${label(a)}: created`);
    // every index valid, every constraint validated (unless it already was not)
    for (const [name, ai] of Object.entries(a.indexes)) {
      if (!ai.valid && b?.indexes[name]?.valid !== false) issues.push(`Table ${label(a)}: index ${name} is INVALID`);
    }
    if (!o.allowNotValidConstraints) {
      for (const [name, ac] of Object.entries(a.constraints)) {
        if (!ac.validated && b?.constraints[name]?.validated !== false) issues.push(`Table ${label(a)}: constraint ${name} is NOT VALID`);
      }
    }
  }
  return { valid: issues.length === 0, issues };
}

export type HeaderDirective =
  | { ok: true; enabled: boolean | undefined; options: Partial<ValidationOptions>; allow: RuleId[] }
  | { ok: false; line: number; problem: string };

/**
 * Per-file options: `-- flotilla:validate allowRowChanges=true allowTableCreation=false`
 * or `-- flotilla:validate off`. Unknown names are refused (a typo must not
 * silently leave a guard on or off). `-- flotilla:allow <rule-id> ...`
 * acknowledges the file's lint findings of those rules (core/lint); unknown
 * rule ids are refused the same way.
 *
 * Like a shebang or a pragma, a header is read only in the file's leading
 * comments: `--` lines before the first SQL token (blank lines and block
 * comments may sit among them, but a line inside a block comment is never a
 * header). Anything that looks like a header elsewhere (`-- flotilla:` after
 * the first statement, inside a string, a dollar-quoted body or a block
 * comment) is refused at load time: read, it would let data switch the guard
 * off; ignored, it would leave an author believing it applies. Lines end at
 * LF, CRLF or a lone CR (Postgres ends a `--` comment at either).
 */
export function parseValidationHeader(sql: string): HeaderDirective {
  const options: Partial<ValidationOptions> = {};
  const allow: RuleId[] = [];
  let enabled: boolean | undefined;
  const lineAt = (pos: number) => (sql.slice(0, pos).match(/\r\n|\r|\n/g)?.length ?? 0) + 1;
  let p = 0;
  const headerLines = new Set<number>(); // where the leading `--` comments start: only these are read
  for (;;) {
    while (p < sql.length && /\s/.test(sql[p]!)) p++;
    if (sql.startsWith('--', p)) {
      const eol = sql.slice(p).search(/[\r\n]/);
      const end = eol < 0 ? sql.length : p + eol;
      const line = sql.slice(p, end);
      const m = /^--\s*flotilla:validate\b(.*)$/.exec(line);
      const a = /^--\s*flotilla:allow\b(.*)$/.exec(line);
      if (!m && !a && /^--\s*flotilla:/i.test(line)) {
        return {
          ok: false,
          line: lineAt(p),
          problem: `unknown header "${line.trim()}" (expected -- flotilla:validate followed by off, on, or settings, or -- flotilla:allow followed by lint rule ids)`,
        };
      }
      if (a) {
        const words = a[1]!
          .trim()
          .split(/[\s,]+/)
          .filter(Boolean);
        const bad = words.find((w) => !isRuleId(w));
        if (words.length === 0 || bad !== undefined) {
          return {
            ok: false,
            line: lineAt(p),
            problem: `${bad === undefined ? 'no lint rule named after -- flotilla:allow' : `unknown lint rule "${bad}"`} (expected one or more of ${RULE_IDS.join(', ')})`,
          };
        }
        for (const w of words) if (!allow.includes(w as RuleId)) allow.push(w as RuleId);
      }
      if (m) {
        for (const word of m[1]!
          .trim()
          .split(/[\s,]+/)
          .filter(Boolean)) {
          if (word === 'off' || word === 'on') {
            enabled = word === 'on';
            continue;
          }
          const kv = /^([A-Za-z]+)=(true|false)$/.exec(word);
          if (!kv || !VALIDATION_OPTION_NAMES.includes(kv[1] as keyof ValidationOptions)) {
            return {
              ok: false,
              line: lineAt(p),
              problem: `unknown validation setting "${word}" (expected off, on, or one of ${VALIDATION_OPTION_NAMES.join(', ')} =true|false)`,
            };
          }
          options[kv[1] as keyof ValidationOptions] = kv[2] === 'true';
        }
      }
      headerLines.add(p);
      p = end;
      continue;
    }
    if (sql.startsWith('/*', p)) {
      // block comments nest in Postgres; an unterminated one is the parser's error
      let depth = 0;
      let q = p;
      while (q < sql.length) {
        if (sql.startsWith('/*', q)) {
          depth++;
          q += 2;
        } else if (sql.startsWith('*/', q)) {
          depth--;
          q += 2;
          if (depth === 0) break;
        } else q++;
      }
      // a header line inside a block comment is not read: refused below
      p = q;
      continue;
    }
    break;
  }
  // anything else that looks like a header: after the first statement, in a string, a body or a block comment
  for (const m of sql.matchAll(/--\s*flotilla:/gi)) {
    if (headerLines.has(m.index)) continue;
    return {
      ok: false,
      line: lineAt(m.index),
      problem:
        'a "-- flotilla:" header is read only in the comment lines at the top of the file, before the first statement; ' +
        'this one is after a statement, or inside a string, a dollar-quoted body or a block comment. ' +
        'Move it to the top of the file (or remove it if it is data)',
    };
  }
  return { ok: true, enabled, options, allow };
}
