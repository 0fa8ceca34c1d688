/**
 * Issue 12 §3: webhook notifications. A local HTTP receiver (node:http on a free port) records
 * what two real workers POST when rollouts succeed, halt and are cancelled: one event per state
 * change and target (with two workers, and with the CLI long gone: `rollout` without --wait), a
 * Slack-compatible `text`, retries with backoff when the receiver fails twice, no secret in the
 * body, the logs or the control database (a `${VAR}` target is resolved only by the worker that
 * sends). The config file's `notify` list applies when --notify is absent; bad targets exit 2.
 */
import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, SECRET, waitFor, why, type WorkerProcess } from '../helpers/fleet.js';
import { spawnWorker } from '../helpers/fleet-base.js';
import { freePort } from '../helpers/ops-redis-cluster.js';
import { scrape, total } from '../helpers/ops-prometheus.js';
import { migrationDir } from '../helpers/migrations.js';
import { redisUrl } from '../helpers/redis.js';
import { ControlStore } from '../../src/control/store.js';
import { startScheduledRollout } from '../../src/producer/schedule.js';
import { MIGRATE_QUEUE, openQueue } from '../../src/queue.js';

interface Received {
  path: string;
  at: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

/** Records every POST; `plan[path]` lists the statuses to answer, in order (then 200). */
class Receiver {
  readonly received: Received[] = [];
  readonly plan: Record<string, number[]> = {};
  private server!: Server;
  port = 0;
  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let raw = '';
      req.on('data', (d) => (raw += d));
      req.on('end', () => {
        const path = req.url ?? '/';
        this.received.push({ path, at: Date.now(), headers: req.headers, body: JSON.parse(raw) });
        res.writeHead(this.plan[path]?.shift() ?? 200).end('ok');
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as { port: number }).port;
  }
  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }
  at(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }
  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

const TOKEN_PATH = '/services/T000/B000/tok3nS3cr3t';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let fleet: Fleet;
let receiver: Receiver;
const metricsUrls: string[] = [];
const dir = migrationDir({ '001_a.sql': 'CREATE TABLE a (id int);\n' });

beforeAll(async () => {
  receiver = new Receiver();
  await receiver.start();
  fleet = await Fleet.create({ reconcileEvery: '1s', logLevel: 'info' });
  // the secret webhook URL lives only in the workers' environment; both serve metrics
  await Promise.all(
    [0, 1].map(async () => {
      const port = await freePort();
      const proc = spawnWorker({
        env: fleet.workerEnv({ HOOK_URL: receiver.url(TOKEN_PATH) }),
        concurrency: 2,
        args: ['--drain-timeout', '5s', '--metrics-port', String(port), '--metrics-host', '127.0.0.1'],
      });
      fleet.workers.push({ ...proc, id: await proc.started } as WorkerProcess);
      metricsUrls.push(`http://127.0.0.1:${port}/metrics`);
    }),
  );
}, 120_000);

/** The workers' delivery counters (summed) next to what the outbox records; every row is done by then. */
async function deliveryFigures() {
  const samples = (await Promise.all(metricsUrls.map(scrape))).map((x) => x.samples);
  const rows = (
    await fleet.controlQuery(
      `SELECT count(*) FILTER (WHERE sent_at IS NOT NULL)::int AS sent, count(*) FILTER (WHERE gave_up_at IS NOT NULL)::int AS given_up,
              (sum(attempts) - count(*) FILTER (WHERE sent_at IS NOT NULL OR gave_up_at IS NOT NULL))::int AS retrying,
              count(*) FILTER (WHERE sent_at IS NULL AND gave_up_at IS NULL)::int AS pending
         FROM flotilla.notifications`,
    )
  ).rows[0];
  const metrics = Object.fromEntries(['sent', 'retrying', 'given_up'].map((result) => [result, total(samples, 'flotilla_notifications_total', { result })]));
  return { metrics, rows };
}

afterAll(async () => {
  await fleet?.cleanup();
  await receiver?.close();
  dir.cleanup();
}, 120_000);

describe('notifications', { timeout: 120_000 }, () => {
  it('a succeeded rollout: one POST per target, sent by a worker after the CLI exited; the ${VAR} target resolved only there', async () => {
    // schema tenants but one (each database the fleet drops at the end costs a checkpoint)
    const tenants = await fleet.addTenants([
      { id: 'n-1', password: 'env' },
      { id: 'n-2', kind: 'schema' },
    ]);
    const r = await fleet.cliJson([
      'rollout',
      '--dir',
      dir.dir,
      '--tenants',
      fleet.writeTenantsFile(tenants),
      '--all',
      '--notify',
      receiver.url('/plain'),
      '--notify',
      '${HOOK_URL}',
    ]);
    expect(r.code, why(r)).toBe(0);
    const id = r.json.id as string;
    await waitFor('both targets notified', async () => receiver.at('/plain').length >= 1 && receiver.at(TOKEN_PATH).length >= 1, 60_000);
    await sleep(1500); // a second delivery would show up by now (two workers sweep every second)
    const plain = receiver.at('/plain');
    const hooked = receiver.at(TOKEN_PATH);
    expect(plain.length).toBe(1);
    expect(hooked.length).toBe(1);
    const body = plain[0]!.body;
    expect(plain[0]!.headers['content-type']).toBe('application/json');
    expect(body).toMatchObject({
      event: 'rollout.succeeded',
      rollout: { id, state: 'succeeded', previousState: 'running', counts: { succeeded: 2 }, total: 2, failedTenants: [], dryRun: false },
    });
    expect(body.text).toContain(`Flotilla rollout ${id}`);
    expect(body.text).toContain('succeeded');
    expect(body.text).toContain('2/2 tenants done');
    expect(hooked[0]!.body.rollout).toEqual(body.rollout);
    expect(hooked[0]!.body.eventId).not.toBe(body.eventId);

    // nothing secret anywhere: not in bodies, not in logs, not in the control database (the placeholder stays a placeholder)
    for (const x of receiver.received) expect(JSON.stringify(x.body)).not.toContain(SECRET);
    expect(fleet.workerLogs()).not.toContain('tok3nS3cr3t');
    expect(fleet.workerLogs()).toMatch(/notification sent/);
    const outbox = (await fleet.controlQuery(`SELECT event, target, attempts, sent_at FROM flotilla.notifications WHERE rollout_id = $1 ORDER BY id`, [id]))
      .rows;
    expect(outbox.map((o) => [o.event, o.target, o.attempts, !!o.sent_at])).toEqual([
      ['succeeded', receiver.url('/plain'), 1, true],
      ['succeeded', '${HOOK_URL}', 1, true],
    ]);
    expect(JSON.stringify(await fleet.controlQuery(`SELECT * FROM flotilla.notifications`).then((x) => x.rows))).not.toContain('tok3nS3cr3t');
  });

  it('a halted rollout, the receiver failing twice: retried with backoff, delivered once it answers 200, the same event each time', async () => {
    const tenants = await fleet.addTenants([
      { id: 'h-bad', kind: 'schema' },
      { id: 'h-2', kind: 'schema' },
      { id: 'h-3', kind: 'schema' },
    ]);
    const bad = fleet.tenant('h-bad');
    await bad.query(`CREATE SCHEMA ${bad.tableSchema}; CREATE TABLE ${bad.tableSchema}.a (id int)`);
    receiver.plan['/flaky'] = [500, 503];
    const r = await fleet.cliJson([
      'rollout',
      '--dir',
      dir.dir,
      '--tenants',
      fleet.writeTenantsFile(tenants),
      '--all',
      '--canary',
      '1',
      '--notify',
      receiver.url('/flaky'),
      '--wait',
    ]);
    expect(r.code, why(r)).toBe(1);
    expect(r.json.state).toBe('halted');
    await waitFor('the third delivery', async () => receiver.at('/flaky').length >= 3, 60_000);
    await sleep(1500);
    const got = receiver.at('/flaky');
    expect(got.length).toBe(3);
    expect(new Set(got.map((g) => g.body.eventId)).size).toBe(1);
    // backoff: about 1 s, then about 2 s (a sweep runs every second)
    expect(got[1]!.at - got[0]!.at).toBeGreaterThanOrEqual(900);
    expect(got[2]!.at - got[1]!.at).toBeGreaterThanOrEqual(1900);
    const body = got[2]!.body;
    expect(body.event).toBe('rollout.halted');
    expect(body.rollout).toMatchObject({
      id: r.json.id,
      state: 'halted',
      failedTenants: [{ id: 'h-bad', code: '42P07' }],
      counts: { failed: 1, cancelled: 2 },
    });
    expect(body.rollout.haltReason).toBe(r.json.haltReason);
    expect(body.text).toContain('halted');
    expect(body.text).toContain('h-bad (42P07)');
    expect(body.text).toContain(`flotilla rollout retry ${r.json.id}`);
    expect(fleet.workerLogs().match(/notification not delivered: will retry/g)?.length).toBe(2);
    const row = (await fleet.controlQuery(`SELECT attempts, sent_at, last_error FROM flotilla.notifications WHERE rollout_id = $1`, [r.json.id])).rows;
    expect(row).toEqual([{ attempts: 3, sent_at: expect.any(Date), last_error: null }]);

    // retry: the rollout runs again and ends in a new state: a new event (the old one is not sent again)
    await bad.query(`DROP TABLE ${bad.tableSchema}.a`);
    const retried = await fleet.cli(['rollout', 'retry', r.json.id, '--wait']);
    expect(retried.code, why(retried)).toBe(0);
    await waitFor('the succeeded event', async () => receiver.at('/flaky').some((g) => g.body.event === 'rollout.succeeded'), 60_000);
    await sleep(1500);
    expect(receiver.at('/flaky').map((g) => g.body.event)).toEqual(['rollout.halted', 'rollout.halted', 'rollout.halted', 'rollout.succeeded']);
    // the workers' metrics count the same deliveries as the outbox: two failed attempts so far, the rest sent
    const f = await deliveryFigures();
    expect(f.rows.pending).toBe(0);
    expect(f.metrics).toEqual({ sent: f.rows.sent, retrying: f.rows.retrying, given_up: f.rows.given_up });
    expect(f.metrics.retrying).toBe(2);
  });

  it('cancelled: notified by a worker; a 404 is given up at once; the config file list applies without --notify', async () => {
    const tenants = await fleet.addTenants([{ id: 'c-later', kind: 'schema', window: { cron: '0 3 1 1 *', durationMinutes: 1 } }]);
    const config = join(fleet.dir, 'notify.config.json');
    writeFileSync(config, JSON.stringify({ notify: [receiver.url('/from-config'), receiver.url('/gone')] }));
    receiver.plan['/gone'] = [404];
    const r = await fleet.cliJson(['rollout', '--config', config, '--dir', dir.dir, '--tenants', fleet.writeTenantsFile(tenants), '--all']);
    expect(r.code, why(r)).toBe(0);
    await waitFor('scheduled', async () => (await fleet.tenantStates(r.json.id)).get('c-later')?.state === 'scheduled');
    const c = await fleet.cli(['rollout', 'cancel', r.json.id]);
    expect(c.code, why(c)).toBe(0);
    await waitFor('the cancelled event', async () => receiver.at('/from-config').length >= 1 && receiver.at('/gone').length >= 1, 60_000);
    await sleep(1500);
    expect(receiver.at('/from-config').map((g) => g.body.event)).toEqual(['rollout.cancelled']);
    expect(receiver.at('/from-config')[0]!.body.rollout).toMatchObject({ state: 'cancelled', counts: { cancelled: 1 } });
    expect(receiver.at('/gone').length).toBe(1);
    const gone = (await fleet.controlQuery(`SELECT attempts, sent_at, gave_up_at, last_error FROM flotilla.notifications WHERE target LIKE '%/gone'`)).rows;
    expect(gone).toEqual([{ attempts: 1, sent_at: null, gave_up_at: expect.any(Date), last_error: 'HTTP 404' }]);
    const f = await deliveryFigures();
    expect(f.metrics).toEqual({ sent: f.rows.sent, retrying: f.rows.retrying, given_up: f.rows.given_up });
    expect(f.metrics.given_up).toBe(1);
    // --notify replaces the config's list
    const only = await fleet.cliJson([
      'rollout',
      '--config',
      config,
      '--dir',
      dir.dir,
      '--tenants',
      fleet.writeTenantsFile([fleet.tenant('n-1')]),
      '--only',
      'n-1',
      '--notify',
      receiver.url('/flag'),
    ]);
    expect(only.code, why(only)).toBe(0);
    await waitFor('the flag target', async () => receiver.at('/flag').length >= 1, 60_000);
    expect((await fleet.controlQuery(`SELECT target FROM flotilla.notifications WHERE rollout_id = $1`, [only.json.id])).rows).toEqual([
      { target: receiver.url('/flag') },
    ]);
  });

  it('a schedule keeps its targets (--notify, else the config file); the rollouts it starts notify', async () => {
    const [t] = await fleet.addTenants([{ id: 's-1', kind: 'schema', tags: ['ops-sched'] }]);
    const args = [
      'schedule',
      '--dir',
      dir.dir,
      '--name',
      'ops-nightly',
      '--cron',
      '0 3 * * *',
      '--tenants',
      fleet.writeTenantsFile([t!]),
      '--tag',
      'ops-sched',
    ];
    const bad = await fleet.cli([...args, '--notify', 'ftp://x.example/y']);
    expect(bad.code, why(bad)).toBe(2);
    const ok = await fleet.cli([...args, '--notify', receiver.url('/scheduled')]);
    expect(ok.code, why(ok)).toBe(0);
    const options = (await fleet.controlQuery(`SELECT options FROM flotilla.schedules WHERE name = 'ops-nightly'`)).rows[0].options;
    expect(options.notify).toEqual([receiver.url('/scheduled')]);
    // what the schedule's job does when its cron fires, run now
    const store = new ControlStore(fleet.control.url, { queuePrefix: fleet.prefix });
    const queue = openQueue(MIGRATE_QUEUE, { redisUrl: redisUrl(), prefix: fleet.prefix });
    try {
      const started = await startScheduledRollout(store, queue, 'ops-nightly', () => new Date());
      expect(started).toMatchObject({ rolloutId: expect.any(String) });
      const id = (started as { rolloutId: string }).rolloutId;
      await waitFor(
        'the scheduled rollout notified',
        async () => receiver.at('/scheduled').some((g) => g.body.rollout.id === id && g.body.event === 'rollout.succeeded'),
        50_000,
      );
    } finally {
      await queue.close();
      await store.close();
    }
  });

  it('bad targets are refused (exit 2) before anything is created, naming the target without its path', async () => {
    const file = fleet.writeTenantsFile([fleet.tenant('n-1')]);
    const before = (await fleet.controlQuery(`SELECT count(*)::int AS n FROM flotilla.rollouts`)).rows[0].n;
    for (const bad of ['', 'ftp://files.example.com/x', 'not a url']) {
      const r = await fleet.cli(['rollout', '--dir', dir.dir, '--tenants', file, '--all', '--notify', bad]);
      expect(r.code, `${bad}: ${why(r)}`).toBe(2);
      expect(r.stderr).toContain('--notify');
    }
    const config = join(fleet.dir, 'bad-notify.config.json');
    writeFileSync(config, JSON.stringify({ notify: ['https://hooks.example.com/secret-path-123', 'mailto:x@example.com'] }));
    const r = await fleet.cli(['rollout', '--config', config, '--dir', dir.dir, '--tenants', file, '--all']);
    expect(r.code, why(r)).toBe(2);
    expect(r.stderr).toContain('notify');
    expect(r.stderr).not.toContain('secret-path-123');
    expect((await fleet.controlQuery(`SELECT count(*)::int AS n FROM flotilla.rollouts`)).rows[0].n).toBe(before);
  });
});
