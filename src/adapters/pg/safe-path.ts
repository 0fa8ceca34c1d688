/**
 * Flotilla's own SQL on a migration's session runs with the system schemas
 * alone on its search_path. A function or operator resolves through the path:
 * a migration that puts its schema before pg_catalog (`SET search_path =
 * public, pg_catalog`, or ALTER DATABASE/ROLE ... SET) makes `clock_timestamp()`
 * or `=` on oids name its own objects, and even with pg_catalog first, an
 * overload whose argument types match better than the built-in's wins (a
 * `lower(name)` of its own beats `pg_catalog.lower(text)`). The engine's
 * tracking row, guards and snapshots would then run the migration's code or
 * read a catalog seen through it (docs/reliability.md V18).
 *
 * ENTER saves the session's path (what the migration's statements see) and the
 * schemas it resolves to, then sets `pg_catalog, pg_temp` for the rest of the
 * transaction (pg_temp last: a temporary table named like a catalog is not
 * found first either); LEAVE gives the migration its path back. Outside a
 * transaction block, a message's statements share one implicit transaction:
 * ENTER at its start covers the message and ends with it. The saved values:
 * `flotilla.search_path` (the path as set), `flotilla.schemas` (current_schemas(true)),
 * `flotilla.schemas_explicit` (current_schemas(false)), `flotilla.schema` ('=' and current_schema()).
 */
import type pg from 'pg';
import { inline, type Sql } from './batch.js';
import type { Queryable } from './connection.js';

export const SAFE_SEARCH_PATH = 'pg_catalog, pg_temp';

// a target list is evaluated in order: the path is read before it is changed (as engine/apply.ts JIT_OFF)
export const ENTER_SAFE_PATH = `SELECT pg_catalog.set_config('flotilla.search_path', pg_catalog.current_setting('search_path'), true),
  pg_catalog.set_config('flotilla.schemas', pg_catalog.current_schemas(true)::pg_catalog.text, true),
  pg_catalog.set_config('flotilla.schemas_explicit', pg_catalog.current_schemas(false)::pg_catalog.text, true),
  pg_catalog.set_config('flotilla.schema', '=' OPERATOR(pg_catalog.||) COALESCE(pg_catalog.current_schema()::pg_catalog.text, ''), true),
  pg_catalog.set_config('search_path', '${SAFE_SEARCH_PATH}', true)`;

export const LEAVE_SAFE_PATH = `SELECT pg_catalog.set_config('search_path', pg_catalog.current_setting('flotilla.search_path'), true)`;

/**
 * In a query run after ENTER_SAFE_PATH: the migration's current_schemas(true),
 * current_schemas(false), current_schema() (flotilla.schema is '=' and the name,
 * '=' alone for none). A query run without it (an EXPLAIN of it, a tool) reads the
 * live values instead.
 */
const saved = (name: string) => `NULLIF(pg_catalog.current_setting('flotilla.${name}', true), '')`;
export const FILE_SCHEMAS = `COALESCE(${saved('schemas')}::pg_catalog.name[], pg_catalog.current_schemas(true))`;
export const FILE_SCHEMAS_EXPLICIT = `COALESCE(${saved('schemas_explicit')}::pg_catalog.name[], pg_catalog.current_schemas(false))`;
export const FILE_SCHEMA = `CASE WHEN ${saved('schema')} IS NULL THEN pg_catalog.current_schema()::pg_catalog.text
  ELSE NULLIF(pg_catalog.substr(pg_catalog.current_setting('flotilla.schema'), 2), '') END`;

/** One query on the system schemas' path, its parameters written in (one message: ENTER, the query, LEAVE); its rows. */
export async function querySafely(db: Queryable, q: Sql): Promise<any[]> {
  const results = (await db.query(`${ENTER_SAFE_PATH}; ${inline(q)}; ${LEAVE_SAFE_PATH}`)) as unknown as pg.QueryResult[];
  return results[1]!.rows;
}
