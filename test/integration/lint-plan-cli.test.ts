/**
 * `flotilla lint`, `flotilla plan`, the rollout/schedule gate on error-level
 * findings (--accept-risk, headers, earlier acknowledgements, recorded in the
 * control database and shown by `rollout status`) and `rollout --order-by
 * size`, on the built CLI against real Postgres and Redis. No worker runs:
 * rollouts are created, read and cancelled.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { Fleet, relationExists, why, type FleetTenant } from '../helpers/fleet.js';
import { migrationDir } from '../helpers/migrations.js';

let fleet: Fleet;
const dirs: ReturnType<typeof migrationDir>[] = [];
const dir = (files: Record<string, string>) => {
  const d = migrationDir(files);
  dirs.push(d);
  return d;
};

/** `orders` with n rows, analyzed (reltuples is what plan reports); unlogged: 1.1M rows of WAL would only load the shared machine. */
async function loadOrders(t: FleetTenant, n: number): Promise<void> {
  const s = t.schema ? `"${t.schema}".` : '';
  if (t.schema) await t.query(`CREATE SCHEMA IF NOT EXISTS "${t.schema}"`);
  await t.query(
    `CREATE UNLOGGED TABLE ${s}orders (id int PRIMARY KEY, x int, note text); INSERT INTO ${s}orders SELECT g, g, 'n' FROM generate_series(1, ${n}) g; ANALYZE ${s}orders`,
  );
}

let small: FleetTenant;
let mid: FleetTenant;
let big: FleetTenant;
let schemaTenant: FleetTenant;

beforeAll(async () => {
  fleet = await Fleet.create();
  const ts = await fleet.addTenants([{ id: 'lp-small' }, { id: 'lp-mid' }, { id: 'lp-big' }, { id: 'lp-schema', kind: 'schema' }]);
  [small, mid, big, schemaTenant] = [ts[0]!, ts[1]!, ts[2]!, ts[3]!];
  await loadOrders(small!, 10);
  await loadOrders(mid!, 50_000);
  await loadOrders(big!, 1_100_000);
  await loadOrders(schemaTenant!, 2_000);
}, 240_000);

afterAll(async () => {
  for (const d of dirs) d.cleanup();
  await fleet?.cleanup();
}, 120_000);

const RISKY = {
  '001_add_token.sql': 'ALTER TABLE orders ADD COLUMN token float8 DEFAULT random();\n',
  '002_index_x.sql': '-- the index\nCREATE INDEX orders_x ON orders (x);\n',
};

describe('flotilla lint', () => {
  it('exit 1 with the findings (rule, severity, file:line, lock and table, why, safer); --json the same', async () => {
    const d = dir(RISKY);
    const text = await runCli(['lint', '--dir', d.dir]);
    expect(text.code, why(text)).toBe(1);
    expect(text.stdout).toContain('001_add_token.sql:1  error  add-column-volatile-default  (ACCESS EXCLUSIVE on orders, table rewrite)');
    expect(text.stdout).toContain('002_index_x.sql:2  error  create-index-not-concurrently  (SHARE on orders, index build)');
    expect(text.stdout).toMatch(/safer: CREATE INDEX CONCURRENTLY/);
    const json = await runCli(['lint', '--dir', d.dir, '--json']);
    expect(json.code).toBe(1);
    const r = JSON.parse(json.stdout);
    expect(r.findings.map((f: any) => [f.rule, f.severity, f.file, f.line, f.lock, f.table])).toEqual([
      ['add-column-volatile-default', 'error', '001_add_token.sql', 1, 'ACCESS EXCLUSIVE', { name: 'orders' }],
      ['create-index-not-concurrently', 'error', '002_index_x.sql', 2, 'SHARE', { name: 'orders' }],
    ]);
    expect(r.errors).toBe(2);
  });

  it('exit 0 once acknowledged by a header or turned off in the config; a misspelt rule is exit 2', async () => {
    const d = dir({ ...RISKY, '001_add_token.sql': `-- flotilla:allow add-column-volatile-default\n${RISKY['001_add_token.sql']}` });
    const config = join(d.dir, 'cfg.json');
    writeFileSync(config, JSON.stringify({ lint: { disable: ['create-index-not-concurrently'] } }));
    const r = await runCli(['lint', '--dir', d.dir, '--config', config]);
    expect(r.code, why(r)).toBe(0);
    expect(r.stdout).toContain('1 acknowledged by header');
    expect(r.stdout).toContain('rules off in the config: create-index-not-concurrently');
    d.write('003_typo.sql', '-- flotilla:allow drop-colum\nALTER TABLE orders DROP COLUMN note;\n');
    const bad = await runCli(['lint', '--dir', d.dir]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('003_typo.sql:1: unknown lint rule "drop-colum"');
    writeFileSync(config, JSON.stringify({ lint: { disable: ['nope'] } }));
    d.remove('003_typo.sql');
    expect((await runCli(['lint', '--dir', d.dir, '--config', config])).code).toBe(2);
  });

  it('with --database-url: only the pending files, and a table created by an applied file is existing', async () => {
    const t = (await fleet.addTenants([{ id: 'lp-lintdb' }]))[0]!;
    const d = dir({ '001_create.sql': 'CREATE TABLE items (id int, v int);\n' });
    expect((await runCli(['pending', '--dir', d.dir, '--database-url', t.urlTemplate])).code).toBe(0);
    d.write('002_index.sql', 'CREATE INDEX items_v ON items (v);\n');
    // without a database, 001 creates the table: nothing to say
    expect((await runCli(['lint', '--dir', d.dir])).code).toBe(0);
    const r = await runCli(['lint', '--dir', d.dir, '--database-url', t.urlTemplate, '--json']);
    expect(r.code, why(r)).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ files: ['002_index.sql'], against: 'database', findings: [{ rule: 'create-index-not-concurrently' }] });
  });
});

describe('flotilla plan', () => {
  it("joins each finding with each tenant's real sizes, largest first, read-only; an unreachable tenant is named, exit 3", async () => {
    const d = dir(RISKY);
    // lp-mid already applied 001: only 002 is pending there
    expect((await runCli(['run', '001_add_token.sql', '--dir', d.dir, '--database-url', mid!.urlTemplate])).code).toBe(0);
    const file = fleet.writeTenantsFile([small!, mid!, big!, schemaTenant!]);
    const r = await fleet.cliJson<any>(['plan', '--tenants', file, '--dir', d.dir]);
    expect(r.code, why(r)).toBe(1);
    expect(r.json.groups.map((g: any) => g.rule).sort()).toEqual(['add-column-volatile-default', 'create-index-not-concurrently']);
    const byRule = Object.fromEntries(r.json.groups.map((g: any) => [g.rule, g]));
    const add = byRule['add-column-volatile-default'];
    expect(add.tenants.map((t: any) => t.tenant)).toEqual(['lp-big', 'lp-schema', 'lp-small']);
    expect(add.overManyRows).toBe(1);
    expect(add.tenants[0].rows).toBeGreaterThan(1_000_000);
    expect(add.tenants[0].bytes).toBeGreaterThan(add.tenants[1].bytes);
    expect(add.tenants[0].estimateSeconds).toBeGreaterThan(0);
    // the schema tenant's own table, found through its schema
    expect(add.tenants[1]).toMatchObject({ table: `${schemaTenant!.schema}.orders`, rows: 2000 });
    const idx = byRule['create-index-not-concurrently'];
    expect(idx.tenants.map((t: any) => t.tenant)).toEqual(['lp-big', 'lp-mid', 'lp-schema', 'lp-small']);
    expect(r.json.unreachable).toEqual([]);
    // nothing was written: no tracking table where none was
    expect(await relationExists(big!, 'migrations')).toBe(false);
    expect(await relationExists(schemaTenant!, 'migrations')).toBe(false);

    const text = await fleet.cli(['plan', '--tenants', file, '--dir', d.dir]);
    expect(text.stdout).toMatch(/ACCESS EXCLUSIVE on orders \(table rewrite\): 001_add_token\.sql:1 add-column-volatile-default \[error\]/);
    expect(text.stdout).toMatch(/1 tenant over 1M rows: lp-big 1\.1M rows \/ \d+(\.\d)? MB \(~\d+ s\)/);
    expect(text.stdout).toContain('Times are estimates');

    const [gone] = await fleet.addTenants([{ id: 'lp-gone', missingDatabase: true }]);
    const withGone = await fleet.cliJson<any>(['plan', '--tenants', fleet.writeTenantsFile([small!, gone!]), '--dir', d.dir]);
    expect(withGone.code, why(withGone)).toBe(3);
    expect(withGone.json.unreachable.map((u: any) => u.tenant)).toEqual(['lp-gone']);
    expect(withGone.json.groups[0].tenants.map((t: any) => t.tenant)).toEqual(['lp-small']);
  }, 120_000);
});

describe('rollouts refuse unacknowledged error-level findings', () => {
  const DROP = { '001_drop_note.sql': 'ALTER TABLE orders DROP COLUMN note;\n' };
  const rollouts = async () => (await fleet.controlQuery('SELECT count(*)::int AS n FROM flotilla.rollouts')).rows[0].n as number;
  // the control schema, as any fleet command leaves it
  beforeAll(async () => void (await fleet.cli(['rollouts'])), 60_000);

  it('exit 2 naming the finding and the flag; --accept-risk records who; status shows it; a later rollout carries it over', async () => {
    const d = dir(DROP);
    const file = fleet.writeTenantsFile([small!, schemaTenant!]);
    const before = await rollouts();
    const refused = await fleet.cli(['rollout', '--dir', d.dir, '--tenants', file, '--all']);
    expect(refused.code, why(refused)).toBe(2);
    expect(refused.stderr).toContain('001_drop_note.sql:1 drop-column (ACCESS EXCLUSIVE on orders');
    expect(refused.stderr).toContain('--accept-risk drop-column');
    expect(await rollouts()).toBe(before);
    const typo = await fleet.cli(['rollout', '--dir', d.dir, '--tenants', file, '--all', '--accept-risk', 'drop-colum']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('unknown lint rule "drop-colum"');

    const ok = await fleet.cliJson<any>(['rollout', '--dir', d.dir, '--tenants', file, '--all', '--accept-risk', 'drop-column'], {
      env: { FLOTILLA_ACTOR: 'alice' },
    });
    expect(ok.code, why(ok)).toBe(0);
    expect(ok.stderr).toContain('acknowledged risk: 001_drop_note.sql:1 drop-column (ACCESS EXCLUSIVE on orders) by alice via --accept-risk');
    const status = await fleet.cliJson<any>(['rollout', 'status', ok.json.id]);
    expect(status.json.acknowledgements).toMatchObject([
      { file: '001_drop_note.sql', line: 1, rule: 'drop-column', via: 'flag', actor: 'alice', table: 'orders' },
    ]);
    expect(status.json.acknowledgements[0].osUser).toMatch(/@/);
    const statusText = await fleet.cli(['rollout', 'status', ok.json.id]);
    expect(statusText.stdout).toMatch(
      /Acknowledged risks:\n {2}001_drop_note\.sql:1 drop-column \(ACCESS EXCLUSIVE on orders\): alice \(\S+@\S+\) via --accept-risk/,
    );
    await fleet.cli(['rollout', 'cancel', ok.json.id]);

    // the same file content again: the acknowledgement carries over (named), no flag needed
    const again = await fleet.cliJson<any>(['rollout', '--dir', d.dir, '--tenants', file, '--all'], { env: { FLOTILLA_ACTOR: 'bob' } });
    expect(again.code, why(again)).toBe(0);
    const s2 = await fleet.cliJson<any>(['rollout', 'status', again.json.id]);
    expect(s2.json.acknowledgements).toMatchObject([{ rule: 'drop-column', via: 'earlier', actor: 'alice', earlier: `rollout ${ok.json.id}` }]);
    await fleet.cli(['rollout', 'cancel', again.json.id]);

    // edited file: a new review is needed
    d.write('001_drop_note.sql', 'ALTER TABLE orders DROP COLUMN note; -- edited\n');
    expect((await fleet.cli(['rollout', '--dir', d.dir, '--tenants', file, '--all'])).code).toBe(2);
  }, 120_000);

  it('the file header acknowledges; schedule refuses the same way and records its acknowledgement', async () => {
    const d = dir({ '001_rename.sql': '-- flotilla:allow rename-column\nALTER TABLE orders RENAME COLUMN x TO y;\n' });
    const file = fleet.writeTenantsFile([small!]);
    const r = await fleet.cliJson<any>(['rollout', '--dir', d.dir, '--tenants', file, '--all', '--dry-run']);
    expect(r.code, why(r)).toBe(0);
    const s = await fleet.cliJson<any>(['rollout', 'status', r.json.id]);
    expect(s.json.acknowledgements).toMatchObject([{ rule: 'rename-column', via: 'header' }]);
    await fleet.cli(['rollout', 'cancel', r.json.id]);

    const d2 = dir({ '001_vacuum.sql': 'VACUUM FULL orders;\n' });
    const [only] = await fleet.addTenants([{ id: 'lp-sched' }]);
    const tfile = fleet.writeTenantsFile([only!]);
    const refused = await fleet.cli(['schedule', '--dir', d2.dir, '--tenants', tfile, '--name', 'lp-weekly', '--cron', '0 3 * * SUN', '--all']);
    expect(refused.code, why(refused)).toBe(2);
    expect(refused.stderr).toContain('001_vacuum.sql:1 vacuum-full');
    expect((await fleet.controlQuery(`SELECT count(*)::int AS n FROM flotilla.schedules WHERE name = 'lp-weekly'`)).rows[0].n).toBe(0);
    expect((await fleet.controlQuery(`SELECT count(*)::int AS n FROM flotilla.tenants WHERE id = 'lp-sched'`)).rows[0].n, 'nothing registered').toBe(0);
    const ok = await fleet.cli(
      ['schedule', '--dir', d2.dir, '--tenants', tfile, '--name', 'lp-weekly', '--cron', '0 3 * * SUN', '--all', '--accept-risk', 'vacuum-full'],
      {
        env: { FLOTILLA_ACTOR: 'carol' },
      },
    );
    expect(ok.code, why(ok)).toBe(0);
    const rows = (await fleet.controlQuery(`SELECT rule, via, actor, rollout_id FROM flotilla.risk_acks WHERE schedule_name = 'lp-weekly'`)).rows;
    expect(rows).toEqual([{ rule: 'vacuum-full', via: 'flag', actor: 'carol', rollout_id: null }]);
    await fleet.cli(['schedule', 'remove', 'lp-weekly']);
  }, 120_000);
});

describe('the gate knows what earlier rollouts applied', () => {
  it('an index on a table an earlier rollout created is on an existing table: refused', async () => {
    const [t] = await fleet.addTenants([{ id: 'lp-known' }]);
    const file = fleet.writeTenantsFile([t!]);
    const d = dir({ '001_create_items.sql': 'CREATE TABLE items (id int, v int);\n' });
    const worker = await fleet.startWorker({ concurrency: 1 });
    try {
      const first = await fleet.cliJson<any>(['rollout', '--dir', d.dir, '--tenants', file, '--all', '--wait']);
      expect(first.code, why(first)).toBe(0);
      d.write('002_index_items.sql', 'CREATE INDEX items_v ON items (v);\n');
      // statically, items is created earlier in the set: lint without a database says nothing
      expect((await runCli(['lint', '--dir', d.dir])).code).toBe(0);
      const refused = await fleet.cli(['rollout', '--dir', d.dir, '--tenants', file, '--all']);
      expect(refused.code, why(refused)).toBe(2);
      expect(refused.stderr).toContain('002_index_items.sql:1 create-index-not-concurrently (SHARE on items');
      // a tenant nothing is known of meets items as a new table
      const [fresh] = await fleet.addTenants([{ id: 'lp-unknown' }]);
      const ok = await fleet.cliJson<any>(['rollout', '--dir', d.dir, '--tenants', fleet.writeTenantsFile([fresh!]), '--all', '--wait']);
      expect(ok.code, why(ok)).toBe(0);
      expect(ok.json.tenants[0]).toMatchObject({ state: 'succeeded', applied: ['001_create_items.sql', '002_index_items.sql'] });
    } finally {
      await fleet.stopWorker(worker);
    }
  }, 180_000);
});

describe('rollout --order-by size', () => {
  it('small tenants first, the largest last; the canary comes from the small ones', async () => {
    const d = dir({ '001_add_col.sql': 'ALTER TABLE orders ADD COLUMN extra int;\n' });
    // file order: largest first
    const file = fleet.writeTenantsFile([big!, mid!, small!]);
    const r = await fleet.cliJson<any>(['rollout', '--dir', d.dir, '--tenants', file, '--all', '--order-by', 'size', '--canary', '1', '--dry-run']);
    expect(r.code, why(r)).toBe(0);
    const rows = (await fleet.controlQuery('SELECT tenant_id, wave FROM flotilla.rollout_tenants WHERE rollout_id = $1 ORDER BY position', [r.json.id])).rows;
    expect(rows).toEqual([
      { tenant_id: 'lp-small', wave: 0 },
      { tenant_id: 'lp-mid', wave: 1 },
      { tenant_id: 'lp-big', wave: 1 },
    ]);
    await fleet.cli(['rollout', 'cancel', r.json.id]);
    const bad = await fleet.cli(['rollout', '--dir', d.dir, '--tenants', file, '--all', '--order-by', 'name']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--order-by: "name" is not an order');
  }, 120_000);
});
