/**
 * Rollouts under less friendly conditions: maintenance windows, a worker
 * killed mid-migration, --concurrency / --per-server caps, and credentials
 * (none may reach Redis, worker logs or CLI output).
 * One fleet (control database, prefix, two workers with a 3 s job lock) for
 * the whole file; each test has its own tenants. The kill test leaves one
 * worker, which the leak test (last: it checks everything the file produced)
 * still has.
 */
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminUrl } from '../helpers/db.js';
import { migrationDir } from '../helpers/migrations.js';
import { redisUrl } from '../helpers/redis.js';
import { Fleet, GUIDE_MIGRATIONS, SECRET, relationExists, trackingRows, waitFor, why, type FleetTenant } from '../helpers/fleet.js';

let fleet: Fleet;
const dirs: { cleanup(): void }[] = [];

beforeAll(async () => {
  fleet = await Fleet.create({ lockDuration: '3s' });
  await fleet.startWorkers(2);
}, 240_000);

afterAll(async () => {
  await fleet?.cleanup();
  for (const d of dirs) d.cleanup();
}, 120_000);

interface View {
  id: string;
  state: string;
  haltReason: string | null;
  counts: Record<string, number>;
  tenants: { id: string; state: string; applied: string[]; error: string | null; attempts: number }[];
}

function dir(files: Record<string, string>): string {
  const d = migrationDir(files);
  dirs.push(d);
  return d.dir;
}

async function rolloutState(id: string): Promise<string> {
  return (await fleet.rolloutRow(id)).state;
}

const SMALL = { '001_create_notes.sql': 'CREATE TABLE notes (id serial PRIMARY KEY, body text);\n' };

/** Spans recorded by the SPAN migration: when each tenant's migration transaction started and ended. */
const SPAN = {
  '001_span.sql':
    'CREATE TABLE span (started timestamptz NOT NULL, ended timestamptz NOT NULL);\nSELECT pg_sleep(1);\nINSERT INTO span VALUES (now(), clock_timestamp());\n',
};

async function spans(tenants: FleetTenant[]): Promise<{ id: string; started: number; ended: number }[]> {
  const out = [];
  for (const t of tenants) {
    const r = await t.query(`SELECT started, ended FROM "${t.tableSchema}".span`);
    expect(r.rowCount, t.id).toBe(1);
    out.push({ id: t.id, started: r.rows[0].started.getTime(), ended: r.rows[0].ended.getTime() });
  }
  return out.sort((a, b) => a.started - b.started);
}

/** The largest number of spans running at one instant. */
function maxOverlap(s: { started: number; ended: number }[]): number {
  const events = s
    .flatMap((x) => [
      { at: x.started, d: 1 },
      { at: x.ended, d: -1 },
    ])
    .sort((a, b) => a.at - b.at || a.d - b.d);
  let n = 0;
  let max = 0;
  for (const e of events) max = Math.max(max, (n += e.d));
  return max;
}

describe('fleet resilience', () => {
  it('a tenant outside its maintenance window waits (scheduled) while the others succeed', async () => {
    // a daily 30-minute window opening about an hour from now (UTC)
    const opens = new Date(Math.floor((Date.now() + 3_600_000) / 60_000) * 60_000);
    const tenants = await fleet.addTenants([
      { id: 'win-1' },
      { id: 'win-late', window: { cron: `${opens.getUTCMinutes()} ${opens.getUTCHours()} * * *`, durationMinutes: 30, tz: 'UTC' } },
      { id: 'win-2', kind: 'schema' },
    ]);
    const created = await fleet.cliJson<View>(['rollout', '--dir', dir(SMALL), '--tenants', fleet.writeTenantsFile(tenants), '--all']);
    expect(created.code, why(created)).toBe(0);
    const id = created.json.id;

    await waitFor(
      'win-1 and win-2 to succeed',
      async () => {
        const s = await fleet.tenantStates(id);
        return s.get('win-1')!.state === 'succeeded' && s.get('win-2')!.state === 'succeeded';
      },
      120_000,
      250,
    );

    const status = await fleet.cliJson<View>(['rollout', 'status', id]);
    expect(status.code, why(status)).toBe(0);
    expect(status.json.state).toBe('running');
    expect(Object.fromEntries(status.json.tenants.map((t) => [t.id, t.state]))).toEqual({
      'win-1': 'succeeded',
      'win-late': 'scheduled',
      'win-2': 'succeeded',
    });
    expect(status.json.tenants.find((t) => t.id === 'win-late')).toMatchObject({ applied: [], attempts: 0, error: null });
    expect(await relationExists(fleet.tenant('win-late'), 'migrations')).toBe(false);
    for (const t of ['win-1', 'win-2'])
      expect(
        (await trackingRows(fleet.tenant(t)))?.map((x) => x.name),
        t,
      ).toEqual(Object.keys(SMALL));

    // it waits as a delayed job until the window opens, not as a busy slot
    const row = (await fleet.tenantStates(id)).get('win-late')!;
    expect(row.not_before?.toISOString()).toBe(opens.toISOString());
    const r = new Redis(redisUrl());
    try {
      const score = await r.zscore(`${fleet.prefix}:migrate:delayed`, `m.${id}.win-late.0`);
      expect(score, 'delayed job in Redis').not.toBeNull();
      expect(Math.abs(Math.floor(Number(score) / 0x1000) - opens.getTime())).toBeLessThan(30_000);
    } finally {
      r.disconnect();
    }

    // cancelling ends the wait
    const cancelled = await fleet.cliJson<View>(['rollout', 'cancel', id]);
    expect(cancelled.code, why(cancelled)).toBe(0);
    expect(cancelled.json.state).toBe('cancelled');
    expect(cancelled.json.tenants.find((t) => t.id === 'win-late')!.state).toBe('cancelled');
  }, 300_000);

  it('--concurrency 1 runs one tenant at a time (and without it the same migration overlaps)', async () => {
    const spanDir = dir(SPAN);
    const capped = await fleet.addTenants([{ id: 'cc-1' }, { id: 'cc-2' }, { id: 'cc-3', kind: 'schema' }, { id: 'cc-4' }]);
    const free = await fleet.addTenants([{ id: 'cf-1' }, { id: 'cf-2' }, { id: 'cf-3' }, { id: 'cf-4' }]);

    const r = await fleet.cliJson<View>(['rollout', '--dir', spanDir, '--tenants', fleet.writeTenantsFile(capped), '--all', '--concurrency', '1', '--wait']);
    expect(r.code, why(r)).toBe(0);
    const s = await spans(capped);
    for (let i = 1; i < s.length; i++) expect(s[i]!.started, `${s[i]!.id} started before ${s[i - 1]!.id} ended`).toBeGreaterThanOrEqual(s[i - 1]!.ended);
    expect(maxOverlap(s)).toBe(1);
    // file order
    expect(s.map((x) => x.id)).toEqual(['cc-1', 'cc-2', 'cc-3', 'cc-4']);

    // the control: two workers with two slots each do run these migrations side by side
    const u = await fleet.cliJson<View>(['rollout', '--dir', spanDir, '--tenants', fleet.writeTenantsFile(free), '--all', '--wait']);
    expect(u.code, why(u)).toBe(0);
    expect(maxOverlap(await spans(free))).toBeGreaterThanOrEqual(2);
  }, 300_000);

  it('--per-server 1 runs at most one tenant per Postgres server (host:port) at a time', async () => {
    // "localhost" and "127.0.0.1" are the same Postgres, but two servers for Flotilla
    const tenants = await fleet.addTenants([
      { id: 'ps-a1' },
      { id: 'ps-b1', host: 'localhost' },
      { id: 'ps-a2' },
      { id: 'ps-b2', host: 'localhost' },
      { id: 'ps-a3' },
    ]);
    const r = await fleet.cliJson<View>(['rollout', '--dir', dir(SPAN), '--tenants', fleet.writeTenantsFile(tenants), '--all', '--per-server', '1', '--wait']);
    expect(r.code, why(r)).toBe(0);
    const servers = await fleet.tenantStates(r.json.id);
    const port = new URL(adminUrl()).port || '5432';
    expect(new Set([...servers.values()].map((x) => x.server))).toEqual(new Set([`127.0.0.1:${port}`, `localhost:${port}`]));
    const s = await spans(tenants);
    const a = s.filter((x) => x.id.startsWith('ps-a'));
    const b = s.filter((x) => x.id.startsWith('ps-b'));
    expect(maxOverlap(a), JSON.stringify(a)).toBe(1);
    expect(maxOverlap(b), JSON.stringify(b)).toBe(1);
    expect(maxOverlap(s)).toBeLessThanOrEqual(2);
  }, 300_000);

  it('a worker killed (SIGKILL) mid-migration: another worker finishes, each migration applied once', async () => {
    const killDir = dir({
      '001_slow_side_effect.sql':
        'CREATE TABLE side_effect (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());\nINSERT INTO side_effect DEFAULT VALUES;\nSELECT pg_sleep(3);\n',
      '002_after.sql': 'CREATE TABLE after_slow (id int);\n',
    });
    const tenants = await fleet.addTenants([{ id: 'kill-1' }, { id: 'kill-2', password: 'env' }]);
    const victimTenant = tenants[0]!;
    expect(fleet.workers.filter((w) => w.child.exitCode === null)).toHaveLength(2);
    const created = await fleet.cliJson<View>(['rollout', '--dir', killDir, '--tenants', fleet.writeTenantsFile(tenants), '--all']);
    expect(created.code, why(created)).toBe(0);
    const id = created.json.id;

    // the worker whose connection is sleeping inside kill-1's migration
    const appName = await waitFor(
      'kill-1 to be inside its slow migration',
      async () => {
        const r = await fleet.controlQuery(
          `SELECT application_name FROM pg_stat_activity WHERE datname = $1 AND query ILIKE '%pg_sleep%' AND state = 'active'`,
          [victimTenant.db.name],
        );
        return r.rows[0]?.application_name as string | undefined;
      },
      120_000,
      50,
    );
    const victim = fleet.workers.find((w) => appName === `flotilla-worker ${w.id}`);
    expect(victim, `a worker of this fleet runs it (${appName})`).toBeDefined();
    victim!.child.kill('SIGKILL');
    await victim!.exited;
    expect(victim!.child.signalCode).toBe('SIGKILL');
    // killed before the file committed (the tracking table itself is created up front)
    expect((await trackingRows(victimTenant)) ?? []).toEqual([]);
    const survivor = fleet.workers.find((w) => w !== victim && w.child.exitCode === null)!;

    await waitFor('the rollout to finish', async () => (await rolloutState(id)) !== 'running', 120_000, 250);
    const status = await fleet.cliJson<View>(['rollout', 'status', id]);
    expect(status.json.state, why(status)).toBe('succeeded');
    for (const t of tenants) {
      const rows = await trackingRows(t);
      expect(
        rows?.map((x) => x.name),
        t.id,
      ).toEqual(['001_slow_side_effect.sql', '002_after.sql']);
      expect((await t.query('SELECT count(*)::int AS n FROM side_effect')).rows[0].n, t.id).toBe(1);
    }
    const states = await fleet.tenantStates(id);
    const k = states.get('kill-1')!;
    // claimed by the killed worker, then again after its job lock expired
    expect(k.attempts).toBeGreaterThanOrEqual(2);
    expect(k.worker).toBe(survivor.id);
    expect((await trackingRows(victimTenant))!.every((x) => x.applied_by === `worker ${survivor.id} (rollout ${id})`)).toBe(true);
    const attempts = await fleet.controlQuery(
      `SELECT kind, state, worker FROM flotilla.attempts WHERE rollout_id = $1 AND tenant_id = 'kill-1' ORDER BY finished_at`,
      [id],
    );
    expect(attempts.rows.filter((x) => x.state === 'failed')).toEqual([]);
    expect(attempts.rows.some((x) => x.worker === victim!.id)).toBe(false); // it died before recording anything
  }, 300_000);

  it('no credential reaches Redis, worker logs or CLI output', async () => {
    const tenants = await fleet.addTenants([
      { id: 'lk-env', password: 'env' },
      { id: 'lk-env-schema', kind: 'schema', password: 'env' },
      { id: 'lk-literal', password: 'literal' },
      // fails to connect (its database does not exist): the error path is checked too
      { id: 'lk-missing', password: 'literal', missingDatabase: true },
    ]);
    const file = fleet.writeTenantsFile(tenants);
    const text = readFileSync(file, 'utf8');
    expect(text).toContain(`:${SECRET}@`);
    expect(text).toContain(':${TENANT_PW}@');

    const r = await fleet.cliJson<View>(['rollout', '--tenants', file, '--all', '--max-failures', '1', '--wait']);
    expect(r.code, why(r)).toBe(1);
    const t = new Map(r.json.tenants.map((x) => [x.id, x]));
    for (const id of ['lk-env', 'lk-env-schema', 'lk-literal']) expect(t.get(id), id).toMatchObject({ state: 'succeeded', applied: GUIDE_MIGRATIONS });
    expect(t.get('lk-missing')!.state).toBe('failed');
    expect(t.get('lk-missing')!.error).toContain('does not exist');
    const status = await fleet.cliJson<View>(['rollout', 'status', r.json.id]);
    expect(status.code, why(status)).toBe(0);

    const dump = await fleet.dumpRedis();
    expect(dump.keys.length).toBeGreaterThan(0);
    // the dump really holds job data and errors of this file's rollouts
    expect(dump.text).toContain('lk-missing');
    expect(dump.text).toContain('does not exist');
    expect(dump.text).not.toContain(SECRET);

    const logs = fleet.workerLogs();
    expect(logs).toContain('lk-literal');
    expect(logs).not.toContain(SECRET);

    const cli = fleet.cliOutputs.join('\n');
    expect(cli).toContain('lk-literal');
    expect(cli).not.toContain(SECRET);
  }, 300_000);
});
