/**
 * Fleet command implementations (loaded on demand: BullMQ and ioredis stay out
 * of the single-database commands' start-up). Settings beyond the engine's come from the environment:
 * REDIS_URL, CONTROL_DATABASE_URL (default DATABASE_URL), FLOTILLA_QUEUE_PREFIX.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { loadMigrationDir } from '../../adapters/fs-source.js';
import { ConfigError, ConnectionError, FlotillaError } from '../../core/errors.js';
import { redactUrl } from '../../core/redact.js';
import { tlsProblem } from '../../core/tls.js';
import { parseCanary, parseCountSpec } from '../../core/rollout-plan.js';
import { parseSelectorFlags, parseTenantRows, parseTenantsFile, scheduleProblems, selectTenants, tenantsWithLiteralPassword, type Tenant } from '../../core/tenants.js';
import { loadParser, splitStatements } from '../../core/statements.js';
import { ControlStore, type RolloutRow, type RolloutTenantRow, type TenantState } from '../../control/store.js';
import { createRollout } from '../../producer/rollout.js';
import { reconcile } from '../../producer/reconcile.js';
import { registerSchedule, scheduleJobId } from '../../producer/schedule.js';
import { CONTROL_QUEUE, DEFAULT_PREFIX, MIGRATE_QUEUE, openQueue, redisTls, type QueueSettings } from '../../queue.js';
import { retryAndEnqueue } from '../../producer/dispatcher.js';
import { startWorker } from '../../worker/worker.js';
import { parseDuration, type Config } from '../../config.js';
import { cliIdentity, type CommandContext } from './single.js';
import { prepareRetry, targetChangeNotices } from './frozen-checks.js';
import type { Output } from '../output.js';

class RolloutNotFoundError extends FlotillaError {
  readonly code = 'rollout_not_found';
  readonly kind = 'input';
  constructor(readonly rolloutId: string) {
    super(`no rollout with id ${rolloutId}`, 'List rollouts with `flotilla rollouts`.');
  }
}

export interface FleetSettings extends QueueSettings {
  controlUrl: string;
  /** how long a call to the control database keeps retrying through an outage (FLOTILLA_CONTROL_RETRY_FOR, default 90s) */
  controlRetryMs?: number;
  /** `--wait`: after this long without a worker taking a job, print a hint (FLOTILLA_WAIT_HINT_AFTER, default 30s) */
  waitHintMs?: number;
}

const FleetEnv = z.object({
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
    .refine((u) => URL.canParse(u), 'is not a valid URL (check the port; percent-encode special characters in the password)')
    .default('redis://127.0.0.1:6379'),
  CONTROL_DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .refine((u) => URL.canParse(u.replace(/\$\{[^}]*\}/g, 'x')), 'is not a valid URL (check the port; percent-encode special characters in the password)')
    .optional(),
  FLOTILLA_QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9{}_.-]{1,64}$/, 'letters, digits, {}_.- only')
    .default(DEFAULT_PREFIX),
  FLOTILLA_CONTROL_RETRY_FOR: z.string().refine((v) => parseDuration(v) !== undefined, 'is not a duration (90s, 2min)').optional(),
  FLOTILLA_WAIT_HINT_AFTER: z.string().refine((v) => parseDuration(v) !== undefined, 'is not a duration (30s, 1min)').optional(),
});

export function fleetSettings(config: Config, env: Record<string, string | undefined>): FleetSettings {
  const parsed = FleetEnv.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')));
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`));
  const controlUrl = parsed.data.CONTROL_DATABASE_URL ?? config.databaseUrl;
  if (!controlUrl) throw new ConfigError(['no control database: set CONTROL_DATABASE_URL (or DATABASE_URL)']);
  const d = parsed.data;
  return {
    redisUrl: d.REDIS_URL,
    prefix: d.FLOTILLA_QUEUE_PREFIX,
    controlUrl,
    controlRetryMs: d.FLOTILLA_CONTROL_RETRY_FOR === undefined ? undefined : parseDuration(d.FLOTILLA_CONTROL_RETRY_FOR),
    waitHintMs: d.FLOTILLA_WAIT_HINT_AFTER === undefined ? undefined : parseDuration(d.FLOTILLA_WAIT_HINT_AFTER),
  };
}

/** Fail fast and clearly when Redis is not there, instead of queueing commands forever. */
export async function checkRedis(url: string, timeoutMs = 5000): Promise<void> {
  const r = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
    ...redisTls(url),
  });
  // connect() only rejects with "Connection is closed."; the socket's own error (ECONNREFUSED, ...) arrives as an event
  let socketError: any;
  r.on('error', (e) => (socketError ??= e));
  try {
    await r.connect();
    await r.ping();
  } catch (e: any) {
    const u = new URL(url);
    const err = socketError ?? e;
    const reason = err?.code === 'ECONNREFUSED' ? 'connection refused' : String(err?.message ?? err);
    const tls = tlsProblem(err, { host: u.hostname, howToTrust: 'Set NODE_EXTRA_CA_CERTS=<CA file> for every flotilla process' });
    if (tls) throw new ConnectionError(`${u.hostname}:${u.port || 6379}`, tls.cause, tls.hint, 'input', undefined, 'Redis');
    throw new ConnectionError(
      `${u.hostname}:${u.port || 6379}`,
      `${reason}${err?.code ? ` (${err.code})` : ''}`,
      `Is Redis running? Check with: redis-cli -u ${redactUrl(url)} ping; and check REDIS_URL${u.protocol === 'rediss:' ? ' (rediss:// needs a TLS port)' : ' (a TLS-only server needs rediss://)'}.`,
      'transient',
      undefined,
      'Redis',
    );
  } finally {
    r.disconnect();
  }
}

async function openStore(settings: FleetSettings, out: Output): Promise<ControlStore> {
  // an outage of the control database is ridden out (pool.ts), said once on stderr, and once when it is over
  const store = new ControlStore(settings.controlUrl, {
    retry: {
      retryForMs: settings.controlRetryMs,
      down: (reason, ms) => out.error(`\n! control database unreachable (${reason}); retrying for up to ${Math.round(ms / 1000)} s`),
      up: (ms) => out.error(`✓ control database reachable again after ${(ms / 1000).toFixed(1)} s`),
    },
  });
  try {
    await store.migrate();
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}

/**
 * --tenants-query: one SELECT, refused before it runs when it is anything else
 * (several statements would all run: `SELECT ...; DELETE FROM tenants`), and run
 * in a READ ONLY transaction so a function it calls cannot write either.
 */
async function runTenantsQuery(store: ControlStore, sql: string): Promise<unknown[]> {
  await loadParser();
  const split = splitStatements(sql);
  if ('error' in split) throw new ConfigError([`--tenants-query: SQL syntax error at line ${split.error.line}: ${split.error.message}`]);
  const [first, ...rest] = split.statements;
  if (!first) throw new ConfigError(['--tenants-query: no SQL statement']);
  if (rest.length) throw new ConfigError([`--tenants-query: ${split.statements.length} statements; give exactly one SELECT (nothing was run)`]);
  const tree = JSON.stringify(first.node);
  if (first.kind !== 'SelectStmt' || /"(InsertStmt|UpdateStmt|DeleteStmt|MergeStmt|intoClause)"/.test(tree)) {
    throw new ConfigError([`--tenants-query: must be a single SELECT that only reads (got ${first.label}); nothing was run`]);
  }
  const client = await store.pool.connect();
  try {
    await client.query('BEGIN TRANSACTION READ ONLY');
    const r = await client.query(sql);
    await client.query('COMMIT');
    return r.rows;
  } catch (e: any) {
    await client.query('ROLLBACK').catch(() => {});
    throw new ConfigError([`--tenants-query: ${e.message}`]);
  } finally {
    client.release();
  }
}

/** Tenants from the file, the query or the registry; the store is needed only for the last two. */
async function loadTenants(o: { tenants?: string; tenantsQuery?: string; tag?: string[]; only?: string; all?: boolean }, store: ControlStore | undefined): Promise<Tenant[]> {
  let tenants: Tenant[];
  // empty values and a missing selector are refused here, before anything is read (promise 10)
  const { selection } = parseSelectorFlags(o);
  if (o.tenants) {
    let text: string;
    try {
      text = await readFile(o.tenants, 'utf8');
    } catch (e: any) {
      throw new ConfigError([`--tenants ${o.tenants}: ${e?.code === 'ENOENT' ? 'file not found' : e.message}`]);
    }
    tenants = parseTenantsFile(text, extname(o.tenants).toLowerCase() === '.json' ? 'json' : 'yaml', o.tenants);
  } else if (!store) {
    throw new Error('loadTenants: a control store is needed without --tenants');
  } else if (o.tenantsQuery) {
    tenants = parseTenantRows(await runTenantsQuery(store, o.tenantsQuery));
  } else {
    tenants = await store.registryTenants();
    if (!tenants.length) throw new ConfigError(['no tenants: pass --tenants <file> or --tenants-query <sql>']);
  }
  return selectTenants(tenants, selection);
}

function engineOptions(config: Config) {
  return {
    trackingTable: config.trackingTable,
    lockTimeoutMs: config.lockTimeout,
    statementTimeoutMs: config.statementTimeout,
    validate: config.validate,
    validation: config.validation,
    singleTransaction: config.singleTransaction,
  };
}

function intOption(flag: string, v: string | undefined, min = 1): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min) throw new ConfigError([`${flag}: "${v}" must be a whole number >= ${min}`]);
  return Number(v);
}

export interface RolloutView {
  id: string;
  state: RolloutRow['state'];
  haltReason: string | null;
  wave: number;
  waves: number;
  dryRun: boolean;
  createdAt: Date;
  finishedAt: Date | null;
  counts: Record<TenantState, number>;
  tenants: {
    id: string;
    state: TenantState;
    applied: string[];
    error: string | null;
    wave: number;
    attempts: number;
    durationMs: number | null;
    drift: boolean;
  }[];
}

export function rolloutView(r: RolloutRow, tenants: RolloutTenantRow[]): RolloutView {
  const counts: Record<TenantState, number> = { pending: 0, scheduled: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (const t of tenants) counts[t.state]++;
  return {
    id: r.id,
    state: r.state,
    haltReason: r.haltReason,
    wave: r.currentWave + 1,
    waves: r.waveCount,
    dryRun: r.options.dryRun,
    createdAt: r.createdAt,
    finishedAt: r.finishedAt,
    counts,
    tenants: tenants.map((t) => ({
      id: t.tenantId,
      state: t.state,
      applied: t.applied,
      wave: t.wave + 1,
      attempts: t.attempts,
      durationMs: t.durationMs,
      error: t.error ? String(t.error.message ?? JSON.stringify(t.error)) : null,
      drift: !!t.checks?.drift,
    })),
  };
}

function printRollout(out: Output, v: RolloutView): void {
  out.line(`Rollout ${v.id}: ${v.state}${v.haltReason ? ` (${v.haltReason})` : ''}${v.dryRun ? ' [dry run]' : ''} · wave ${v.wave}/${v.waves}`);
  out.line();
  const w = Math.max(6, ...v.tenants.map((t) => t.id.length));
  out.line(`  ${'tenant'.padEnd(w)}  ${'state'.padEnd(9)}  applied  duration  error`);
  for (const t of v.tenants) {
    const mark = t.state === 'succeeded' ? '✓' : t.state === 'failed' ? '✗' : t.state === 'cancelled' ? '⊘' : t.state === 'running' ? '→' : '○';
    const dur = t.durationMs === null ? '' : `${(t.durationMs / 1000).toFixed(2)} s`;
    out.line(
      `${mark} ${t.id.padEnd(w)}  ${t.state.padEnd(9)}  ${String(t.applied.length).padStart(7)}  ${dur.padStart(8)}  ${(t.error ?? '') + (t.drift ? ' (schema drift)' : '')}`.trimEnd(),
    );
  }
  out.line();
  out.line(
    `Total: ${v.counts.succeeded} succeeded, ${v.counts.failed} failed, ${v.counts.cancelled} cancelled, ${v.counts.running} running, ${v.counts.pending + v.counts.scheduled} waiting`,
  );
}

async function waitForRollout(store: ControlStore, id: string, out: Output, fleet: FleetSettings, intervalMs = 100): Promise<RolloutView> {
  const started = Date.now();
  const tty = !out.json && process.stderr.isTTY;
  let lastLine = '';
  let lastPrint = 0;
  // tenants handed out that no worker takes: say once where workers should be (and keep waiting)
  const hintAfter = fleet.waitHintMs ?? 30_000;
  let activity = '';
  let activityAt = Date.now();
  let hinted = false;
  for (;;) {
    const r = await store.getRollout(id);
    if (!r) throw new RolloutNotFoundError(id);
    const c = await store.counts(id);
    const total = Object.values(c).reduce((a, b) => a + b, 0);
    const done = c.succeeded + c.failed + c.cancelled;
    const finished = r.state !== 'running' && c.running === 0;
    const now = `${done}/${c.running}/${c.pending}`;
    if (now !== activity || c.running > 0 || c.pending === 0) [activity, activityAt, hinted] = [now, Date.now(), c.running > 0 ? false : hinted];
    else if (!hinted && !finished && Date.now() - activityAt >= hintAfter) {
      hinted = true;
      out.error(
        `${tty ? '\n' : ''}! no worker has taken a job of this rollout for ${Math.round((Date.now() - activityAt) / 1000)} s. Is \`flotilla worker\` running against this Redis (${redactUrl(fleet.redisUrl)}) and prefix (FLOTILLA_QUEUE_PREFIX=${fleet.prefix})? Still waiting.`,
      );
    }
    if (!out.json) {
      const elapsed = (Date.now() - started) / 1000;
      const eta = done > 0 && done < total ? ` · ETA ${Math.ceil((elapsed / done) * (total - done))} s` : '';
      const width = 24;
      const bar = '#'.repeat(Math.round((done / Math.max(1, total)) * width)).padEnd(width, '.');
      const line = `[${bar}] ${done}/${total} done · ${c.failed} failed · ${c.running} running · ${total - done - c.running} remaining${eta}`;
      if (tty) process.stderr.write(`\r${line}\x1b[K`);
      else if (line !== lastLine && (Date.now() - lastPrint > 5000 || finished)) {
        out.error(line);
        lastPrint = Date.now();
      }
      lastLine = line;
    }
    if (finished) {
      if (tty) process.stderr.write('\n');
      return rolloutView((await store.getRollout(id))!, await store.rolloutTenants(id));
    }
    await new Promise((res) => setTimeout(res, intervalMs));
  }
}

async function withStore<T>(ctx: CommandContext, fn: (store: ControlStore, fleet: FleetSettings) => Promise<T>): Promise<T> {
  const fleet = fleetSettings(ctx.config, process.env);
  const store = await openStore(fleet, ctx.out);
  try {
    return await fn(store, fleet);
  } finally {
    await store.close();
  }
}

export async function rolloutCreate(ctx: CommandContext, o: Record<string, any>, env: Record<string, string | undefined> = process.env): Promise<number> {
  const fleet = fleetSettings(ctx.config, env);
  parseSelectorFlags(o);
  const set = await loadMigrationDir(ctx.config.dir);
  // an empty value (an unset shell variable) is refused, not read as "no canary, every tenant at once"
  const canary = o.canary !== undefined ? parseCanary(o.canary) : undefined;
  const waveSize = o.waveSize !== undefined ? parseCountSpec('--wave-size', o.waveSize) : undefined;
  if (waveSize && ('count' in waveSize ? waveSize.count : waveSize.percent) < 1) throw new ConfigError([`--wave-size: "${o.waveSize}" must be at least 1 (or 1%)`]);
  const maxFailures = o.maxFailures !== undefined ? parseCountSpec('--max-failures', o.maxFailures) : undefined;
  const concurrency = intOption('--concurrency', o.concurrency);
  const perServer = intOption('--per-server', o.perServer);
  // a bad tenants file is refused before anything is touched (control schema, Redis)
  const fromFile = o.tenants ? await loadTenants(o, undefined) : undefined;
  await checkRedis(fleet.redisUrl);
  const store = await openStore(fleet, ctx.out);
  let queue: ReturnType<typeof openQueue> | undefined;
  try {
    const tenants = fromFile ?? (await loadTenants(o, store));
    warnLiteralPasswords(ctx.out, tenants);
    // only now: opening a queue writes to Redis, and a refused selection must leave nothing there
    queue = openQueue(MIGRATE_QUEUE, fleet);
    const created = await createRollout(store, queue, {
      tenants,
      set,
      canary,
      waveSize,
      maxFailures,
      concurrency,
      perServer,
      dryRun: !!o.dryRun,
      engine: engineOptions(ctx.config),
      createdBy: cliIdentity(),
    });
    ctx.logger.info({ rolloutId: created.id, tenants: created.tenants, waves: created.waves, enqueueMs: created.enqueueMs }, 'rollout created');
    if (!o.wait) {
      const view = rolloutView((await store.getRollout(created.id))!, await store.rolloutTenants(created.id));
      if (ctx.out.json) ctx.out.data(view);
      else
        ctx.out.line(
          `Rollout ${created.id} created: ${created.tenants} tenants in ${created.waves} wave${created.waves > 1 ? 's' : ''}. Follow it with: flotilla rollout status ${created.id}`,
        );
      return 0;
    }
    if (!ctx.out.json) ctx.out.line(`Rollout ${created.id}: ${created.tenants} tenants in ${created.waves} wave${created.waves > 1 ? 's' : ''}`);
    const view = await waitForRollout(store, created.id, ctx.out, fleet);
    if (ctx.out.json) ctx.out.data(view);
    else printRollout(ctx.out, view);
    return view.counts.succeeded === view.tenants.length ? 0 : 1;
  } finally {
    await queue?.close().catch(() => {});
    await store.close();
  }
}

/** Said on stderr, never with the password: where it ends up, and the placeholder to use instead. */
function warnLiteralPasswords(out: Output, tenants: readonly Tenant[]): void {
  const ids = tenantsWithLiteralPassword(tenants);
  if (!ids.length) return;
  const shown = ids.length > 5 ? `${ids.slice(0, 5).join(', ')} and ${ids.length - 5} more` : ids.join(', ');
  out.error(
    `⚠ the database URL of tenant${ids.length > 1 ? 's' : ''} ${shown} holds a literal password: it is stored as written in the control database (workers read their targets there), though never printed or put in Redis. ` +
      'Write a placeholder instead, e.g. postgres://app:${ACME_PW}@db-1:5432/acme, and set ACME_PW in the workers\' environment.',
  );
}

export async function rolloutStatus(ctx: CommandContext, id: string): Promise<number> {
  return withStore(ctx, async (store) => {
    const r = await store.getRollout(id);
    if (!r) throw new RolloutNotFoundError(id);
    const view = rolloutView(r, await store.rolloutTenants(id));
    if (ctx.out.json) ctx.out.data(view);
    else printRollout(ctx.out, view);
    return 0;
  });
}

export async function rolloutRetry(ctx: CommandContext, id: string, o: { wait?: boolean; refresh?: boolean }): Promise<number> {
  return withStore(ctx, async (store, fleet) => {
    // an unknown id is refused before Redis is touched
    const rollout = await store.getRollout(id);
    if (!rollout) throw new RolloutNotFoundError(id);
    await checkRedis(fleet.redisUrl);
    // the frozen targets and set run again: say when the registry or the files on disk moved on
    const prepared = await prepareRetry(store, rollout, ctx.config.dir, !!o.refresh);
    const queue = openQueue(MIGRATE_QUEUE, fleet);
    try {
      const r = await retryAndEnqueue(store, queue, id, new Date(), prepared.refresh);
      for (const n of prepared.notices) ctx.out.error(`! ${n}`);
      if (!r) throw new RolloutNotFoundError(id);
      if (!o.wait) {
        const view = rolloutView((await store.getRollout(id))!, await store.rolloutTenants(id));
        if (ctx.out.json) ctx.out.data({ ...view, notices: prepared.notices });
        else ctx.out.line(`Rollout ${id}: ${r.retried} tenant${r.retried === 1 ? '' : 's'} re-enqueued`);
        return 0;
      }
      const view = await waitForRollout(store, id, ctx.out, fleet);
      if (ctx.out.json) ctx.out.data({ ...view, notices: prepared.notices });
      else printRollout(ctx.out, view);
      return view.counts.succeeded === view.tenants.length ? 0 : 1;
    } finally {
      await queue.close().catch(() => {});
    }
  });
}

export async function rolloutCancel(ctx: CommandContext, id: string): Promise<number> {
  return withStore(ctx, async (store) => {
    const r = await store.cancel(id, `cancelled by ${cliIdentity()}`);
    if (!r) throw new RolloutNotFoundError(id);
    const view = rolloutView(r, await store.rolloutTenants(id));
    if (ctx.out.json) ctx.out.data(view);
    else ctx.out.line(`Rollout ${id}: ${r.state}; ${view.counts.cancelled} tenants cancelled, ${view.counts.running} still running`);
    return 0;
  });
}

export async function rolloutResume(ctx: CommandContext, id: string, o: { wait?: boolean } = {}): Promise<number> {
  return withStore(ctx, async (store, fleet) => {
    if (!(await store.getRollout(id))) throw new RolloutNotFoundError(id);
    await checkRedis(fleet.redisUrl);
    const notices = await targetChangeNotices(store, id);
    for (const n of notices) ctx.out.error(`! ${n}`);
    const queue = openQueue(MIGRATE_QUEUE, fleet);
    try {
      const r = await reconcile(store, queue, () => new Date(), id);
      if (!o.wait) {
        if (ctx.out.json) ctx.out.data({ id, ...r, notices });
        else ctx.out.line(`Rollout ${id}: ${r.recreated} jobs re-created, ${r.dispatched} dispatched`);
        return 0;
      }
      if (!ctx.out.json) ctx.out.line(`Rollout ${id}: ${r.recreated} jobs re-created, ${r.dispatched} dispatched; waiting for the end`);
      const view = await waitForRollout(store, id, ctx.out, fleet);
      if (ctx.out.json) ctx.out.data({ ...view, resume: r, notices });
      else printRollout(ctx.out, view);
      return view.counts.succeeded === view.tenants.length ? 0 : 1;
    } finally {
      await queue.close().catch(() => {});
    }
  });
}

export async function rolloutsList(ctx: CommandContext, o: { limit?: string }): Promise<number> {
  return withStore(ctx, async (store) => {
    const list = await store.listRollouts(intOption('--limit', o.limit) ?? 20);
    if (ctx.out.json) ctx.out.data(list);
    else {
      for (const r of list) {
        const c = r.counts;
        ctx.out.line(
          `${r.id}  ${r.state.padEnd(9)}  ${c.succeeded} succeeded, ${c.failed} failed, ${c.cancelled} cancelled, ${c.running + c.pending + c.scheduled} open  ${r.createdAt.toISOString()}`,
        );
      }
      if (!list.length) ctx.out.line('No rollouts yet.');
    }
    return 0;
  });
}

export async function scheduleAdd(ctx: CommandContext, o: Record<string, any>): Promise<number> {
  const problems: string[] = [];
  if (!o.name || !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(o.name)) problems.push('--name: required, a slug (a-z, 0-9, _ and -)');
  // every problem at once, before anything is opened or saved: name, cron and zone, then the selection
  problems.push(...scheduleProblems(o.cron, o.tz));
  if (problems.length) throw new ConfigError(problems);
  const { selection } = parseSelectorFlags({ tenants: o.tenants, tag: o.tag, all: o.all });
  const maxFailures = o.maxFailures !== undefined ? parseCountSpec('--max-failures', o.maxFailures) : undefined;
  const concurrency = intOption('--concurrency', o.concurrency) ?? null;
  const perServer = intOption('--per-server', o.perServer) ?? null;
  return withStore(ctx, async (store, fleet) => {
    await checkRedis(fleet.redisUrl);
    const set = await loadMigrationDir(ctx.config.dir);
    const registering = o.tenants ? await loadTenants({ tenants: o.tenants, all: true }, store) : [];
    // the selection must match tenants of the registry as it will be once the file is registered
    const registered = new Map((await store.registryTenants()).map((t) => [t.id, t]));
    for (const t of registering) registered.set(t.id, t);
    selectTenants([...registered.values()], selection);
    warnLiteralPasswords(ctx.out, registering);
    await store.upsertTenants(registering);
    await store.saveMigrationSet(set);
    await store.saveSchedule({
      name: o.name,
      cron: o.cron,
      tz: o.tz,
      setChecksum: set.checksum,
      selection,
      options: {
        canary: false,
        maxFailures: maxFailures && 'count' in maxFailures ? maxFailures.count : 0,
        concurrency,
        perServer,
        dryRun: false,
        engine: engineOptions(ctx.config),
      },
    });
    const control = openQueue(CONTROL_QUEUE, fleet);
    try {
      await registerSchedule(control, { name: o.name, cron: o.cron, tz: o.tz });
    } finally {
      await control.close();
    }
    if (ctx.out.json) ctx.out.data({ name: o.name, cron: o.cron, tz: o.tz, setChecksum: set.checksum });
    else ctx.out.line(`Schedule ${o.name}: "${o.cron}" (${o.tz}) starts a rollout of ${set.migrations.length} migrations`);
    return 0;
  });
}

export async function scheduleList(ctx: CommandContext): Promise<number> {
  return withStore(ctx, async (store) => {
    const list = await store.listSchedules();
    if (ctx.out.json) ctx.out.data(list);
    else for (const s of list) ctx.out.line(`${s.name}  "${s.cron}" (${s.tz})  set ${s.setChecksum.slice(0, 12)}`);
    return 0;
  });
}

export async function scheduleRemove(ctx: CommandContext, name: string): Promise<number> {
  return withStore(ctx, async (store, fleet) => {
    const removed = await store.deleteSchedule(name);
    const control = openQueue(CONTROL_QUEUE, fleet);
    try {
      await control.removeJobScheduler(scheduleJobId(name));
    } finally {
      await control.close();
    }
    if (!removed) throw new ConfigError([`no schedule named ${name}`]);
    ctx.out.line(`Schedule ${name} removed`);
    return 0;
  });
}

export async function workerRun(ctx: CommandContext, o: Record<string, any>, env: Record<string, string | undefined> = process.env): Promise<number> {
  const fleet = fleetSettings(ctx.config, env);
  await checkRedis(fleet.redisUrl);
  const drain = parseDuration(o.drainTimeout);
  if (drain === undefined) throw new ConfigError([`--drain-timeout: "${o.drainTimeout}" is not a duration`]);
  const worker = await startWorker(
    {
      ...fleet,
      concurrency: intOption('--concurrency', o.concurrency) ?? 2,
      lockDurationMs: parseDuration(env.FLOTILLA_JOB_LOCK_DURATION ?? '30s') ?? 30_000,
      reconcileEveryMs: parseDuration(env.FLOTILLA_RECONCILE_EVERY ?? '5s') ?? 5000,
      drainTimeoutMs: drain,
      controlRetryMs: fleet.controlRetryMs,
    },
    ctx.logger,
  );
  if (!ctx.out.json) ctx.out.error(`worker ${worker.id} started (Ctrl-C to drain and stop)`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await worker.close();
  // abandoned jobs (drain timeout) may still hold tenant connections: do not let them keep the process alive
  setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref();
  return 0;
}
