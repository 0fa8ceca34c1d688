/**
 * The chaos run (`npm run chaos`, and a small configuration in CI): a real
 * rollout over N tenants with W worker processes while things go wrong on
 * purpose, then a verdict read from the databases themselves.
 *
 * During the rollout: a random worker SIGKILLed every few seconds (and
 * replaced), the private Redis restarted (SAVE + SIGKILL + start on the same
 * port), Redis FLUSHALLed then `flotilla rollout resume` (twice: idempotent),
 * tenant databases refusing connections for a while (ALLOW_CONNECTIONS false,
 * backends terminated), the control database refusing connections the same
 * way (the workers and `rollout --wait` must ride it out), a tenant holding ACCESS EXCLUSIVE on a table the
 * migrations need (so lock_timeout fires), and `flotilla pending` run on a few
 * tenants at the same time as the workers. Tenants that exhausted their
 * attempts get `flotilla rollout retry`.
 *
 * The phases, one file each: setup.ts, rollout.ts (with events.ts),
 * recover.ts, then the verdict (verify.ts) and the cleanup here.
 */
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliIdentity } from '../../src/cli/commands/single.js';
import { ChaosRun, qi, sleep } from './context.js';
import { CHAOS_MIGRATIONS, DEFAULT_CHAOS_OPTIONS, type ChaosOptions, type ChaosReport } from './options.js';
import { drainWorkers, retryExhausted } from './recover.js';
import { driveRollout, type FirstPass } from './rollout.js';
import { setUp, type ChaosSetup } from './setup.js';
import { verifyFleet } from './verify.js';

export { CHAOS_MIGRATIONS, DEFAULT_CHAOS_OPTIONS, type ChaosFigures, type ChaosOptions, type ChaosReport } from './options.js';
export { formatChaosReport } from './report.js';

export async function runChaos(input: Partial<ChaosOptions> & { adminUrl: string }): Promise<ChaosReport> {
  const o: ChaosOptions = {
    ...DEFAULT_CHAOS_OPTIONS,
    prefix: `flotilla_chaos${randomBytes(3).toString('hex')}`,
    schemaTenants: Math.round((input.tenants ?? DEFAULT_CHAOS_OPTIONS.tenants) * 0.2),
    ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)),
  } as ChaosOptions;
  if (o.schemaTenants > o.tenants) throw new Error('--schema-tenants is more than --tenants');
  const run = new ChaosRun(o);
  const { violations, figures, stop } = run;

  // stop: timeout, the caller's signal (SIGINT), or the end of the run
  const timer = setTimeout(() => {
    figures.timedOut = true;
    violations.push(`timeout: the run did not finish within ${Math.round(o.timeoutMs / 1000)} s`);
    stop.abort();
  }, o.timeoutMs);
  const onAbort = () => {
    violations.push('interrupted');
    stop.abort();
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.signal?.aborted) onAbort();

  const body = async (): Promise<void> => {
    const setup = await setUp(run);
    if (!setup || run.aborted) return;
    const first = await driveRollout(run, setup);
    if (!first) return;
    await retryExhausted(run, first);
    await drainWorkers(run, setup.redis.url);
    await verdict(run, setup, first);
  };

  const aborted = new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true }));
  const running = body().catch((e) => {
    if (!stop.signal.aborted) violations.push(`run failed: ${(e as Error).stack ?? e}`);
  });
  await Promise.race([running, aborted]);
  clearTimeout(timer);
  o.signal?.removeEventListener('abort', onAbort);
  await cleanUp(run);
  // let the body notice the cleanup (its children are gone) before returning
  await Promise.race([running, sleep(5000)]);
  figures.seconds.total = (performance.now() - run.t0) / 1000;
  const { log: _log, signal: _signal, adminUrl: _admin, ...shown } = o;
  return { ok: violations.length === 0, violations, figures, options: shown };
}

/** The verdict, from the databases (verify.ts), plus evidence that the chaos bit. */
async function verdict(run: ChaosRun, setup: ChaosSetup, { watch }: FirstPass): Promise<void> {
  const { figures } = run;
  const verifyStarted = performance.now();
  const workerIds = new Set(run.workers.map((w) => w.id()).filter((x): x is string => !!x));
  const shared = setup.fleet.tenants.filter((t) => t.schema).map((t) => ({ url: t.url, database: t.database }));
  const result = await verifyFleet({
    tenants: setup.order.map((t) => ({ id: t.id, url: t.url, database: t.database, ...(t.schema ? { schema: t.schema } : {}) })),
    set: setup.set,
    counted: Object.keys(CHAOS_MIGRATIONS),
    referenceUrl: setup.referenceUrl,
    sharedDatabases: shared.length ? [shared[0]!] : [],
    controlUrl: setup.fleet.controlUrl,
    rolloutId: watch.id,
    workerIds,
    cliAppliedBy: cliIdentity(),
    cliTenants: setup.cliTenants,
  });
  run.violations.push(...result.violations);
  figures.verify = result.figures;
  // evidence that the chaos bit: failed attempts of refused tenants, lock timeouts of the lock-hold tenant
  const errs = (await setup.control.query(`SELECT tenant_id, error FROM flotilla.attempts WHERE rollout_id = $1 AND error IS NOT NULL`, [watch.id])).rows;
  for (const r of figures.refusals) r.failedAttempts = errs.filter((e) => e.tenant_id === r.tenant).length;
  for (const h of figures.lockHolds) h.lockTimeouts = errs.filter((e) => e.tenant_id === h.tenant && e.error?.pg?.code === '55P03').length;
  figures.seconds.verify = (performance.now() - verifyStarted) / 1000;
}

/** Stop everything this run started, allow connections again, drop its databases (unless --keep). */
async function cleanUp(run: ChaosRun): Promise<void> {
  const { o, dir } = run;
  run.stop.abort();
  for (const c of run.children) c.kill('SIGKILL');
  await Promise.all(
    run.workers.map(async (w) => {
      w.stopping = true;
      await w.proc.stop('SIGKILL');
    }),
  );
  for (const c of run.lockClients) await c.end().catch(() => {});
  await run.control?.end().catch(() => {});
  for (const db of run.refused) await run.admin((c) => c.query(`ALTER DATABASE ${qi(db)} ALLOW_CONNECTIONS true`)).catch(() => {});
  await run.redis?.stop().catch(() => {});
  if (!o.keep) {
    if (run.referenceCreated) await run.admin((c) => c.query(`DROP DATABASE IF EXISTS ${qi(run.referenceDb)} WITH (FORCE)`)).catch(() => {});
    await run.fleet?.drop().catch((e) => run.violations.push(`cleanup: ${(e as Error).message}`));
    rmSync(dir, { recursive: true, force: true });
  } else {
    for (const w of run.workers) writeFileSync(join(dir, `worker-${w.n}.log`), w.proc.output());
    run.log(`--keep: databases ${o.prefix}_* and ${dir} (tenants file, migrations, worker logs) left in place`);
  }
}
