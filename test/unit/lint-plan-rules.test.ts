import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadMigrationDir } from '../../src/adapters/fs-source.js';
import { ConfigError } from '../../src/core/errors.js';
import { acknowledge, lintForTenants, lintMigrations, parseAcceptRisk, RULE_IDS, RULES } from '../../src/core/lint/index.js';
import { blastRadius, estimateSeconds, namedRelations, orderBySize } from '../../src/core/lint/blast-radius.js';
import { buildMigrationSet } from '../../src/core/migration-set.js';
import { loadConfig } from '../../src/config.js';
import { CASES } from '../helpers/lint-plan-cases.js';

const setOf = (files: string[]) => buildMigrationSet(files.map((sql, i) => ({ name: `${String(i + 1).padStart(3, '0')}_f.sql`, sql })));

describe('lint rules: a failing and a passing example each', () => {
  it('covers every rule', () => {
    expect(new Set(CASES.map((c) => c.rule))).toEqual(new Set(RULE_IDS));
  });
  for (const c of CASES) {
    it(`${c.rule}: flags the failing example`, async () => {
      const set = await setOf(c.bad);
      const { findings } = lintMigrations(set.migrations);
      const f = findings.filter((x) => x.rule === c.rule);
      expect(f.length, JSON.stringify(findings)).toBeGreaterThan(0);
      expect(f[0]!.severity).toBe(RULES[c.rule].severity);
      expect(f[0]!.lock).toBe(RULES[c.rule].lock);
      expect(f[0]!.file).toBe(set.migrations.at(-1)!.name);
      expect(f[0]!.line).toBeGreaterThan(0);
      if (c.table && c.rule !== 'drop-index-not-concurrently') expect(f[0]!.table?.name).toBe(c.table);
      expect(f[0]!.why.length).toBeGreaterThan(10);
      expect(f[0]!.safer.length).toBeGreaterThan(10);
    });
    it(`${c.rule}: passes the safer example`, async () => {
      const { findings } = lintMigrations((await setOf(c.good)).migrations);
      expect(findings.filter((x) => x.rule === c.rule)).toEqual([]);
    });
  }
});

describe('lint: what is existing, and where findings point', () => {
  it('a table created earlier in the set is not existing, one created by an applied file is', async () => {
    const set = await setOf(['CREATE TABLE t (a int);', 'CREATE INDEX t_a ON t (a);']);
    expect(lintMigrations(set.migrations).findings).toEqual([]);
    const r = lintMigrations(set.migrations.slice(1), { applied: set.migrations.slice(0, 1) });
    expect(r.findings.map((f) => [f.rule, f.file, f.line])).toEqual([['create-index-not-concurrently', '002_f.sql', 1]]);
  });
  it('a schema-qualified table is not the same as a table of that name created in another schema', async () => {
    const set = await setOf(['CREATE TABLE a.t (x int);\nCREATE INDEX i ON b.t (x);\nCREATE INDEX j ON a.t (x);']);
    expect(lintMigrations(set.migrations).findings.map((f) => [f.line, f.table])).toEqual([[2, { schema: 'b', name: 't' }]]);
  });
  it('reports the line of the statement, after comments', async () => {
    const set = await setOf(['-- a comment\nBEGIN;\n\n-- why\nALTER TABLE orders\n  DROP COLUMN note;\nCOMMIT;']);
    expect(lintMigrations(set.migrations).findings.map((f) => f.line)).toEqual([5]);
  });
  it('SET NOT NULL is cheap after a CHECK validated in an applied file', async () => {
    const set = await setOf([
      'ALTER TABLE orders ADD CONSTRAINT nn CHECK (x IS NOT NULL) NOT VALID;',
      'ALTER TABLE orders VALIDATE CONSTRAINT nn;',
      'ALTER TABLE orders ALTER COLUMN x SET NOT NULL;',
    ]);
    expect(lintMigrations(set.migrations.slice(2), { applied: set.migrations.slice(0, 2) }).findings).toEqual([]);
    // not validated: still a scan
    expect(lintMigrations([set.migrations[0]!, set.migrations[2]!]).findings.map((f) => f.rule)).toEqual(['set-not-null']);
    // a CHECK on another column proves nothing
    const other = await setOf([
      'ALTER TABLE orders ADD CONSTRAINT nn CHECK (y IS NOT NULL) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT nn;',
      'ALTER TABLE orders ALTER COLUMN x SET NOT NULL;',
    ]);
    expect(lintMigrations(other.migrations).findings.map((f) => f.rule)).toEqual(['set-not-null']);
  });
  it('an enum value used in the next file counts only under --single-transaction', async () => {
    const set = await setOf(["ALTER TYPE s ADD VALUE 'x';", "UPDATE t SET s = 'x' WHERE id = 1;"]);
    expect(lintMigrations(set.migrations).findings).toEqual([]);
    expect(lintMigrations(set.migrations, { singleTransaction: true }).findings.map((f) => [f.rule, f.file])).toEqual([
      ['enum-value-used-in-transaction', '002_f.sql'],
    ]);
  });
  it('a stable default (now(), CURRENT_TIMESTAMP, a constant cast) is not volatile; an unknown function is', async () => {
    const ok = await setOf([
      "ALTER TABLE t ADD COLUMN a timestamptz DEFAULT CURRENT_TIMESTAMP, ADD COLUMN b jsonb DEFAULT '{}'::jsonb, ADD COLUMN c text DEFAULT lower('X');",
    ]);
    expect(lintMigrations(ok.migrations).findings).toEqual([]);
    const bad = await setOf(['ALTER TABLE t ADD COLUMN a uuid DEFAULT my_uuid();', 'ALTER TABLE t ADD COLUMN b timestamptz DEFAULT clock_timestamp();']);
    expect(lintMigrations(bad.migrations).findings.map((f) => f.rule)).toEqual(['add-column-volatile-default', 'add-column-volatile-default']);
  });
  it('identity and inline UNIQUE/REFERENCES/CHECK on ADD COLUMN', async () => {
    const set = await setOf([
      'ALTER TABLE t ADD COLUMN a int GENERATED ALWAYS AS IDENTITY, ADD COLUMN b int UNIQUE, ADD COLUMN c int REFERENCES u (id), ADD COLUMN d int CHECK (d > 0);',
    ]);
    expect(lintMigrations(set.migrations).findings.map((f) => f.rule)).toEqual([
      'add-column-serial',
      'add-unique-constraint',
      'add-foreign-key',
      'add-check-constraint',
    ]);
  });
  it('the guide migrations pass', async () => {
    const set = await loadMigrationDir(fileURLToPath(new URL('../../migrations', import.meta.url)));
    expect(lintMigrations(set.migrations).findings).toEqual([]);
  });
  it('for a fleet: a tenant known to have applied the first files meets their tables as existing', async () => {
    const set = await loadMigrationDir(fileURLToPath(new URL('../../migrations', import.meta.url)));
    const names = set.migrations.map((m) => m.name);
    // nothing known of the tenants: the whole set, nothing flagged
    expect(lintForTenants(set, new Map(), ['a', 'b']).findings).toEqual([]);
    // b applied 001..005: 006 and 008 build indexes on its existing products and users
    const r = lintForTenants(set, new Map([['b', names.slice(0, 5)]]), ['a', 'b']);
    expect(r.findings.map((f) => [f.file, f.rule, f.table?.name])).toEqual([
      ['006_add_products_status.sql', 'create-index-not-concurrently', 'products'],
      ['008_add_users_notification_preference.sql', 'create-index-not-concurrently', 'users'],
    ]);
    // files of another set under the same numbers are not knowledge about this one
    expect(lintForTenants(set, new Map([['b', ['001_create_accounts.sql', '002_create_products.sql']]]), ['b']).findings).toEqual([]);
    // the same finding from two tenant states is reported once
    expect(
      lintForTenants(
        set,
        new Map([
          ['a', names.slice(0, 6)],
          ['b', names.slice(0, 5)],
        ]),
        ['a', 'b'],
      ).findings,
    ).toHaveLength(2);
  });
});

describe('turning rules off and acknowledging them', () => {
  it("-- flotilla:allow moves the file's findings of that rule to allowed; other files are not affected", async () => {
    const set = await setOf(['-- flotilla:allow drop-column, rename-column\nALTER TABLE t DROP COLUMN a;', 'ALTER TABLE t DROP COLUMN b;']);
    const r = lintMigrations(set.migrations);
    expect(r.allowed.map((f) => [f.rule, f.file])).toEqual([['drop-column', '001_f.sql']]);
    expect(r.findings.map((f) => [f.rule, f.file])).toEqual([['drop-column', '002_f.sql']]);
  });
  it('an unknown rule in the header is refused at load time, naming it', async () => {
    await expect(setOf(['-- flotilla:allow drop-colum\nALTER TABLE t DROP COLUMN a;'])).rejects.toThrow(/unknown lint rule "drop-colum"/);
    await expect(setOf(['-- flotilla:allow\nALTER TABLE t DROP COLUMN a;'])).rejects.toThrow(ConfigError);
    // after a statement it is refused like any header
    await expect(setOf(['ALTER TABLE t DROP COLUMN a;\n-- flotilla:allow drop-column'])).rejects.toThrow(/read only in the comment lines at the top/);
  });
  it('config lint.disable turns a rule off; an unknown rule id is a config error', () => {
    const dir = fileURLToPath(new URL('.', import.meta.url));
    const file = `${dir}/../../node_modules/.lint-plan-config-${process.pid}.json`;
    fs.writeFileSync(file, JSON.stringify({ lint: { disable: ['drop-column'] } }));
    try {
      expect(loadConfig({ flags: {}, env: {}, configFile: file }).lint.disable).toEqual(['drop-column']);
      fs.writeFileSync(file, JSON.stringify({ lint: { disable: ['nope'] } }));
      expect(() => loadConfig({ flags: {}, env: {}, configFile: file })).toThrow(/lint\.disable/);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
  it('disable is honoured by the pass', async () => {
    const set = await setOf(['ALTER TABLE t DROP COLUMN a;\nALTER TABLE t RENAME COLUMN b TO c;']);
    expect(lintMigrations(set.migrations, { disable: ['drop-column'] }).findings.map((f) => f.rule)).toEqual(['rename-column']);
  });
  it('acknowledge: flag, header and an earlier acknowledgement of the same content; the rest is missing', async () => {
    const set = await setOf(['-- flotilla:allow drop-table\nDROP TABLE a;', 'ALTER TABLE t DROP COLUMN x;', 'ALTER TABLE t RENAME TO u;', 'DROP INDEX i;']);
    const r = lintMigrations(set.migrations);
    const sums = new Map(set.migrations.map((m) => [m.name, m.checksum]));
    const earlier = [{ checksum: set.migrations[2]!.checksum, rule: 'rename-table', line: 1, actor: 'bob', where: 'rollout r1' }];
    const { acks, missing } = acknowledge(r, sums, ['drop-column'], 'alice', earlier);
    expect(acks.map((a) => [a.rule, a.via, a.actor])).toEqual([
      ['drop-table', 'header', 'alice'],
      ['drop-column', 'flag', 'alice'],
      ['rename-table', 'earlier', 'bob'],
    ]);
    // a warning never needs an acknowledgement
    expect(missing).toEqual([]);
    expect(acknowledge(r, sums, [], 'alice').missing.map((f) => f.rule)).toEqual(['drop-column', 'rename-table']);
  });
  it('--accept-risk values: comma lists, unknown ids named', () => {
    expect(parseAcceptRisk(['drop-column,rename-table', 'drop-column'])).toEqual({ rules: ['drop-column', 'rename-table'] });
    expect(parseAcceptRisk(['drop-colum', ''])).toEqual({ unknown: ['drop-colum', ''] });
  });
});

describe('blast radius', () => {
  it('groups tenants by finding, largest first, counts those over 1M rows, estimates from the size', async () => {
    const set = await setOf(['ALTER TABLE orders ADD COLUMN r float8 DEFAULT random();']);
    const [f] = lintMigrations(set.migrations).findings;
    const at = (rows: number | null, bytes: number | null, table: string | null = 'public.orders') => [{ finding: f!, table, rows, bytes }];
    const groups = blastRadius(
      new Map([
        ['small', at(10, 8192)],
        ['huge', at(12_400_000, 3.1e9)],
        ['gone', at(null, null, null)],
        ['mid', at(2_000_000, 5e8)],
      ]),
    );
    expect(groups).toHaveLength(1);
    expect(groups[0]!.tenants.map((t) => t.tenant)).toEqual(['huge', 'mid', 'small', 'gone']);
    expect(groups[0]!.overManyRows).toBe(2);
    expect(groups[0]!.tenants[0]!.estimateSeconds).toBeCloseTo(3.1e9 / 50e6);
    expect(groups[0]!.tenants[3]!.estimateSeconds).toBeNull();
    expect(estimateSeconds('brief', 1e9)).toBeNull();
  });
  it('orders small tenants first, unknown sizes last, stable on ties', () => {
    const ts = ['a', 'b', 'c', 'd', 'e'].map((id) => ({ id }));
    const sizes = new Map([
      ['a', { bytes: 500, tiebreak: 1 }],
      ['b', { bytes: null, tiebreak: null }],
      ['c', { bytes: 10, tiebreak: 9 }],
      ['d', { bytes: 10, tiebreak: 2 }],
      ['e', { bytes: 10, tiebreak: 2 }],
    ]);
    expect(orderBySize(ts, sizes).map((t) => t.id)).toEqual(['d', 'e', 'c', 'a', 'b']);
  });
  it('namedRelations lists the tables the statements name', async () => {
    const set = await setOf(['ALTER TABLE s.orders ADD COLUMN a int;\nCREATE INDEX i ON items (a);\nUPDATE orders SET a = 1 WHERE id = 2;']);
    expect(namedRelations(set.migrations)).toEqual([{ schema: 's', name: 'orders' }, { name: 'items' }, { name: 'orders' }]);
  });
});
