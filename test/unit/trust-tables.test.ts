/**
 * Issue 9, section 6, the pure decisions: which tracking tables are ours, how
 * a target's refusal is explained (and whether a retry can help), which COPY is
 * refused, which tenant URLs hold a literal password.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { explainPgError } from '../../src/adapters/pg/sqlstate.js';
import { ledgerShape } from '../../src/core/ledger-shape.js';
import { loadParser, splitStatements, type Statement } from '../../src/core/statements.js';
import { tenantsWithLiteralPassword } from '../../src/core/tenants.js';

describe('ledgerShape', () => {
  it("Flotilla's and the guide's tables are ours; the guide's lacks four columns", () => {
    expect(ledgerShape(['name', 'checksum', 'applied_at', 'duration_ms', 'applied_by'])).toEqual({ ours: true, missing: [] });
    expect(ledgerShape(['id', 'name', 'executed_at'])).toMatchObject({
      ours: true,
      missing: [{ column: 'checksum' }, { column: 'applied_at' }, { column: 'duration_ms' }, { column: 'applied_by' }],
    });
    expect(ledgerShape(['id', 'name', 'executed_at', 'checksum', 'applied_at', 'duration_ms', 'applied_by'])).toEqual({ ours: true, missing: [] });
  });

  it("other tools' tables are not, whatever their column order, and the tool is named when known", () => {
    expect(ledgerShape(['id', 'timestamp', 'name'])).toEqual({ ours: false, tool: 'TypeORM' });
    expect(ledgerShape(['id', 'migration', 'batch'])).toEqual({ ours: false, tool: 'Laravel' });
    expect(ledgerShape(['migration_time', 'batch', 'name', 'id'])).toEqual({ ours: false, tool: 'Knex' });
    expect(ledgerShape(['id', 'name', 'run_on'])).toEqual({ ours: false, tool: 'node-pg-migrate' });
    expect(ledgerShape(['version', 'dirty'])).toEqual({ ours: false, tool: 'golang-migrate' });
    // Flotilla's columns plus one more: not exactly ours
    expect(ledgerShape(['name', 'checksum', 'applied_at', 'duration_ms', 'applied_by', 'batch'])).toMatchObject({ ours: false });
    expect(ledgerShape([])).toMatchObject({ ours: false });
  });
});

describe('explainPgError', () => {
  const doing = { doing: 'creating the tracking table public.migrations', role: 'app', database: 'shop' };

  it('a standby is transient (a failover may promote it), a read-only database is input; each says which', () => {
    const ro = { code: '25006', message: 'cannot execute CREATE TABLE in a read-only transaction' };
    const standby = explainPgError(ro, { ...doing, standby: true, readOnlyDefault: true })!;
    expect(standby).toMatchObject({ reason: 'standby', kind: 'transient' });
    expect(standby.summary).toContain('standby');
    expect(standby.hint).toContain('primary');
    const readOnly = explainPgError(ro, { ...doing, standby: false, readOnlyDefault: true })!;
    expect(readOnly).toMatchObject({ reason: 'read_only', kind: 'input' });
    expect(readOnly.hint).toContain('ALTER DATABASE shop SET default_transaction_read_only = off');
    expect(explainPgError(ro, { ...doing, standby: false, readOnlyDefault: false })).toMatchObject({ reason: 'read_only', kind: 'migration' });
  });

  it('privileges: the GRANT to run names the object and the role, quoted when needed', () => {
    expect(explainPgError({ code: '42501', message: 'permission denied for schema public' }, doing)!.hint).toContain(
      'GRANT USAGE, CREATE ON SCHEMA public TO app;',
    );
    expect(explainPgError({ code: '42501', message: 'permission denied for database shop' }, doing)!.hint).toContain('GRANT CREATE ON DATABASE shop TO app;');
    expect(explainPgError({ code: '42501', message: 'permission denied for schema Tenant_A' }, { ...doing, role: 'App' })!.hint).toContain(
      'GRANT USAGE, CREATE ON SCHEMA "Tenant_A" TO "App";',
    );
    expect(explainPgError({ code: '42501', message: 'must be owner of table accounts' }, doing)!.hint).toContain('owner of table accounts');
    expect(explainPgError({ code: '42501', message: 'permission denied for schema public' }, doing)).toMatchObject({ kind: 'input', reason: 'privilege' });
  });

  it('terminated sessions and lost connections are transient; a trigger refusing is input', () => {
    expect(explainPgError({ code: '57P01', message: 'terminating connection due to administrator command' }, doing)).toMatchObject({
      reason: 'terminated',
      kind: 'transient',
    });
    expect(explainPgError({ code: '57P03', message: 'the database system is starting up' }, doing)).toMatchObject({ reason: 'terminated', kind: 'transient' });
    expect(explainPgError({ code: '08006', message: 'connection failure' }, doing)).toMatchObject({ reason: 'connection', kind: 'transient' });
    expect(explainPgError(new Error('Connection terminated unexpectedly'), doing)).toMatchObject({ reason: 'connection', kind: 'transient' });
    expect(explainPgError({ code: 'P0001', message: 'no DDL on Fridays' }, doing)).toMatchObject({ reason: 'refused', kind: 'input' });
  });

  it('errors that are defects stay unexplained (they are bugs to report)', () => {
    expect(explainPgError({ code: '42601', message: 'syntax error at or near "SELEC"' }, doing)).toBeUndefined();
    expect(explainPgError({ code: '42703', message: 'column "x" does not exist' }, doing)).toBeUndefined();
    expect(explainPgError(new TypeError("Cannot read properties of undefined (reading 'map')"), doing)).toBeUndefined();
  });
});

describe('COPY in a migration', () => {
  beforeAll(() => loadParser());
  const stmts = (sql: string): Statement[] => {
    const r = splitStatements(sql);
    if (!('statements' in r)) throw new Error(r.error.message);
    return r.statements;
  };

  it('FROM STDIN is forbidden, with or without the data lines psql would send', () => {
    expect(stmts('COPY t FROM STDIN;').map((s) => [s.mode, s.label])).toEqual([['forbidden', 'COPY FROM STDIN']]);
    expect(stmts('COPY t (a, b) FROM stdin WITH (FORMAT csv);').at(-1)!.mode).toBe('forbidden');
    const dump = stmts('CREATE TABLE t (a int, b text);\nCOPY t (a, b) FROM stdin;\n1\tone\n2\ttwo\n\\.\n');
    expect(dump.map((s) => s.label)).toEqual(['Create', 'COPY FROM STDIN']);
    expect(dump[1]!.line).toBe(2);
  });

  it('COPY from a file, from a program, or TO STDOUT is not', () => {
    for (const sql of ["COPY t FROM '/data/t.csv';", "COPY t FROM PROGRAM 'cat /data/t.csv';", 'COPY t TO STDOUT;']) {
      expect(stmts(sql)[0]!.mode, sql).toBe('transactional');
    }
  });

  it('a real syntax error after a COPY FROM STDIN elsewhere is still a syntax error', () => {
    const r = splitStatements("COPY t FROM '/x';\nSELEC 1;");
    expect('error' in r).toBe(true);
  });
});

describe('tenantsWithLiteralPassword', () => {
  const t = (id: string, databaseUrl: string) => ({ id, databaseUrl, tags: [] });
  it('finds literal passwords in the userinfo or as password=, never ${VAR} placeholders', () => {
    expect(
      tenantsWithLiteralPassword([
        t('a', 'postgres://app:s3cret@db:5432/a'),
        t('b', 'postgres://app:${B_PW}@db:5432/b'),
        t('c', 'postgres://app@db:5432/c'),
        t('d', 'postgres://app@db:5432/d?password=hunter2&sslmode=require'),
        t('e', 'postgres://app@db:5432/e?password=${E_PW}'),
        t('f', 'postgres://app:pre${F_PW}@db/f'),
        t('g', 'postgres://app:p@ss/w0rd@db/g'),
        t('h', 'postgres://db/h'),
      ]),
    ).toEqual(['a', 'd', 'f', 'g']);
  });
});
