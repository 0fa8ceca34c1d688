import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, parseDuration, requireDatabaseUrl } from '../../src/config.js';
import { ConfigError } from '../../src/core/errors.js';
import {
  DEFAULT_VALIDATION_OPTIONS,
  diffSnapshots,
  VALIDATION_OPTION_NAMES,
  type Snapshot,
  type TableSnapshot,
  type ValidationOptions,
} from '../../src/core/validation.js';

// ---------------------------------------------------------------------------------------------
// Snapshots as the Postgres adapter produces them.

function users(over: Partial<TableSnapshot> = {}): TableSnapshot {
  return {
    schema: 'public',
    name: 'users',
    rowCount: 100,
    columns: {
      id: { type: 'integer', nullable: false },
      email: { type: 'character varying(255)', nullable: false },
      name: { type: 'character varying(255)', nullable: true },
    },
    constraints: {
      users_pkey: { type: 'p', definition: 'PRIMARY KEY (id)', validated: true },
      users_email_key: { type: 'u', definition: 'UNIQUE (email)', validated: true },
    },
    indexes: {
      users_pkey: { definition: 'CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)', valid: true },
      users_email_key: { definition: 'CREATE UNIQUE INDEX users_email_key ON public.users USING btree (email)', valid: true },
      idx_users_name: { definition: 'CREATE INDEX idx_users_name ON public.users USING btree (name)', valid: true },
    },
    ...over,
  };
}

function snap(...tables: TableSnapshot[]): Snapshot {
  return { tables: Object.fromEntries(tables.map((t) => [`${t.schema}.${t.name}`, t])) };
}

/** A deep copy of `users()` changed by `edit`. */
function changed(edit: (t: TableSnapshot) => void, base: TableSnapshot = users()): TableSnapshot {
  const t = structuredClone(base);
  edit(t);
  return t;
}

const before = snap(users());

function issues(after: Snapshot, options: Partial<ValidationOptions> = {}, b: Snapshot = before): string[] {
  const r = diffSnapshots(b, after, options);
  expect(r.valid).toBe(r.issues.length === 0);
  return r.issues;
}

describe('diffSnapshots', () => {
  it('no change, no issue', () => {
    expect(diffSnapshots(before, snap(users()))).toEqual({ valid: true, issues: [] });
  });

  it("the guide's defaults", () => {
    expect(DEFAULT_VALIDATION_OPTIONS).toMatchObject({
      allowTableCreation: true,
      allowColumnAddition: true,
      allowRowChanges: false,
      allowConstraintModification: false,
    });
  });

  it("row count: the guide's exact message, and allowRowChanges turns it off", () => {
    const after = snap(users({ rowCount: 95 }));
    expect(issues(after)).toEqual(['Table users: row count changed from 100 to 95']);
    expect(issues(after, { allowRowChanges: true })).toEqual([]);
    // growth counts too
    expect(issues(snap(users({ rowCount: 101 })))).toEqual(['Table users: row count changed from 100 to 101']);
  });

  it('row count: a table that was not counted is not compared', () => {
    expect(issues(snap(users({ rowCount: null })))).toEqual([]);
    expect(issues(snap(users({ rowCount: 5 })), {}, snap(users({ rowCount: null })))).toEqual([]);
  });

  it('names tables outside public with their schema', () => {
    const b = snap(users({ schema: 'tenant_a' }));
    expect(issues(snap(users({ schema: 'tenant_a', rowCount: 95 })), {}, b)).toEqual(['Table tenant_a.users: row count changed from 100 to 95']);
  });

  it('table created: allowed by default, refused with allowTableCreation=false', () => {
    const orders: TableSnapshot = {
      schema: 'public',
      name: 'orders',
      rowCount: 0,
      columns: { id: { type: 'integer', nullable: false } },
      constraints: {},
      indexes: {},
    };
    const after = snap(users(), orders);
    expect(issues(after)).toEqual([]);
    expect(issues(after, { allowTableCreation: false })).toEqual(['Table orders: created']);
  });

  it('table dropped: refused, allowTableDrop turns it off', () => {
    expect(issues(snap())).toEqual(['Table users: dropped']);
    expect(issues(snap(), { allowTableDrop: true })).toEqual([]);
  });

  it('column added: allowed by default, refused with allowColumnAddition=false', () => {
    const after = snap(changed((t) => (t.columns.phone = { type: 'character varying(20)', nullable: true })));
    expect(issues(after)).toEqual([]);
    expect(issues(after, { allowColumnAddition: false })).toEqual(['Table users: column phone added']);
  });

  it('column removed: refused, allowColumnDrop turns it off', () => {
    const after = snap(changed((t) => delete t.columns.name));
    expect(issues(after)).toEqual(['Table users: column name removed']);
    expect(issues(after, { allowColumnDrop: true })).toEqual([]);
  });

  it('column type or nullability changed: refused, allowColumnModification turns it off', () => {
    const after = snap(
      changed((t) => {
        t.columns.name = { type: 'text', nullable: false };
      }),
    );
    expect(issues(after)).toEqual([
      'Table users: column name type changed from character varying(255) to text',
      'Table users: column name changed from NULL to NOT NULL',
    ]);
    expect(issues(after, { allowColumnModification: true })).toEqual([]);
  });

  it('constraint added, removed or changed: refused, allowConstraintModification turns it off', () => {
    const added = snap(changed((t) => (t.constraints.users_name_check = { type: 'c', definition: 'CHECK ((name IS NOT NULL))', validated: true })));
    expect(issues(added)).toEqual(['Table users: constraint users_name_check added']);
    expect(issues(added, { allowConstraintModification: true })).toEqual([]);

    const removed = snap(
      changed((t) => {
        delete t.constraints.users_email_key;
        delete t.indexes.users_email_key;
      }),
    );
    // the constraint's own index is reported once, as the constraint
    expect(issues(removed)).toEqual(['Table users: constraint users_email_key removed']);
    expect(issues(removed, { allowConstraintModification: true })).toEqual([]);

    const modified = snap(changed((t) => (t.constraints.users_pkey = { type: 'p', definition: 'PRIMARY KEY (id, email)', validated: true })));
    expect(issues(modified)).toEqual(['Table users: constraint users_pkey changed from PRIMARY KEY (id) to PRIMARY KEY (id, email)']);
    expect(issues(modified, { allowConstraintModification: true })).toEqual([]);
  });

  it('index dropped: refused, allowIndexDrop turns it off', () => {
    const after = snap(changed((t) => delete t.indexes.idx_users_name));
    expect(issues(after)).toEqual(['Table users: index idx_users_name dropped']);
    expect(issues(after, { allowIndexDrop: true })).toEqual([]);
  });

  it('an INVALID index is always an issue, unless it was already INVALID before', () => {
    const invalid = changed(
      (t) =>
        (t.indexes.idx_users_email_lower = {
          definition: 'CREATE UNIQUE INDEX idx_users_email_lower ON public.users USING btree (lower(email))',
          valid: false,
        }),
    );
    expect(issues(snap(invalid))).toEqual(['Table users: index idx_users_email_lower is INVALID']);
    const allowAll = Object.fromEntries(VALIDATION_OPTION_NAMES.map((n) => [n, true]));
    expect(issues(snap(invalid), allowAll)).toEqual(['Table users: index idx_users_email_lower is INVALID']);
    expect(issues(snap(invalid), {}, snap(invalid))).toEqual([]);
    // on a new table too
    const orders: TableSnapshot = {
      schema: 'public',
      name: 'orders',
      rowCount: 0,
      columns: {},
      constraints: {},
      indexes: { idx_o: { definition: 'x', valid: false } },
    };
    expect(issues(snap(users(), orders))).toEqual(['Table orders: index idx_o is INVALID']);
  });

  it('a NOT VALID constraint: refused, allowNotValidConstraints turns it off', () => {
    const after = snap(
      changed((t) => (t.constraints.users_email_check = { type: 'c', definition: "CHECK (((email)::text ~~ '%@%'::text)) NOT VALID", validated: false })),
    );
    expect(issues(after, { allowConstraintModification: true })).toEqual(['Table users: constraint users_email_check is NOT VALID']);
    expect(issues(after, { allowConstraintModification: true, allowNotValidConstraints: true })).toEqual([]);
    expect(issues(after)).toEqual(['Table users: constraint users_email_check added', 'Table users: constraint users_email_check is NOT VALID']);
    // already NOT VALID before: not this migration's doing
    expect(issues(after, {}, after)).toEqual([]);
  });

  it('reports every issue at once', () => {
    const after = snap(
      changed((t) => {
        t.rowCount = 0;
        delete t.columns.name;
        delete t.indexes.idx_users_name;
      }),
    );
    expect(issues(after)).toEqual([
      'Table users: row count changed from 100 to 0',
      'Table users: column name removed',
      'Table users: index idx_users_name dropped',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// Configuration: validated like any other untrusted input.

const tmp = mkdtempSync(join(tmpdir(), 'flotilla-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function configFile(content: unknown): string {
  const path = join(tmp, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('defaults', () => {
    const c = loadConfig({ flags: {}, env: {} });
    expect(c).toMatchObject({
      dir: './migrations',
      trackingTable: 'migrations',
      lockTimeout: 10_000,
      statementTimeout: 3_600_000,
      lockWaitTimeout: 300_000,
      validate: true,
      validation: {},
      logLevel: 'warn',
    });
    expect(c.databaseUrl).toBeUndefined();
    expect(c.schema).toBeUndefined();
    expect(() => requireDatabaseUrl(c)).toThrow(ConfigError);
  });

  it('reads durations: 500ms, 10s, 5min, 1h, bare milliseconds', () => {
    const c = loadConfig({ flags: { lockTimeout: '500ms', statementTimeout: '1h', lockWaitTimeout: '5min' }, env: {} });
    expect([c.lockTimeout, c.statementTimeout, c.lockWaitTimeout]).toEqual([500, 3_600_000, 300_000]);
    expect(loadConfig({ flags: { lockTimeout: '10s' }, env: {} }).lockTimeout).toBe(10_000);
    expect(loadConfig({ flags: { lockTimeout: '250' }, env: {} }).lockTimeout).toBe(250);
    expect(loadConfig({ flags: {}, env: { FLOTILLA_LOCK_TIMEOUT: '2s' } }).lockTimeout).toBe(2000);
    expect(loadConfig({ flags: {}, env: {}, configFile: configFile({ lockTimeout: 1500 }) }).lockTimeout).toBe(1500);
    expect(parseDuration('1.5s')).toBe(1500);
    for (const bad of ['abc', '10 parsecs', '-1s', '', 's', 'NaN']) expect(parseDuration(bad)).toBeUndefined();
  });

  it('flags beat the environment, which beats the config file', () => {
    const file = configFile({ lockTimeout: '1s', schema: 'from_file', trackingTable: 'from_file' });
    const c = loadConfig({ flags: { lockTimeout: '3s' }, env: { FLOTILLA_LOCK_TIMEOUT: '2s', FLOTILLA_SCHEMA: 'from_env' }, configFile: file });
    expect(c.lockTimeout).toBe(3000);
    expect(c.schema).toBe('from_env');
    expect(c.trackingTable).toBe('from_file');
  });

  it('reports every bad setting at once, naming where each came from', () => {
    const e = configError(() =>
      loadConfig({
        flags: { lockTimeout: 'abc', schema: 'bad-name' },
        env: { FLOTILLA_STATEMENT_TIMEOUT: 'forever', FLOTILLA_TRACKING_TABLE: '1migrations', LOG_LEVEL: 'loud' },
      }),
    );
    expect(e.problems).toHaveLength(5);
    const text = e.problems.join('\n');
    expect(text).toContain('--lock-timeout: "abc" is not a duration');
    expect(text).toContain('FLOTILLA_STATEMENT_TIMEOUT: "forever" is not a duration');
    expect(text).toMatch(/--schema: must be a plain identifier/);
    expect(text).toMatch(/FLOTILLA_TRACKING_TABLE: must be a plain identifier/);
    expect(text).toMatch(/LOG_LEVEL: /);
    expect(e.kind).toBe('input');
  });

  it('refuses a schema name that would be SQL', () => {
    const e = configError(() => loadConfig({ flags: { schema: 'x"; DROP TABLE users; --' }, env: {} }));
    expect(e.problems).toHaveLength(1);
    expect(e.problems[0]).toMatch(/^--schema: must be a plain identifier/);
    for (const bad of ['public.users', 'Ünïcode', 'a b', '', 'x'.repeat(64)]) {
      expect(() => loadConfig({ flags: { schema: bad }, env: {} })).toThrow(ConfigError);
    }
    expect(loadConfig({ flags: { schema: 'tenant_a' }, env: {} }).schema).toBe('tenant_a');
    expect(loadConfig({ flags: { schema: `_${'x'.repeat(62)}` }, env: {} }).schema).toHaveLength(63);
  });

  it('refuses unknown keys in a config file, and in its validation section', () => {
    const e = configError(() => loadConfig({ flags: {}, env: {}, configFile: configFile({ lockTimeot: '1s', trackingTable: 'migrations' }) }));
    expect(e.message).toContain('unknown setting(s) lockTimeot');
    const v = configError(() => loadConfig({ flags: {}, env: {}, configFile: configFile({ validation: { allowRowChange: true } }) }));
    expect(v.message).toContain('allowRowChange');
  });

  it('reads validation options from the file and flags', () => {
    const c = loadConfig({
      flags: { validation: { allowIndexDrop: true } },
      env: {},
      configFile: configFile({ validate: true, validation: { allowRowChanges: true } }),
    });
    expect(c.validation).toEqual({ allowRowChanges: true, allowIndexDrop: true });
  });

  it('refuses a missing or broken config file', () => {
    expect(configError(() => loadConfig({ flags: {}, env: {}, configFile: join(tmp, 'nope.json') })).message).toContain('file not found');
    expect(configError(() => loadConfig({ flags: {}, env: {}, configFile: configFile('[1, 2]') })).message).toContain('must hold a JSON object');
    expect(() => loadConfig({ flags: {}, env: {}, configFile: configFile('{ not json') })).toThrow(ConfigError);
  });

  it('never puts a password in the error for a bad database URL', () => {
    const secret = 's3cretPW';
    const bad = [
      `mysql://app:${secret}@db.example.com/acme`,
      `postgres://app:${secret}@db.example.com:99999/acme`,
      `postgres://app:${secret}@[bad/acme`,
      `app:${secret}@db.example.com/acme`,
    ];
    for (const url of bad) {
      for (const input of [
        { flags: { databaseUrl: url }, env: {} },
        { flags: {}, env: { DATABASE_URL: url } },
        { flags: {}, env: {}, configFile: configFile({ databaseUrl: url }) },
      ]) {
        const e = configError(() => loadConfig(input));
        expect(e.message).toMatch(/database-url|DATABASE_URL|databaseUrl/);
        expect(e.message).not.toContain(secret);
        expect(JSON.stringify(e.toJSON())).not.toContain(secret);
        expect(e.hint).not.toContain(secret);
      }
    }
    // nor when the file holding it is not valid JSON
    const broken = configFile(`{ "databaseUrl": "postgres://app:${secret}@db/acme", }`);
    expect(configError(() => loadConfig({ flags: {}, env: {}, configFile: broken })).message).not.toContain(secret);
  });

  it('accepts postgres:// and postgresql:// URLs, with ${VAR} placeholders', () => {
    expect(loadConfig({ flags: {}, env: { DATABASE_URL: 'postgresql://app:pw@db:5432/acme' } }).databaseUrl).toBe('postgresql://app:pw@db:5432/acme');
    expect(loadConfig({ flags: { databaseUrl: 'postgres://app:${PGPASSWORD}@db/acme' }, env: {} }).databaseUrl).toBe('postgres://app:${PGPASSWORD}@db/acme');
  });
});
