/**
 * Issue 9, sections 6 and 7, through a fleet: a worker fails a tenant whose
 * database refuses (no privilege, read-only, a foreign tracking table, a file
 * that ends its own session) at once with the explanation, never retrying it;
 * --tenants-query runs one read-only SELECT or nothing; a literal password in a
 * tenants file is warned about and goes nowhere but the control database.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminQuery } from '../helpers/db.js';
import { migrationDir } from '../helpers/migrations.js';
import { Fleet, SECRET } from '../helpers/fleet.js';

let fleet: Fleet;
const dirs: { cleanup(): void }[] = [];
const roles: string[] = [];

beforeAll(async () => {
  fleet = await Fleet.create();
  await fleet.startWorkers(1);
}, 240_000);

afterAll(async () => {
  await fleet?.cleanup();
  for (const d of dirs) d.cleanup();
  for (const r of roles) await adminQuery(`DROP ROLE IF EXISTS ${r}`).catch(() => {});
}, 120_000);

function dir(files: Record<string, string>): string {
  const d = migrationDir(files);
  dirs.push(d);
  return d.dir;
}

function tenantsFile(entries: { id: string; databaseUrl: string; schema?: string }[]): string {
  const path = join(fleet.dir, `tenants-${randomBytes(3).toString('hex')}.yaml`);
  writeFileSync(path, stringify({ tenants: entries }));
  return path;
}

interface View {
  state: string;
  tenants: { id: string; state: string; applied: string[]; error: string | null; attempts: number }[];
}

async function storedError(tenant: string): Promise<{ kind: string; message: string; hint: string }> {
  return (await fleet.controlQuery(`SELECT error FROM flotilla.rollout_tenants WHERE tenant_id = $1 ORDER BY generation DESC LIMIT 1`, [tenant])).rows[0].error;
}

describe("a worker and the target's own rules", () => {
  it('no privilege, read-only, a foreign tracking table, a self-terminating file: each tenant fails once, explained; the others succeed', async () => {
    const [ok, noperm, ro, typeorm] = await fleet.addTenants([{ id: 'tr-ok', password: 'env' }, { id: 'tr-noperm' }, { id: 'tr-ro' }, { id: 'tr-typeorm' }]);
    const role = `flotilla_r_${randomBytes(4).toString('hex')}`;
    roles.push(role);
    await adminQuery(`CREATE ROLE ${role} LOGIN`);
    await adminQuery(`ALTER DATABASE ${ro!.db.name} SET default_transaction_read_only = on`);
    await typeorm!.query('CREATE TABLE migrations (id SERIAL PRIMARY KEY, "timestamp" bigint NOT NULL, name varchar NOT NULL)');
    await typeorm!.query(`INSERT INTO migrations ("timestamp", name) VALUES (1, 'Init1')`);
    const path = tenantsFile([
      { id: ok!.id, databaseUrl: ok!.urlTemplate },
      { id: noperm!.id, databaseUrl: noperm!.urlTemplate.replace('//postgres@', `//${role}@`) },
      { id: ro!.id, databaseUrl: ro!.urlTemplate },
      { id: typeorm!.id, databaseUrl: typeorm!.urlTemplate },
    ]);
    const r = await fleet.cli(
      ['--dir', dir({ '001_t.sql': 'CREATE TABLE t1 (id int);' }), 'rollout', '--tenants', path, '--all', '--max-failures', '10', '--wait', '--json'],
      { timeoutMs: 180_000 },
    );
    const v = JSON.parse(r.stdout) as View;
    const t = new Map(v.tenants.map((x) => [x.id, x]));
    expect(t.get('tr-ok')).toMatchObject({ state: 'succeeded', applied: ['001_t.sql'] });
    for (const id of ['tr-noperm', 'tr-ro', 'tr-typeorm']) {
      expect(t.get(id), id).toMatchObject({ state: 'failed', attempts: 1 });
      expect(t.get(id)!.error).not.toMatch(/bug/i);
    }
    expect(await storedError('tr-noperm')).toMatchObject({ kind: 'input', reason: 'privilege' });
    expect((await storedError('tr-noperm')).hint).toContain(`GRANT USAGE, CREATE ON SCHEMA public TO ${role}`);
    expect(t.get('tr-ro')!.error).toContain('read-only');
    expect((await storedError('tr-ro')).hint).toContain('default_transaction_read_only = off');
    expect(await storedError('tr-typeorm')).toMatchObject({ code: 'foreign_tracking_table', kind: 'input' });
    expect((await typeorm!.query('SELECT to_jsonb(m)::text AS r FROM migrations m')).rows).toEqual([{ r: '{"id": 1, "name": "Init1", "timestamp": 1}' }]);
    expect((await typeorm!.query(`SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'migrations'::regclass AND attnum > 0`)).rows[0].n).toBe(3);

    // a file that ends its own session: failed once, not retried (a retry would do it again)
    const [kill] = await fleet.addTenants([{ id: 'tr-kill' }]);
    const k = await fleet.cli(
      [
        '--dir',
        dir({ '001_kill.sql': 'CREATE TABLE t1 (id int);\nSELECT pg_terminate_backend(pg_backend_pid());' }),
        'rollout',
        '--tenants',
        tenantsFile([{ id: kill!.id, databaseUrl: kill!.urlTemplate }]),
        '--all',
        '--wait',
        '--json',
      ],
      { timeoutMs: 180_000 },
    );
    const kv = JSON.parse(k.stdout) as View;
    expect(kv.tenants[0]).toMatchObject({ id: 'tr-kill', state: 'failed', attempts: 1 });
    expect((await storedError('tr-kill')).hint).toContain('pg_backend_pid()');
    expect((await kill!.query(`SELECT to_regclass('public.t1') AS t`)).rows[0].t).toBeNull();
  }, 240_000);
});

describe('a new tenant schema', () => {
  it('created by a worker is reported in its log (createdSchema), once', async () => {
    const [t] = await fleet.addTenants([{ id: 'tr-schema', kind: 'schema' }]);
    const path = tenantsFile([{ id: t!.id, databaseUrl: t!.urlTemplate, schema: t!.schema! }]);
    const files = { '001_t.sql': 'CREATE TABLE t1 (id int);' };
    const r = await fleet.cli(['--dir', dir(files), 'rollout', '--tenants', path, '--all', '--wait'], { timeoutMs: 180_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const logged = () =>
      fleet
        .workerLogs()
        .split('\n')
        .filter((l) => l.includes(`"createdSchema":"${t!.schema}"`)).length;
    expect(logged()).toBe(1);
    const again = await fleet.cli(['--dir', dir({ ...files, '002_t.sql': 'CREATE TABLE t2 (id int);' }), 'rollout', '--tenants', path, '--all', '--wait'], {
      timeoutMs: 180_000,
    });
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(logged()).toBe(1);
  }, 240_000);
});

describe('--tenants-query', () => {
  const q = (sql: string) => fleet.cli(['--dir', dir({ '001_t.sql': 'CREATE TABLE t1 (id int);' }), 'rollout', '--tenants-query', sql, '--all']);

  it('several statements: exit 2, none of them run', async () => {
    await fleet.controlQuery('CREATE TABLE IF NOT EXISTS public.registry (id text, database_url text)');
    await fleet.controlQuery(`INSERT INTO public.registry VALUES ('r1', 'postgres://postgres@127.0.0.1:5432/nowhere')`);
    const rollouts = async () => (await fleet.controlQuery('SELECT count(*)::int AS n FROM flotilla.rollouts')).rows[0].n;
    const before = await rollouts();
    const r = await q('SELECT id, database_url FROM public.registry; DELETE FROM public.registry');
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toContain('--tenants-query: 2 statements; give exactly one SELECT');
    expect((await fleet.controlQuery('SELECT count(*)::int AS n FROM public.registry')).rows[0].n).toBe(1);
    expect(await rollouts()).toBe(before);
  });

  it('a SELECT that writes (data-modifying WITH, SELECT INTO, a writing function): exit 2, nothing written', async () => {
    await fleet.controlQuery('CREATE TABLE IF NOT EXISTS public.registry (id text, database_url text)');
    await fleet.controlQuery(`CREATE OR REPLACE FUNCTION public.sneaky() RETURNS text LANGUAGE sql AS $$ DELETE FROM public.registry RETURNING 'x' $$`);
    const before = (await fleet.controlQuery('SELECT count(*)::int AS n FROM public.registry')).rows[0].n;
    for (const sql of [
      'WITH d AS (DELETE FROM public.registry RETURNING *) SELECT id, database_url FROM d',
      'SELECT id, database_url INTO public.copied FROM public.registry',
      'SELECT id, database_url, public.sneaky() FROM public.registry',
    ]) {
      const r = await q(sql);
      expect(r.code, `${sql}: ${r.stdout}${r.stderr}`).toBe(2);
      expect(r.stderr).not.toMatch(/bug/i);
    }
    expect((await fleet.controlQuery('SELECT count(*)::int AS n FROM public.registry')).rows[0].n).toBe(before);
    expect((await fleet.controlQuery(`SELECT to_regclass('public.copied') AS t`)).rows[0].t).toBeNull();
  });
});

describe('a literal password in the tenants file', () => {
  it('is warned about (pointing to ${VAR}), never printed nor put in Redis; it is stored in the control database as written', async () => {
    const [lit, env] = await fleet.addTenants([
      { id: 'tr-literal', password: 'literal' },
      { id: 'tr-env', password: 'env' },
    ]);
    const path = tenantsFile([
      { id: lit!.id, databaseUrl: lit!.urlTemplate },
      { id: env!.id, databaseUrl: env!.urlTemplate },
    ]);
    const r = await fleet.cli(['--dir', dir({ '001_t.sql': 'CREATE TABLE t1 (id int);' }), 'rollout', '--tenants', path, '--all', '--wait'], {
      timeoutMs: 180_000,
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toContain('tenant tr-literal holds a literal password');
    expect(r.stderr).not.toContain('tr-env');
    expect(r.stderr).toContain('${');
    expect(r.stdout + r.stderr).not.toContain(SECRET);
    expect((await fleet.dumpRedis()).text).not.toContain(SECRET);
    expect(fleet.workerLogs()).not.toContain(SECRET);
    // what is stored: the URL as written (workers connect with it); the ${VAR} one keeps its placeholder
    const stored = await fleet.controlQuery(`SELECT id, database_url FROM flotilla.tenants WHERE id IN ('tr-literal', 'tr-env') ORDER BY id`);
    expect(stored.rows.find((x) => x.id === 'tr-literal').database_url).toContain(SECRET);
    expect(stored.rows.find((x) => x.id === 'tr-env').database_url).toContain('${TENANT_PW}');
  }, 240_000);
});
