/**
 * Several statements in one round trip: Postgres's simple-query protocol runs
 * every statement of one query string in order and stops at the first error
 * (pg then reports that error and none of the results). A query written for
 * the extended protocol (`$1` parameters) joins a batch with its parameters
 * written as literals, as the server would have received them (untyped text,
 * typed by the query's own casts): `inline()`.
 *
 * A batch is a list of parts; each part says how many statements it holds, so
 * the results of the parts that return rows can be found (a part made of a
 * migration file's statements has one result per statement, and its count is
 * only relied on from the other side: results are read from both ends).
 */
import type pg from 'pg';
import type { Queryable } from './connection.js';
import { quoteLiteral } from './lock.js';

/** A query and its parameters, as given to pg's query(). */
export interface Sql {
  text: string;
  values?: readonly unknown[];
}

/** One part of a batch: its text and the number of statements (results) it holds. */
export interface Part {
  text: string;
  statements: number;
}

/** A part made of one query. */
export function part(q: Sql | string, statements = 1): Part {
  return { text: typeof q === 'string' ? q : inline(q), statements };
}

/** pg's text form of a parameter (as pg's prepareValue: arrays as '{...}', dates as ISO text), or null. */
function text(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (Array.isArray(v))
    return `{${v.map((x) => (x === null || x === undefined ? 'NULL' : `"${String(text(x)).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`)).join(',')}}`;
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/**
 * The query with `$n` replaced by literals. Booleans are written as true/false
 * (a parameter is untyped text, and so is a quoted literal: the query's casts
 * and context type both the same way). `$n` inside a string literal, a quoted
 * identifier or a comment would be replaced too: the queries given here have none.
 */
export function inline(q: Sql): string {
  const values = q.values ?? [];
  if (!values.length) return q.text;
  return q.text.replace(/\$(\d+)/g, (_, n: string) => {
    const i = Number(n) - 1;
    if (i >= values.length) throw new Error(`batch: query has $${n} but only ${values.length} values`);
    const v = values[i];
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    const t = text(v);
    return t === null ? 'NULL' : quoteLiteral(t);
  });
}

/** The results of a batch: by part, counted from the start (`head`) or from the end (`tail`). */
export class BatchResult {
  constructor(
    private readonly results: pg.QueryResult[],
    private readonly parts: Part[],
  ) {}

  /** rows of part `i` (its only or last statement), counting parts from the start; every part before it must have an exact count */
  head(i: number): any[] {
    const at = this.parts.slice(0, i + 1).reduce((n, p) => n + p.statements, 0) - 1;
    return this.results[at]?.rows ?? [];
  }

  /** rows of the part `k` places from the end (1 = the last part); every part after it must have an exact count */
  tail(k: number): any[] {
    const after = this.parts.slice(this.parts.length - k + 1).reduce((n, p) => n + p.statements, 0);
    return this.results[this.results.length - 1 - after]?.rows ?? [];
  }
}

/** Send the parts as one query string: one round trip. Rejects with the first error (nothing after it ran). */
export async function runBatch(db: Queryable, parts: Part[]): Promise<BatchResult> {
  const r = (await db.query(parts.map((p) => p.text).join('\n;\n'))) as unknown as pg.QueryResult | pg.QueryResult[];
  return new BatchResult(Array.isArray(r) ? r : [r], parts);
}
