/** A `${VAR}` placeholder set to "" is refused like an unset one: libpq would fill in defaults (another database). */
import { describe, expect, it } from 'vitest';
import { MissingEnvVarError, resolveDatabaseUrl } from '../../src/core/tenants.js';

describe('resolveDatabaseUrl', () => {
  it('refuses an empty variable, naming it and the tenant (the database would default to the user name)', () => {
    expect(() => resolveDatabaseUrl('postgres://app@db-1:5432/${TDB}', { TDB: '' }, 'acme')).toThrow(MissingEnvVarError);
    expect(() => resolveDatabaseUrl('postgres://app@${HOST}:5432/acme', { HOST: '' }, 'acme')).toThrow(/HOST is set but empty \(needed by tenant "acme"\)/);
  });
  it('still refuses an unset one and substitutes a set one', () => {
    expect(() => resolveDatabaseUrl('postgres://app@db/${TDB}', {}, 'acme')).toThrow(/TDB is not set/);
    expect(resolveDatabaseUrl('postgres://app:${PW}@db/acme', { PW: 'p@ss' })).toBe('postgres://app:p%40ss@db/acme');
  });
});

describe('a JSON tenants file with a key given twice', () => {
  it('is refused like the same YAML (JSON.parse would keep the second databaseUrl silently)', async () => {
    const { parseTenantsFile } = await import('../../src/core/tenants.js');
    const json = '{"tenants":[{"id":"a","databaseUrl":"postgres://db-1/prod","databaseUrl":"postgres://db-1/staging"}]}';
    expect(() => parseTenantsFile(json, 'json', 't.json')).toThrow(/a key given twice in one object at line 1, column \d+/);
    expect(parseTenantsFile('{"tenants":[{"id":"a","databaseUrl":"postgres://db-1/prod"}]}', 'json', 't.json').map((t) => t.databaseUrl)).toEqual([
      'postgres://db-1/prod',
    ]);
  });
});
