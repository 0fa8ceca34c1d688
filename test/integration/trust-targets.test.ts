/**
 * Issue 9, section "Targets and selectors": a rollout keeps the targets it was
 * created with (promise 3), whatever later rollouts, dry runs or tenants files
 * do to the registry; retry and resume say when the registry moved on.
 * One fleet (control database, prefix, two workers) for the file; each test
 * has its own tenant ids.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { migrationDir } from '../helpers/migrations.js';
import { deleteKeys, redisUrl } from '../helpers/redis.js';
import { Fleet, relationExists, trackingRows, waitFor, why, type FleetTenant } from '../helpers/fleet.js';
import { CONTROL_QUEUE, openQueue } from '../../src/queue.js';

let fleet: Fleet;
const dirs: { cleanup(): void }[] = [];

beforeAll(async () => {
  fleet = await Fleet.create();
  await fleet.startWorkers(2);
}, 240_000);

afterAll(async () => {
  await fleet?.cleanup();
  for (const d of dirs) d.cleanup();
}, 120_000);

interface View {
  id: string;
  state: string;
  tenants: { id: string; state: string; applied: string[]; error: string | null }[];
}

/** 002 fails on a tenant that already has a `products (id text)` table. */
const SET = {
  '001_create_accounts.sql': 'CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL);\n',
  '002_create_products.sql':
    'CREATE TABLE IF NOT EXISTS products (id serial PRIMARY KEY, name text NOT NULL);\nCREATE INDEX products_name ON products (name);\n',
};
const NAMES = Object.keys(SET);

/** A tenants file naming one tenant id `id` whose target is `target`'s database. */
function tenantsFile(id: string, target: FleetTenant): string {
  const path = join(fleet.dir, `tenants-${id}-${target.id}-${Math.random().toString(36).slice(2, 8)}.yaml`);
  writeFileSync(path, stringify({ tenants: [{ id, databaseUrl: target.urlTemplate, ...(target.schema ? { schema: target.schema } : {}) }] }));
  return path;
}

describe('a rollout keeps its frozen targets', () => {
  it('a dry run pointing the same tenant id elsewhere changes neither the registry nor what `retry` migrates', async () => {
    const dir = migrationDir(SET);
    dirs.push(dir);
    const [prod, staging] = await fleet.addTenants([{ id: 'fz-prod' }, { id: 'fz-staging' }]);
    await prod!.query('CREATE TABLE products (id text)');
    const a = await fleet.cliJson<View>(['rollout', '--dir', dir.dir, '--tenants', tenantsFile('fz-x', prod!), '--all', '--wait']);
    expect(a.code, why(a)).toBe(1);
    expect(a.json.tenants[0]).toMatchObject({ id: 'fz-x', state: 'failed' });

    const dry = await fleet.cliJson<View>(['rollout', '--dir', dir.dir, '--tenants', tenantsFile('fz-x', staging!), '--all', '--dry-run', '--wait']);
    expect(dry.code, why(dry)).toBe(0);
    const registry = await fleet.controlQuery(`SELECT database_url FROM flotilla.tenants WHERE id = 'fz-x'`);
    expect(registry.rows[0]?.database_url, 'a dry run writes nothing to the registry').toBe(prod!.urlTemplate);

    await prod!.query('DROP TABLE products');
    const retry = await fleet.cliJson<View>(['rollout', 'retry', a.json.id, '--wait']);
    expect(retry.code, why(retry)).toBe(0);
    expect(retry.json.tenants[0]).toMatchObject({ id: 'fz-x', state: 'succeeded' });
    expect((await trackingRows(prod!))?.map((r) => r.name)).toEqual(NAMES);
    expect(await relationExists(staging!, 'migrations'), 'the dry run target was never migrated').toBe(false);
    expect(await relationExists(staging!, 'accounts')).toBe(false);
  }, 300_000);

  it('after a later rollout re-registers the tenant elsewhere, retry and resume keep the frozen target and say so', async () => {
    const dir = migrationDir(SET);
    dirs.push(dir);
    const [prod, other] = await fleet.addTenants([
      { id: 'fy-prod', password: 'env' },
      { id: 'fy-other', kind: 'schema' },
    ]);
    await prod!.query('CREATE TABLE products (id text)');
    const a = await fleet.cliJson<View>(['rollout', '--dir', dir.dir, '--tenants', tenantsFile('fy-x', prod!), '--all', '--wait']);
    expect(a.code, why(a)).toBe(1);
    // a real rollout of the same id elsewhere: the registry now points at the other target
    const b = await fleet.cliJson<View>(['rollout', '--dir', dir.dir, '--tenants', tenantsFile('fy-x', other!), '--all', '--wait']);
    expect(b.code, why(b)).toBe(0);
    const otherTracking = await trackingRows(other!);

    await prod!.query('DROP TABLE products');
    const resume = await fleet.cli(['rollout', 'resume', a.json.id, '--dir', dir.dir]);
    expect(resume.code, why(resume)).toBe(0);
    expect(resume.stderr, why(resume)).toMatch(/fy-x: the tenants registry now has another target .*this rollout keeps its own/);
    const retry = await fleet.cli(['rollout', 'retry', a.json.id, '--dir', dir.dir, '--wait']);
    expect(retry.code, why(retry)).toBe(0);
    expect(retry.stderr, why(retry)).toMatch(/fy-x: the tenants registry now has another target .*this rollout keeps its own/);
    expect(retry.stderr + retry.stdout).not.toContain('S3cr3tPW');
    expect((await trackingRows(prod!))?.map((r) => r.name)).toEqual(NAMES);
    expect(await trackingRows(other!), 'the other target was not touched by the retry').toEqual(otherTracking);
  }, 300_000);
});

describe('rollout retry when the files on disk changed', () => {
  const BAD_002 = 'CREATE TABLE products (id serial PRIMARY KEY, account integer REFERENCES no_such_table (id));\n';

  it('says the set on disk differs and runs the frozen one; `--refresh` then runs the fixed files', async () => {
    const dir = migrationDir({ ...SET, '002_create_products.sql': BAD_002 });
    dirs.push(dir);
    const tenants = await fleet.addTenants([{ id: 'rf-1' }, { id: 'rf-2', kind: 'schema' }]);
    const a = await fleet.cliJson<View>(['rollout', '--dir', dir.dir, '--tenants', fleet.writeTenantsFile(tenants), '--all', '--wait']);
    expect(a.code, why(a)).toBe(1);
    expect(a.json.tenants.map((t) => [t.id, t.state, t.applied])).toEqual([
      ['rf-1', 'failed', [NAMES[0]]],
      ['rf-2', 'failed', [NAMES[0]]],
    ]);

    dir.write('002_create_products.sql', SET['002_create_products.sql']);
    const plain = await fleet.cli(['rollout', 'retry', a.json.id, '--dir', dir.dir, '--wait']);
    expect(plain.code, 'the frozen (broken) 002 ran again').toBe(1);
    expect(plain.stderr, why(plain)).toContain(
      `the migration files on disk differ from the set frozen with rollout ${a.json.id} (changed: 002_create_products.sql)`,
    );
    expect(plain.stderr).toContain(`flotilla rollout retry ${a.json.id} --refresh`);

    // 001 is applied on both (they failed on 002): a refresh that also changes 001 is refused, naming them
    dir.write('001_create_accounts.sql', 'CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL);\n');
    const refused = await fleet.cli(['rollout', 'retry', a.json.id, '--dir', dir.dir, '--refresh', '--wait']);
    expect(refused.code, why(refused)).toBe(2);
    expect(refused.stderr).toMatch(
      /2 tenants already ran the frozen files\n {2}rf-1: applied 001_create_accounts\.sql\n {2}rf-2: applied 001_create_accounts\.sql/,
    );
    dir.write('001_create_accounts.sql', SET['001_create_accounts.sql']);

    const fresh = await fleet.cliJson<View & { notices: string[] }>(['rollout', 'retry', a.json.id, '--dir', dir.dir, '--refresh', '--wait']);
    expect(fresh.code, why(fresh)).toBe(0);
    expect(fresh.json.notices).toEqual([`--refresh: rollout ${a.json.id} now runs the files in ${dir.dir} (changed: 002_create_products.sql)`]);
    expect(fresh.json.tenants.map((t) => t.state)).toEqual(['succeeded', 'succeeded']);
    for (const t of tenants)
      expect(
        (await trackingRows(t))?.map((r) => r.name),
        t.id,
      ).toEqual(NAMES);
  }, 300_000);

  it('`--refresh` is refused, naming the tenants, when one already applied a file that changed: nothing changes', async () => {
    const dir = migrationDir(SET);
    dirs.push(dir);
    const tenants = await fleet.addTenants([{ id: 'rr-ok' }, { id: 'rr-bad' }]);
    await fleet.tenant('rr-bad').query('CREATE TABLE products (id text)');
    const a = await fleet.cliJson<View>(['rollout', '--dir', dir.dir, '--tenants', fleet.writeTenantsFile(tenants), '--all', '--max-failures', '1', '--wait']);
    expect(a.code, why(a)).toBe(1);
    expect(a.json.tenants.map((t) => t.state)).toEqual(['succeeded', 'failed']);
    const rolloutBefore = (await fleet.controlQuery('SELECT set_checksum, state FROM flotilla.rollouts WHERE id = $1', [a.json.id])).rows;
    const statesBefore = [...(await fleet.tenantStates(a.json.id)).values()].map((t) => [t.tenant_id, t.state, t.generation]);

    dir.write('002_create_products.sql', 'CREATE TABLE IF NOT EXISTS products (id serial PRIMARY KEY, name text);\n');
    const r = await fleet.cli(['rollout', 'retry', a.json.id, '--dir', dir.dir, '--refresh', '--wait']);
    expect(r.code, why(r)).toBe(2);
    expect(r.stderr).toMatch(
      /cannot refresh the migration set of rollout \S+: 1 tenant already ran the frozen files\n {2}rr-ok: applied 002_create_products\.sql/,
    );
    expect(r.stderr).not.toMatch(/This is a bug/);
    expect((await fleet.controlQuery('SELECT set_checksum, state FROM flotilla.rollouts WHERE id = $1', [a.json.id])).rows).toEqual(rolloutBefore);
    expect([...(await fleet.tenantStates(a.json.id)).values()].map((t) => [t.tenant_id, t.state, t.generation])).toEqual(statesBefore);
  }, 300_000);
});

describe('rollout retry --refresh while tenants may still run', () => {
  it('is refused while the rollout runs; once it is cancelled, the refresh goes through and the failed tenant succeeds', async () => {
    const dir = migrationDir(SET);
    dirs.push(dir);
    // a daily window opening about an hour from now: that tenant waits (scheduled), the rollout keeps running
    const opens = new Date(Math.floor((Date.now() + 3_600_000) / 60_000) * 60_000);
    const tenants = await fleet.addTenants([
      { id: 'rw-bad' },
      { id: 'rw-late', window: { cron: `${opens.getUTCMinutes()} ${opens.getUTCHours()} * * *`, durationMinutes: 30, tz: 'UTC' } },
    ]);
    await fleet.tenant('rw-bad').query('CREATE TABLE products (id text)');
    const a = await fleet.cliJson<View>(['rollout', '--dir', dir.dir, '--tenants', fleet.writeTenantsFile(tenants), '--all', '--max-failures', '1']);
    expect(a.code, why(a)).toBe(0);
    const id = a.json.id;
    await waitFor(
      'rw-bad to fail and rw-late to wait',
      async () => {
        const st = await fleet.tenantStates(id);
        return st.get('rw-bad')!.state === 'failed' && st.get('rw-late')!.state === 'scheduled';
      },
      120_000,
      250,
    );

    // a fix that works on the broken tenant too
    dir.write('002_create_products.sql', 'CREATE TABLE IF NOT EXISTS products (id text);\nCREATE INDEX products_id ON products (id);\n');
    const before = (await fleet.controlQuery('SELECT set_checksum, state FROM flotilla.rollouts WHERE id = $1', [id])).rows;
    const running = await fleet.cli(['rollout', 'retry', id, '--dir', dir.dir, '--refresh']);
    expect(running.code, why(running)).toBe(2);
    expect(running.stderr).toContain(`--refresh: rollout ${id} is still running`);
    expect((await fleet.controlQuery('SELECT set_checksum, state FROM flotilla.rollouts WHERE id = $1', [id])).rows).toEqual(before);

    const cancelled = await fleet.cli(['rollout', 'cancel', id]);
    expect(cancelled.code, why(cancelled)).toBe(0);
    const refreshed = await fleet.cli(['rollout', 'retry', id, '--dir', dir.dir, '--refresh']);
    expect(refreshed.code, why(refreshed)).toBe(0);
    await waitFor('rw-bad to succeed with the refreshed set', async () => (await fleet.tenantStates(id)).get('rw-bad')!.state === 'succeeded', 120_000, 250);
    expect((await trackingRows(fleet.tenant('rw-bad')))?.map((r) => r.name)).toEqual(NAMES);
    expect((await fleet.tenantStates(id)).get('rw-late')!.state).toBe('scheduled');
    await fleet.cli(['rollout', 'cancel', id]);
  }, 300_000);
});

describe('scheduled rollouts survive Redis losing its data', () => {
  it('a worker puts a schedule back from the control database after its job scheduler is gone', async () => {
    const [t] = await fleet.addTenants([{ id: 'sch-t1' }]);
    const r = await fleet.cli([
      'schedule',
      '--name',
      'yearly',
      '--cron',
      '0 3 1 1 *',
      '--tz',
      'Europe/Paris',
      '--tenants',
      fleet.writeTenantsFile([t!]),
      '--all',
    ]);
    expect(r.code, why(r)).toBe(0);
    const control = openQueue(CONTROL_QUEUE, { redisUrl: redisUrl(), prefix: fleet.prefix });
    try {
      expect(await control.getJobScheduler('schedule.yearly')).toMatchObject({ pattern: '0 3 1 1 *', tz: 'Europe/Paris' });
      // what a FLUSHALL does to this fleet (only its own keys: other tests share the server)
      await deleteKeys(fleet.prefix);
      expect(await control.getJobScheduler('schedule.yearly')).toBeUndefined();
      const back = await waitFor('the schedule to be restored', () => control.getJobScheduler('schedule.yearly'), 30_000, 250);
      expect(back).toMatchObject({ pattern: '0 3 1 1 *', tz: 'Europe/Paris' });

      const removed = await fleet.cli(['schedule', 'remove', 'yearly']);
      expect(removed.code, why(removed)).toBe(0);
      await new Promise((res) => setTimeout(res, 5000));
      expect(await control.getJobScheduler('schedule.yearly'), 'a removed schedule stays removed').toBeUndefined();
    } finally {
      await control.close();
    }
  }, 120_000);
});
