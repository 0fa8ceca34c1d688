/**
 * What the parse tree must report so that no route to a row change escapes
 * the catalog check (core/effects.ts; issue 9 §4, promise 8).
 */
import { describe, expect, it } from 'vitest';
import { changesAnyRows, type RowEffects } from '../../src/core/effects.js';
import { buildMigrationSet } from '../../src/core/migration-set.js';

async function fx(sql: string): Promise<RowEffects> {
  const set = await buildMigrationSet([{ name: '001_x.sql', sql }]);
  return set.migrations[0]!.effects;
}

describe('row effects: name resolution', () => {
  it('literal search_path changes are followed (SET, SET LOCAL, SET SCHEMA, set_config)', async () => {
    expect((await fx(`SET search_path TO archive, "$user"; SET LOCAL search_path = b; SET SCHEMA 'c';`)).searchPath).toEqual({
      schemas: ['archive', '$user', 'b', 'c'],
      unknown: false,
    });
    expect((await fx(`SELECT set_config('search_path', 'Archive, "Mixed"', true);`)).searchPath).toEqual({ schemas: ['archive', 'Mixed'], unknown: false });
  });

  it('changes the analysis cannot read search every schema', async () => {
    for (const sql of [
      `RESET search_path;`,
      `SET search_path TO DEFAULT;`,
      `RESET ALL;`,
      `SET ROLE app;`,
      `SET SESSION AUTHORIZATION app;`,
      `SELECT set_config('search_' || 'path', 'a', true);`,
      `SELECT set_config(current_setting('x.name'), 'a', true);`,
      `SELECT pg_catalog.set_config('search_path', current_setting('x.path'), true);`,
    ]) {
      expect((await fx(sql)).searchPath?.unknown, sql).toBe(true);
    }
  });

  it('harmless settings change nothing', async () => {
    const e = await fx(`SET statement_timeout = '5min'; SET lock_timeout TO 1000; SELECT set_config('application_name', 'x', true); CREATE INDEX ON t (x);`);
    expect(e.searchPath).toEqual({ schemas: [], unknown: false });
    expect(changesAnyRows(e)).toBe(false);
  });
});

describe('row effects: every name user code can hide behind', () => {
  it('operators, explicit and implied', async () => {
    const e = await fx(
      `SELECT 1 === 2 WHERE a BETWEEN 1 AND 2 AND b IN (SELECT 1) AND c = ANY (SELECT 1) AND d LIKE 'x' AND e OPERATOR(s.@@) f AND g OPERATOR(pg_catalog.+) h ORDER BY a USING <<<;`,
    );
    expect(e.operators).toEqual(['<<<', '<=', '=', '===', '>=', '@@', '~~']);
  });

  it('types (casts, column types, domains), operator classes, exclusion operators', async () => {
    const e = await fx(`SELECT 1::checked, CAST(2 AS s.other), 3::pg_catalog.int4;
      ALTER TABLE t ADD COLUMN m mood; CREATE INDEX ON t USING gin (name gin_trgm_ops);
      CREATE TABLE r (p int, EXCLUDE USING gist (p WITH &&&));`);
    expect(e.types).toEqual(['checked', 'mood', 'other']); // pg_catalog.int4 is a built-in by definition
    expect(e.opclasses).toEqual(['gin_trgm_ops']);
    expect(e.operators).toContain('&&&');
  });

  it('every relation named, read or written', async () => {
    const e = await fx(`CREATE TABLE copy AS SELECT * FROM v JOIN s.w USING (id); REFRESH MATERIALIZED VIEW m; ANALYZE a; REINDEX INDEX i;`);
    expect(e.relations!.map((r) => (r.schema ? `${r.schema}.${r.name}` : r.name)).sort()).toEqual(['a', 'copy', 'i', 'm', 's.w', 'v']);
    expect(e.writes).toEqual([]);
  });

  it('built-ins that run SQL text or read a relation named at run time, and EXECUTE anywhere, mean every table', async () => {
    for (const sql of [
      `SELECT query_to_xml('SELECT purge()', true, false, '');`,
      `SELECT pg_catalog.table_to_xml('purging', true, false, '');`,
      `SELECT * FROM ts_stat('SELECT purge()::tsvector');`,
      `CREATE TABLE x AS EXECUTE p;`,
      `ANALYZE;`,
      `CLUSTER;`,
    ]) {
      expect(changesAnyRows(await fx(sql)), sql).toBe(true);
    }
  });

  it('an operator, cast or operator class defined by the file makes its later expressions count every table', async () => {
    expect(changesAnyRows(await fx(`CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = f); SELECT 1 === 2;`))).toBe(true);
    expect(changesAnyRows(await fx(`CREATE CAST (int AS mood) WITH FUNCTION f(int); UPDATE t SET m = 1;`))).toBe(true);
    expect(changesAnyRows(await fx(`CREATE TYPE r AS RANGE (subtype = int, subtype_diff = f); CREATE INDEX ON t USING gist (v);`))).toBe(true);
    // defining alone, or defining after the statements that run, runs nothing
    expect(
      changesAnyRows(
        await fx(`CREATE INDEX ON t (x); CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = f); COMMENT ON OPERATOR === (int, int) IS 'x';`),
      ),
    ).toBe(false);
  });

  it('a set frozen by an older version (no operators, types, relations or search_path recorded) counts every table', async () => {
    const e = await fx(`CREATE INDEX ON t (x);`);
    expect(changesAnyRows(e)).toBe(false);
    const { operators: _o, opclasses: _c, types: _t, relations: _r, searchPath: _s, ...old } = e;
    expect(changesAnyRows(old)).toBe(true);
  });
});
