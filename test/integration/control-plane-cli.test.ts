/**
 * `rollout status` of a big rollout (a page in text, everything in --json,
 * --limit/--offset/--state), `rollouts`, and `rollouts prune` (never a
 * running rollout; --dry-run; bad input exit 2), on control rows created
 * directly: no tenant database, no worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlStore } from '../../src/control/store.js';
import { trustedMigrationSet } from '../../src/core/migration-set.js';
import { assignWaves, rolloutOptions, type RolloutOptions } from '../../src/core/rollout-plan.js';
import { createTestDatabase, dropAllTestDatabases, type TestDatabase } from '../helpers/db.js';
import { runCli } from '../helpers/cli.js';
import { redisUrl, testPrefix } from '../helpers/redis.js';

const ENGINE: RolloutOptions['engine'] = {
  trackingTable: 'migrations',
  lockTimeoutMs: 10_000,
  statementTimeoutMs: 60_000,
  validate: true,
  validation: {},
  singleTransaction: false,
};
let db: TestDatabase;
let store: ControlStore;
let prefix: string;
const SET = trustedMigrationSet([{ name: '001_x.sql', sql: 'SELECT 1' }]);
const OTHER_SET = trustedMigrationSet([{ name: '001_y.sql', sql: 'SELECT 2' }]);

beforeAll(async () => {
  db = await createTestDatabase('cpcli');
  prefix = testPrefix();
  store = new ControlStore(db.url, { queuePrefix: prefix });
  await store.migrate();
  await store.saveMigrationSet(SET);
  await store.saveMigrationSet(OTHER_SET);
}, 120_000);

afterAll(async () => {
  await store?.close();
  await dropAllTestDatabases();
});

const cli = (args: string[]) => runCli(args, { env: { CONTROL_DATABASE_URL: db.url, REDIS_URL: redisUrl(), FLOTILLA_QUEUE_PREFIX: prefix } });
async function cliJson(args: string[]) {
  const r = await cli([...args, '--json']);
  return { ...r, json: JSON.parse(r.stdout) };
}

async function rollout(id: string, n: number, set = SET): Promise<void> {
  const tenants = Array.from({ length: n }, (_, i) => ({ id: `${id}-${String(i).padStart(4, '0')}`, databaseUrl: `postgres://app@db:5432/t${i}`, tags: [] }));
  const { assignments, waveCount } = assignWaves(tenants, { count: 2 }, { percent: 50 });
  await store.createRollout({ id, setChecksum: set.checksum, options: rolloutOptions({}, n, false, ENGINE), waveCount, createdBy: 'test', assignments });
}

/** Finish a rollout as done `daysAgo` days ago (its tenants succeeded, one attempt each). */
async function finished(id: string, daysAgo: number, state = 'succeeded'): Promise<void> {
  await db.query(`UPDATE flotilla.rollout_tenants SET state = 'succeeded', finished_at = now() WHERE rollout_id = $1`, [id]);
  await db.query(
    `INSERT INTO flotilla.attempts (rollout_id, tenant_id, generation, attempt, kind, state) SELECT rollout_id, tenant_id, 0, 1, 'migrate', 'succeeded' FROM flotilla.rollout_tenants WHERE rollout_id = $1`,
    [id],
  );
  await db.query(
    `UPDATE flotilla.rollouts SET state = $2, finished_at = now() - make_interval(days => $3), created_at = now() - make_interval(days => $3 + 1) WHERE id = $1`,
    [id, state, daysAgo],
  );
}

describe('rollout status of a big rollout', () => {
  beforeAll(async () => {
    await rollout('big', 130);
    await db.query(`UPDATE flotilla.rollout_tenants SET state = 'failed', error = '{"message":"boom"}' WHERE rollout_id = 'big' AND position IN (7, 90)`);
  }, 60_000);

  it('text: the counts of all, per wave, and the first 50 tenants with a line saying how to see the rest', async () => {
    const r = await cli(['rollout', 'status', 'big']);
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => /^[✓✗⊘→○] big-/.test(l));
    expect(rows).toHaveLength(50);
    expect(rows[0]).toMatch(/^○ big-0000 /);
    expect(r.stdout).toContain('… showing 1-50 of 130 tenants (--limit 0 lists every one');
    expect(r.stdout).toContain('Total: 0 succeeded, 2 failed, 0 cancelled, 0 running, 128 waiting');
    expect(r.stdout).toMatch(/^ {5}1 {8}2 /m);
    expect(r.stdout).toMatch(/^ {5}2 {7}64 {10}0 {7}1 /m);
    expect(r.stdout).toMatch(/^ {5}3 {7}64 /m);
    // nothing measured, no limit: no lock-wait lines
    expect(r.stdout).not.toContain('Lock waits');
    expect(r.stdout).not.toContain('lock wait');
    const all = await cli(['rollout', 'status', 'big', '--limit', '0']);
    expect(all.stdout.split('\n').filter((l) => /^[✓✗⊘→○] big-/.test(l))).toHaveLength(130);
    expect(all.stdout).not.toContain('… showing');
  }, 60_000);

  it('--json lists every tenant unless asked for a page; --state and --offset narrow it', async () => {
    const all = await cliJson(['rollout', 'status', 'big']);
    expect(all.json.tenants).toHaveLength(130);
    expect(all.json.counts).toEqual({ pending: 128, scheduled: 0, running: 0, succeeded: 0, failed: 2, cancelled: 0 });
    expect(all.json.page).toEqual({ offset: 0, limit: null, states: null, matching: 130 });
    const page = await cliJson(['rollout', 'status', 'big', '--limit', '10', '--offset', '20']);
    expect(page.json.tenants.map((t: { id: string }) => t.id)).toEqual(Array.from({ length: 10 }, (_, i) => `big-${String(20 + i).padStart(4, '0')}`));
    const failed = await cliJson(['rollout', 'status', 'big', '--state', 'failed']);
    expect(failed.json.tenants.map((t: { id: string; error: string }) => [t.id, t.error])).toEqual([
      ['big-0007', 'boom'],
      ['big-0090', 'boom'],
    ]);
    expect(failed.json.page).toMatchObject({ states: ['failed'], matching: 2 });
  }, 60_000);

  it('bad --state, --limit or --offset: exit 2 naming the flag', async () => {
    for (const [args, flag] of [
      [['--state', 'broken'], '--state'],
      [['--state', ''], '--state'],
      [['--limit', '-1'], '--limit'],
      [['--offset', 'x'], '--offset'],
    ] as const) {
      const r = await cli(['rollout', 'status', 'big', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(flag);
    }
  }, 60_000);
});

describe('rollouts prune', () => {
  beforeAll(async () => {
    for (const [id, days] of [
      ['p-old-1', 100],
      ['p-old-2', 40],
      ['p-recent', 3],
    ] as const) {
      await rollout(id, 5);
      await finished(id, days);
    }
    // halted long ago: finished too
    await rollout('p-halted', 4);
    await finished('p-halted', 60, 'halted');
    // created long ago and still running; halted long ago but a tenant still runs (no end yet)
    await rollout('p-running', 3);
    await db.query(`UPDATE flotilla.rollouts SET created_at = now() - interval '200 days' WHERE id = 'p-running'`);
    await rollout('p-halting', 3);
    await db.query(
      `UPDATE flotilla.rollouts SET state = 'halted', created_at = now() - interval '200 days', finished_at = NULL WHERE id = 'p-halting';
       UPDATE flotilla.rollout_tenants SET state = 'running' WHERE rollout_id = 'p-halting'`,
    );
    // a frozen set used only by an old rollout goes with it; one a newer rollout shares stays
    await rollout('p-other-set', 2, OTHER_SET);
    await finished('p-other-set', 50);
  }, 60_000);

  it('bad or missing --older-than: exit 2, nothing removed', async () => {
    for (const args of [[], ['--older-than', 'soon'], ['--older-than', '']]) {
      const r = await cli(['rollouts', 'prune', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain('--older-than');
    }
    expect((await db.query(`SELECT count(*)::int AS n FROM flotilla.rollouts WHERE id LIKE 'p-%'`)).rows[0].n).toBe(7);
  }, 60_000);

  it('--dry-run says what would go and removes nothing', async () => {
    const r = await cli(['rollouts', 'prune', '--older-than', '30d', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Would remove 4 rollouts that finished before');
    for (const id of ['p-old-1', 'p-old-2', 'p-halted', 'p-other-set']) expect(r.stdout).toContain(id);
    expect(r.stdout).toContain('Total: 4 rollouts, 16 tenant rows, 16 attempts, 1 migration sets no longer used (dry run: nothing removed)');
    expect((await db.query(`SELECT count(*)::int AS n FROM flotilla.rollouts WHERE id LIKE 'p-%'`)).rows[0].n).toBe(7);
  }, 60_000);

  it('removes finished rollouts older than the limit with their tenants, attempts, counters and unused sets; never a running one', async () => {
    const r = await cliJson(['rollouts', 'prune', '--older-than', '30d']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.rollouts.map((x: { id: string }) => x.id).sort()).toEqual(['p-halted', 'p-old-1', 'p-old-2', 'p-other-set']);
    expect(r.json).toMatchObject({ dryRun: false, tenantRows: 16, attempts: 16, migrationSets: 1 });
    const left = await db.query(`SELECT id FROM flotilla.rollouts WHERE id LIKE 'p-%' ORDER BY id`);
    expect(left.rows.map((x) => x.id)).toEqual(['p-halting', 'p-recent', 'p-running']);
    for (const t of ['rollout_tenants', 'rollout_counts', 'attempts']) {
      const n = await db.query(`SELECT count(*)::int AS n FROM flotilla.${t} WHERE rollout_id IN ('p-old-1', 'p-old-2', 'p-halted', 'p-other-set')`);
      expect(n.rows[0].n, t).toBe(0);
    }
    const sets = await db.query(`SELECT checksum FROM flotilla.migration_sets`);
    expect(sets.rows.map((x) => x.checksum)).toEqual([SET.checksum]);
    const again = await cli(['rollouts', 'prune', '--older-than', '2w']);
    expect(again.stdout).toContain('nothing removed');
    const list = await cliJson(['rollouts', '--limit', '500']);
    expect(list.json.map((x: { id: string }) => x.id)).toContain('p-recent');
    expect(list.json.find((x: { id: string }) => x.id === 'p-recent').counts).toEqual({
      pending: 0,
      scheduled: 0,
      running: 0,
      succeeded: 5,
      failed: 0,
      cancelled: 0,
    });
  }, 60_000);
});
