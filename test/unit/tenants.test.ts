import { describe, expect, it } from 'vitest';
import { redactSecrets, redactUrl } from '../../src/core/redact.js';
import {
  MissingEnvVarError,
  TenantSelectionError,
  SelectorError,
  EmptySelectionError,
  TenantsFileError,
  parseTenantRows,
  parseTenantsFile,
  resolveDatabaseUrl,
  selectTenants,
  serverKey,
  type Tenant,
} from '../../src/core/tenants.js';

const VALID_YAML = `
tenants:
  - id: acme
    databaseUrl: postgres://app:\${ACME_PW}@db-1:5432/acme
    tags: [eu, canary]
    window: { cron: "0 2 * * SUN", durationMinutes: 120, tz: Europe/Paris }
  - id: beta
    databaseUrl: postgresql://app:\${BETA_PW}@db-2/beta
    schema: tenant_beta
`;

/** Runs `fn`, which must throw a TenantsFileError, and returns it. */
function fileError(fn: () => unknown): TenantsFileError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TenantsFileError);
    return err as TenantsFileError;
  }
  throw new Error('expected a TenantsFileError, nothing was thrown');
}

const yamlError = (text: string) => fileError(() => parseTenantsFile(text, 'yaml', 'tenants.yaml'));

/** One tenant entry in YAML, with `extra` lines appended to it. */
function oneTenant(extra: string, id = 'acme', url = 'postgres://app:${PW}@db-1/acme'): string {
  return `tenants:\n  - id: ${id}\n    databaseUrl: ${url}\n${extra}`;
}

describe('parseTenantsFile', () => {
  it('parses a valid YAML file, keeping placeholders unresolved and defaulting tags and tz', () => {
    const tenants = parseTenantsFile(VALID_YAML, 'yaml', 'tenants.yaml');
    expect(tenants).toEqual<Tenant[]>([
      {
        id: 'acme',
        databaseUrl: 'postgres://app:${ACME_PW}@db-1:5432/acme',
        tags: ['eu', 'canary'],
        window: { cron: '0 2 * * SUN', durationMinutes: 120, tz: 'Europe/Paris' },
      },
      { id: 'beta', databaseUrl: 'postgresql://app:${BETA_PW}@db-2/beta', schema: 'tenant_beta', tags: [] },
    ]);
  });

  it('parses the same registry from JSON', () => {
    const json = JSON.stringify({
      tenants: [{ id: 'acme', databaseUrl: 'postgres://app:${ACME_PW}@db-1:5432/acme', tags: ['eu'], window: { cron: '0 2 * * *', durationMinutes: 60 } }],
    });
    const [acme] = parseTenantsFile(json, 'json', 'tenants.json');
    expect(acme).toEqual({
      id: 'acme',
      databaseUrl: 'postgres://app:${ACME_PW}@db-1:5432/acme',
      tags: ['eu'],
      window: { cron: '0 2 * * *', durationMinutes: 60, tz: 'UTC' },
    });
  });

  it('accepts a bare top-level list', () => {
    const yaml = '- id: a1\n  databaseUrl: postgres://db/a1\n- id: a2\n  databaseUrl: postgres://db/a2\n';
    expect(parseTenantsFile(yaml, 'yaml', 't.yaml').map((t) => t.id)).toEqual(['a1', 'a2']);
    const json = '[{"id":"a1","databaseUrl":"postgres://db/a1"}]';
    expect(parseTenantsFile(json, 'json', 't.json').map((t) => t.id)).toEqual(['a1']);
  });

  it('names the file and counts the problems on the first line, with a hint and the data', () => {
    const err = yamlError(oneTenant('    colour: blue\n', 'acme', 'mysql://app@db/acme'));
    expect(err.source).toBe('tenants.yaml');
    expect(err.problems).toHaveLength(2);
    expect(err.message.split('\n')[0]).toBe('Invalid tenants file tenants.yaml: 2 problems');
    expect(err.message.split('\n').slice(1)).toEqual(err.problems.map((p) => `  ${p}`));
    expect(err.hint).toBe('Fix the entries above and run the command again; nothing was changed.');
    expect(err.kind).toBe('input');
  });

  it('refuses a duplicate id, pointing at the first one', () => {
    const yaml = [0, 1, 2].map((i) => `  - id: ${i === 2 ? 'acme' : `t${i}`}\n    databaseUrl: postgres://db/x\n`).join('');
    const err = yamlError(`tenants:\n  - id: acme\n    databaseUrl: postgres://db/a\n${yaml}`);
    expect(err.problems).toEqual(['tenants[3]: duplicate id "acme" (first at tenants[0])']);
  });

  it('refuses a URL that is not postgres://', () => {
    const err = yamlError(oneTenant('', 'beta', 'mysql://app@db-2/beta'));
    expect(err.problems).toEqual(['tenants[0] (id "beta"): databaseUrl: not a postgres:// or postgresql:// URL (got "mysql://app@db-2/beta")']);
  });

  it('refuses a URL that does not parse, or has a broken placeholder, or no host', () => {
    expect(yamlError(oneTenant('', 'a', 'postgres://app@db:notaport/a')).problems[0]).toMatch(/databaseUrl: not a valid URL/);
    expect(yamlError(oneTenant('', 'a', 'postgres://app:${PW@db/a')).problems[0]).toMatch(/databaseUrl: malformed \$\{\.\.\.\} placeholder/);
    expect(yamlError(oneTenant('', 'a', 'postgres:///a')).problems[0]).toMatch(/databaseUrl: has no host/);
  });

  it('refuses unknown fields, at the tenant and window level, naming the allowed ones', () => {
    const err = yamlError(oneTenant('    colour: blue\n    window: { cron: "0 2 * * *", durationMinutes: 60, zone: UTC }\n'));
    expect([...err.problems].sort()).toEqual([
      'tenants[0] (id "acme"): unknown field "colour" (allowed: id, databaseUrl, schema, tags, window)',
      'tenants[0] (id "acme"): window: unknown field "zone" (allowed: cron, durationMinutes, tz)',
    ]);
  });

  it('refuses unknown top-level fields', () => {
    const err = yamlError(`${oneTenant('')}\nversion: 2\n`);
    expect(err.problems).toEqual(['unknown top-level field "version" (allowed: tenants)']);
  });

  it('refuses a hostile id without naming the entry by it', () => {
    const err = yamlError(oneTenant('', `'x"; DROP TABLE users; --'`));
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(/^tenants\[0\]: id: must be lowercase letters, digits/);
    expect(err.problems[0]).toContain('got "x\\"; DROP TABLE users; --"');
  });

  it('refuses uppercase ids, ids too long and ids given as numbers', () => {
    expect(yamlError(oneTenant('', 'Acme')).problems[0]).toMatch(/^tenants\[0\]: id: must be lowercase/);
    expect(yamlError(oneTenant('', 'a'.repeat(64))).problems[0]).toMatch(/^tenants\[0\]: id: must be lowercase/);
    expect(yamlError(oneTenant('', '42')).problems).toEqual(['tenants[0]: id: must be a string (quote it in YAML)']);
    expect(parseTenantsFile(oneTenant('', 'a'.repeat(63)), 'yaml', 't')).toHaveLength(1);
  });

  it('refuses a hostile schema name', () => {
    const err = yamlError(oneTenant(`    schema: 'x"; DROP TABLE users; --'\n`));
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(/^tenants\[0\] \(id "acme"\): schema: must be a plain Postgres identifier/);
  });

  it('refuses tags that are not slugs, naming the position in the list', () => {
    const err = yamlError(oneTenant('    tags: [eu, "Bad Tag"]\n'));
    expect(err.problems).toEqual([expect.stringMatching(/^tenants\[0\] \(id "acme"\): tags\[1\]: must be lowercase letters/)]);
  });

  it('refuses a bad cron expression, a cron that never fires and a random "H" minute', () => {
    const win = (cron: string) => oneTenant(`    window: { cron: "${cron}", durationMinutes: 60 }\n`);
    expect(yamlError(win('0 2 * * FUNDAY')).problems).toEqual([
      expect.stringMatching(/^tenants\[0\] \(id "acme"\): window\.cron: invalid cron expression "0 2 \* \* FUNDAY"/),
    ]);
    expect(yamlError(win('0 0 31 2 *')).problems[0]).toMatch(/window\.cron: invalid cron expression/);
    expect(yamlError(win('')).problems[0]).toMatch(/window\.cron: cron expression is empty/);
    expect(yamlError(win('H 2 * * *')).problems[0]).toMatch(/window\.cron: .*uses "H"/);
    expect(parseTenantsFile(win('0 2 * * THU'), 'yaml', 't')[0]?.window?.cron).toBe('0 2 * * THU');
  });

  it('refuses an unknown time zone and an out-of-range duration', () => {
    const err = yamlError(oneTenant('    window: { cron: "0 2 * * *", durationMinutes: 0, tz: Mars/Olympus_Mons }\n'));
    expect(err.problems).toEqual([
      'tenants[0] (id "acme"): window.durationMinutes: must be between 1 and 1440 minutes',
      'tenants[0] (id "acme"): window.tz: unknown time zone "Mars/Olympus_Mons"; use an IANA name such as Europe/Paris',
    ]);
    expect(yamlError(oneTenant('    window: { cron: "0 2 * * *", durationMinutes: 1441 }\n')).problems[0]).toMatch(/between 1 and 1440/);
    expect(yamlError(oneTenant('    window: { cron: "0 2 * * *", durationMinutes: 1.5 }\n')).problems[0]).toMatch(/whole number of minutes/);
    expect(yamlError(oneTenant('    window: { cron: "0 2 * * *" }\n')).problems).toEqual(['tenants[0] (id "acme"): window.durationMinutes: is required']);
  });

  it('refuses missing required fields and entries that are not objects', () => {
    const err = yamlError('tenants:\n  - id: acme\n  - databaseUrl: postgres://db/x\n  - just a string\n');
    expect(err.problems).toEqual([
      'tenants[0] (id "acme"): databaseUrl: is required',
      'tenants[1]: id: is required',
      'tenants[2]: must be an object (a mapping)',
    ]);
  });

  it('refuses an empty list, an empty file and a missing list', () => {
    expect(yamlError('tenants: []\n').problems).toEqual(['the tenants list is empty; add at least one tenant']);
    expect(yamlError('tenants:\n').problems).toEqual(['the tenants list is empty; add at least one tenant']);
    expect(fileError(() => parseTenantsFile('[]', 'json', 't.json')).problems).toEqual(['the tenants list is empty; add at least one tenant']);
    expect(yamlError('').problems).toEqual(['the file is empty; expected "tenants:" followed by a list of tenants']);
    expect(yamlError('servers: []\n').problems).toEqual(['unknown top-level field "servers" (allowed: tenants)', 'missing the "tenants" list']);
  });

  it('reports YAML syntax errors with their line, as the same error type', () => {
    const err = yamlError('tenants:\n  - id: acme\n    databaseUrl: postgres://db/a\n  - id: [beta\n');
    expect(err.problems.length).toBeGreaterThan(0);
    expect(err.problems[0]).toMatch(/^YAML syntax error at line \d+, column \d+: /);
    expect(err.message).toMatch(/^Invalid tenants file tenants.yaml: \d+ problems?\n/);
  });

  it('reports JSON syntax errors with their line', () => {
    const json = '{\n  "tenants": [\n    { "id": "acme", "databaseUrl": "postgres://db/a", }\n  ]\n}';
    const err = fileError(() => parseTenantsFile(json, 'json', 'tenants.json'));
    expect(err.problems).toEqual([expect.stringMatching(/^JSON syntax error at line 3, column \d+: /)]);
    const truncated = fileError(() => parseTenantsFile('{"tenants": [', 'json', 'tenants.json'));
    expect(truncated.problems[0]).toMatch(/^JSON syntax error/);
  });

  it('collects every problem of every entry at once, in file order', () => {
    const yaml = `
tenants:
  - id: acme
    databaseUrl: postgres://db/acme
  - id: BAD
    databaseUrl: postgres://db/bad
  - id: beta
    databaseUrl: http://db/beta
    schema: "1nope"
    window: { cron: "not cron", durationMinutes: 60, tz: Nowhere/City }
  - id: acme
    databaseUrl: postgres://db/acme2
`;
    const err = yamlError(yaml);
    expect(err.problems).toEqual([
      expect.stringMatching(/^tenants\[1\]: id: must be lowercase/),
      expect.stringMatching(/^tenants\[2\] \(id "beta"\): databaseUrl: not a postgres:\/\//),
      expect.stringMatching(/^tenants\[2\] \(id "beta"\): schema: must be a plain Postgres identifier/),
      expect.stringMatching(/^tenants\[2\] \(id "beta"\): window\.cron: invalid cron expression/),
      expect.stringMatching(/^tenants\[2\] \(id "beta"\): window\.tz: unknown time zone "Nowhere\/City"/),
      'tenants[3]: duplicate id "acme" (first at tenants[0])',
    ]);
    expect(err.message.split('\n')[0]).toBe('Invalid tenants file tenants.yaml: 6 problems');
  });

  it('never puts a password into an error message', () => {
    const secret = 'Hunter2-s3cret';
    const yaml = `
tenants:
  - id: acme
    databaseUrl: mysql://app:${secret}@db-1/acme
  - id: beta
    databaseUrl: postgres://app:${secret}@db-2:notaport/beta
  - id: gamma
    databaseUrl: "app:${secret}@db-3/gamma"
  - id: delta
    databaseUrl: postgres://app:${secret}@db-4/delta
    extra: field
`;
    const err = yamlError(yaml);
    expect(err.problems).toHaveLength(4);
    expect(err.message).not.toContain(secret);
    expect(JSON.stringify(err.toJSON())).not.toContain(secret);
    expect(err.problems[0]).toContain('mysql://app:***@db-1/acme');
  });

  it('never echoes a password from a YAML syntax error either', () => {
    const secret = 'Hunter2-s3cret';
    const err = yamlError(`tenants:\n  - id: acme\n    databaseUrl: postgres://app:${secret}@db: x\n`);
    expect(err.problems[0]).toMatch(/^YAML syntax error at line 3/);
    expect(err.message).not.toContain(secret);
  });
});

describe('parseTenantRows', () => {
  it('accepts rows from a query: snake_case url, NULLs, comma-separated tags, JSON-text window', () => {
    const tenants = parseTenantRows([
      {
        id: 'acme',
        database_url: 'postgres://app:${ACME_PW}@db-1/acme',
        schema: null,
        tags: 'eu, canary',
        window: '{"cron":"0 2 * * SUN","durationMinutes":120,"tz":"Europe/Paris"}',
      },
      { id: 'beta', databaseUrl: 'postgres://db-2/beta', schema: 'tenant_beta', tags: ['us'], window: { cron: '0 3 * * *', durationMinutes: 30 } },
      { id: 'gamma', database_url: 'postgres://db-3/gamma', schema: null, tags: null, window: null },
    ]);
    expect(tenants).toEqual<Tenant[]>([
      {
        id: 'acme',
        databaseUrl: 'postgres://app:${ACME_PW}@db-1/acme',
        tags: ['eu', 'canary'],
        window: { cron: '0 2 * * SUN', durationMinutes: 120, tz: 'Europe/Paris' },
      },
      { id: 'beta', databaseUrl: 'postgres://db-2/beta', schema: 'tenant_beta', tags: ['us'], window: { cron: '0 3 * * *', durationMinutes: 30, tz: 'UTC' } },
      { id: 'gamma', databaseUrl: 'postgres://db-3/gamma', tags: [] },
    ]);
  });

  it('reports row problems with the query as the source', () => {
    const err = fileError(() =>
      parseTenantRows([
        { id: 'acme', database_url: 'postgres://db/a', databaseUrl: 'postgres://db/a' },
        { id: 'beta', database_url: 'postgres://db/b', window: '{not json', created_at: '2024-01-01' },
      ]),
    );
    expect(err.source).toBe('tenants query');
    expect(err.message.split('\n')[0]).toBe('Invalid tenants from tenants query: 3 problems');
    expect(err.problems).toEqual([
      'tenants[0] (id "acme"): has both databaseUrl and database_url; keep one',
      'tenants[1] (id "beta"): window: not valid JSON',
      'tenants[1] (id "beta"): unknown field "created_at" (allowed: id, databaseUrl, schema, tags, window)',
    ]);
  });

  it('refuses an empty result', () => {
    expect(fileError(() => parseTenantRows([])).problems).toEqual(['no tenants: the query returned no rows']);
  });
});

describe('resolveDatabaseUrl', () => {
  it('substitutes variables from the given environment', () => {
    expect(resolveDatabaseUrl('postgres://${DB_USER}:${ACME_PW}@db-1/acme', { DB_USER: 'app', ACME_PW: 'hunter2' })).toBe('postgres://app:hunter2@db-1/acme');
  });

  it('percent-encodes values so special characters cannot change the URL', () => {
    const url = resolveDatabaseUrl('postgres://app:${PW}@db-1:5432/acme', { PW: 'p@ss:w/rd' });
    expect(url).toBe('postgres://app:p%40ss%3Aw%2Frd@db-1:5432/acme');
    const parsed = new URL(url);
    expect(decodeURIComponent(parsed.password)).toBe('p@ss:w/rd');
    expect(parsed.hostname).toBe('db-1');
  });

  it('names the missing variable and the tenant, and no value', () => {
    let caught: unknown;
    try {
      resolveDatabaseUrl('postgres://${USER}:${ACME_PW}@db/acme', { USER: 'very-secret-user', OTHER: 'x' }, 'acme');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(MissingEnvVarError);
    const err = caught as MissingEnvVarError;
    expect(err.variable).toBe('ACME_PW');
    expect(err.message).toBe('environment variable ACME_PW is not set (needed by tenant "acme")');
    expect(err.message).not.toContain('very-secret-user');
    expect(() => resolveDatabaseUrl('postgres://app:${PW}@db/a', {})).toThrow(/^environment variable PW is not set$/);
  });

  it('refuses an empty value (libpq would fill in a default), and leaves a URL without placeholders alone', () => {
    expect(() => resolveDatabaseUrl('postgres://app:${PW}@db/a', { PW: '' })).toThrow(/^environment variable PW is set but empty$/);
    expect(resolveDatabaseUrl('postgres://db/a', {})).toBe('postgres://db/a');
  });
});

describe('serverKey', () => {
  it('returns host:port, defaulting the port to 5432, on unresolved templates', () => {
    expect(serverKey('postgres://app:${ACME_PW}@db-1:5433/acme')).toBe('db-1:5433');
    expect(serverKey('postgresql://app:${PW}@DB-2.example.com/acme')).toBe('db-2.example.com:5432');
    expect(serverKey('postgres://db-3/acme')).toBe('db-3:5432');
    expect(serverKey('postgres://app:p%40ss@[::1]:6432/acme')).toBe('[::1]:6432');
  });

  it('returns a placeholder host as written', () => {
    expect(serverKey('postgres://app:${PW}@${DB_HOST}/acme')).toBe('${DB_HOST}:5432');
    expect(serverKey('postgres://app:${PW}@${DB_HOST}:6543/acme')).toBe('${DB_HOST}:6543');
  });

  it('reads host and port from query parameters when the authority has none', () => {
    expect(serverKey('postgres:///acme?host=/var/run/postgresql&port=5433')).toBe('/var/run/postgresql:5433');
  });

  it('groups tenants sharing a server', () => {
    const tenants = parseTenantsFile(VALID_YAML, 'yaml', 't.yaml');
    expect(tenants.map((t) => serverKey(t.databaseUrl))).toEqual(['db-1:5432', 'db-2:5432']);
  });
});

describe('selectTenants', () => {
  const t = (id: string, tags: string[]): Tenant => ({ id, databaseUrl: `postgres://db/${id}`, tags });
  const fleet = [t('acme', ['eu', 'canary']), t('beta', ['eu']), t('gamma', ['us', 'canary']), t('delta', [])];
  const ids = (ts: Tenant[]) => ts.map((x) => x.id);

  it('returns everyone only when asked for explicitly (--all); nothing asked is an error (issue 9: promise 10)', () => {
    expect(ids(selectTenants(fleet, { all: true }))).toEqual(['acme', 'beta', 'gamma', 'delta']);
    expect(() => selectTenants(fleet, {})).toThrow(SelectorError);
    expect(() => selectTenants(fleet, { ids: [], tags: [] })).toThrow(SelectorError);
  });

  it('selects by tags (all of them) and by ids, in registry order', () => {
    expect(ids(selectTenants(fleet, { tags: ['canary'] }))).toEqual(['acme', 'gamma']);
    expect(ids(selectTenants(fleet, { tags: ['eu', 'canary'] }))).toEqual(['acme']);
    expect(ids(selectTenants(fleet, { ids: ['gamma', 'acme'] }))).toEqual(['acme', 'gamma']);
    expect(ids(selectTenants(fleet, { ids: ['acme', 'beta'], tags: ['canary'] }))).toEqual(['acme']);
    // a tag no tenant has selects nothing: refused (issue 9), it was [] before
    expect(() => selectTenants(fleet, { tags: ['apac'] })).toThrow(EmptySelectionError);
  });

  it('refuses ids that are not in the registry instead of silently selecting nothing', () => {
    expect(() => selectTenants(fleet, { ids: ['acme', 'acem'] })).toThrow(TenantSelectionError);
    expect(() => selectTenants(fleet, { ids: ['acem'] })).toThrow('unknown tenant id: "acem"');
  });
});

describe('redaction', () => {
  it('redacts the password of postgres and redis URLs', () => {
    expect(redactUrl('postgres://app:s3cret@db-1:5432/acme')).toBe('postgres://app:***@db-1:5432/acme');
    expect(redactUrl('redis://:s3cret@cache:6379/0')).toBe('redis://:***@cache:6379/0');
    expect(redactUrl('rediss://default:s3cret@cache:6380')).toBe('rediss://default:***@cache:6380');
    expect(redactUrl('postgres://db-1/acme')).toBe('postgres://db-1/acme');
    expect(redactUrl('postgres://app@db-1/acme')).toBe('postgres://app@db-1/acme');
  });

  it('keeps ${VAR} placeholders, which are not secrets', () => {
    expect(redactUrl('postgres://app:${ACME_PW}@db-1/acme')).toBe('postgres://app:${ACME_PW}@db-1/acme');
  });

  it('hides the whole of a password holding unencoded "@" or "/"', () => {
    const out = redactUrl('postgres://app:p@ss/w@rd@db-1/acme');
    expect(out).toBe('postgres://app:***@db-1/acme');
    expect(redactUrl('app:s3cret@db-1/acme')).toBe('app:***@db-1/acme');
  });

  it('redacts password= pairs in URLs and conninfo strings', () => {
    expect(redactUrl('postgres://db-1/acme?user=app&password=s3cret&sslmode=require')).toBe('postgres://db-1/acme?user=app&password=***&sslmode=require');
    expect(redactSecrets("host=db-1 user=app password='se cret' dbname=acme")).toBe('host=db-1 user=app password=*** dbname=acme');
    expect(redactSecrets('host=db-1 password=s3cret dbname=acme')).toBe('host=db-1 password=*** dbname=acme');
    expect(redactSecrets('PGPASSWORD=s3cret psql')).toBe('PGPASSWORD=*** psql');
  });

  it('redacts every URL embedded in free text', () => {
    const text = 'connect to postgres://app:s3cret@db-1/acme failed; queue at redis://:t0ken@cache:6379 is fine';
    expect(redactSecrets(text)).toBe('connect to postgres://app:***@db-1/acme failed; queue at redis://:***@cache:6379 is fine');
    expect(redactSecrets('no secrets here: user@example.com')).toBe('no secrets here: user@example.com');
  });
});
