/**
 * The chaos events of a run, and what they look at: a RolloutWatch (the
 * rollout's tenant states read from the control database, and which events
 * have fired). Before the rollout starts, tenants' tables are locked; while it
 * runs, `driveRollout` calls `chaosTick` every 250 ms: workers are SIGKILLed
 * and replaced, tenants and the control database refuse connections for a
 * while, `flotilla pending` runs beside the workers, Redis is restarted and
 * FLUSHALLed (then `rollout resume`). Each event fires at a point of progress,
 * only mid-rollout, and its figures say when and what it did.
 */
import pg from 'pg';
import type { FleetTenantInfo } from '../../test/helpers/fleet-base.js';
import { qi, sleep, type ChaosRun } from './context.js';
import { LOCKED_TABLE } from './options.js';
import type { ChaosSetup } from './setup.js';

interface TenantRow {
  tenant_id: string;
  state: string;
  position: number;
}

export class RolloutWatch {
  lastKill = performance.now();
  refusalsFired = 0;
  restartsFired = 0;
  flushesFired = 0;
  cliFired = false;
  outagesFired = 0;
  controlDown = false;
  readonly controlDb: string;
  state: { done: number; total: number; running: number; rolloutState: string; rows: TenantRow[] };

  constructor(
    readonly run: ChaosRun,
    readonly setup: ChaosSetup,
    readonly id: string,
    /** set once `rollout --wait` returned */
    readonly producer: { done: boolean },
  ) {
    this.controlDb = new URL(setup.fleet.controlUrl).pathname.slice(1);
    this.state = { done: 0, total: run.o.tenants, running: 0, rolloutState: 'running', rows: [] };
  }

  progress(): string {
    return `${this.state.done}/${this.state.total} done`;
  }

  async readState(): Promise<void> {
    const control = this.setup.control;
    const rows = (await control.query(`SELECT tenant_id, state, position FROM flotilla.rollout_tenants WHERE rollout_id = $1 ORDER BY position`, [this.id]))
      .rows as TenantRow[];
    const r = (await control.query(`SELECT state FROM flotilla.rollouts WHERE id = $1`, [this.id])).rows[0];
    this.state = {
      rows,
      total: rows.length,
      done: rows.filter((x) => ['succeeded', 'failed', 'cancelled'].includes(x.state)).length,
      running: rows.filter((x) => x.state === 'running').length,
      rolloutState: r?.state ?? '?',
    };
  }

  midRollout(): boolean {
    return this.state.rolloutState === 'running' && this.state.done < this.state.total && !this.producer.done;
  }

  /** Tenants in one of `states` that no event is aimed at yet. */
  candidates(filter: (t: FleetTenantInfo) => boolean, states: string[]): FleetTenantInfo[] {
    const { busy, byId } = this.setup;
    return this.state.rows
      .filter((x) => states.includes(x.state) && !busy.has(x.tenant_id) && filter(byId.get(x.tenant_id)!))
      .map((x) => byId.get(x.tenant_id)!);
  }
}

/**
 * ACCESS EXCLUSIVE on the table, from before the rollout starts until lockHoldMs after it started and the tenant's
 * lock_timeout fired at least once (at most a minute more). `rolloutId` resolves once the rollout exists.
 */
export async function holdLocks(run: ChaosRun, setup: ChaosSetup, rolloutId: Promise<string>): Promise<void> {
  const { o, figures } = run;
  for (const t of setup.lockTenants) {
    const c = new pg.Client({ connectionString: t.url, application_name: 'flotilla-chaos-lock-holder' });
    c.on('error', () => {});
    await c.connect();
    run.lockClients.push(c);
    await c.query(`BEGIN; LOCK TABLE ${qi(t.schema ?? 'public')}.${qi(LOCKED_TABLE)} IN ACCESS EXCLUSIVE MODE`);
    const hold = { tenant: t.id, table: `${t.schema ?? 'public'}.${LOCKED_TABLE}`, ms: o.lockHoldMs, lockTimeouts: 0 };
    figures.lockHolds.push(hold);
    run.log(`lock hold: ${t.id} ACCESS EXCLUSIVE on ${hold.table} for ${o.lockHoldMs / 1000} s`);
    run.task(`lock hold ${t.id}`, async () => {
      const id = await Promise.race([rolloutId, sleep(o.timeoutMs, run.stop.signal).then(() => '')]);
      const until = performance.now() + o.lockHoldMs;
      await sleep(o.lockHoldMs, run.stop.signal);
      while (!run.aborted && id && performance.now() < until + 60_000) {
        const r = await setup.control
          .query(`SELECT count(*)::int AS n FROM flotilla.attempts WHERE rollout_id = $1 AND tenant_id = $2 AND error->'pg'->>'code' = '55P03'`, [id, t.id])
          .catch(() => ({ rows: [{ n: 0 }] }));
        if (r.rows[0].n > 0) break;
        await sleep(250, run.stop.signal);
      }
      hold.ms = Math.round(performance.now() - until + o.lockHoldMs);
      await c.query('ROLLBACK').catch(() => {});
      await c.end().catch(() => {});
      run.log(`lock hold: ${t.id} released after ${(hold.ms / 1000).toFixed(1)} s`);
    });
  }
}

/** One look at the rollout and the events due at its progress, in this order. */
export async function chaosTick(w: RolloutWatch): Promise<void> {
  await w.readState().catch(() => {});
  const p = w.state.total ? w.state.done / w.state.total : 0;
  await keepWorkersKillOne(w);
  await refuseTenant(w, p);
  await controlOutage(w, p);
  concurrentCli(w, p);
  await restartRedis(w, p);
  await flushRedis(w, p);
}

/** Keep W workers; SIGKILL a random ready one every killEveryMs and start a replacement. */
async function keepWorkersKillOne(w: RolloutWatch): Promise<void> {
  const { run } = w;
  const { o, figures } = run;
  const live = run.workers.filter((x) => run.alive(x));
  for (let i = live.length; i < o.workers; i++) run.startWorker();
  if (o.killEveryMs > 0 && figures.kills < o.maxKills && w.midRollout() && performance.now() - w.lastKill >= o.killEveryMs) {
    const ready = live.filter((x) => x.ready);
    if (ready.length) {
      w.lastKill = performance.now();
      const victim = run.pick(ready);
      const wid = victim.id();
      // pg_stat_activity through the admin connection: the control database may be refusing connections
      const active = wid
        ? Number(
            (
              await run.admin((c) =>
                c.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'`, [`flotilla-worker ${wid}`]),
              )
            ).rows[0].n,
          )
        : 0;
      victim.killed = true;
      await victim.proc.stop('SIGKILL');
      figures.kills++;
      if (active > 0) figures.killsMidMigration++;
      run.log(`kill: SIGKILL worker #${victim.n} (${active} tenant transaction${active === 1 ? '' : 's'} open) at ${w.progress()}; starting a replacement`);
      run.startWorker();
    }
  }
}

/** Refused connections: a database tenant a worker is on right now (re-checked: the snapshot may be stale). */
async function refuseTenant(w: RolloutWatch, p: number): Promise<void> {
  const { run, setup } = w;
  const { o, figures } = run;
  if (w.refusalsFired < o.refusalWindowsMs.length && w.midRollout() && w.state.running > 0 && p >= w.refusalsFired * 0.15) {
    const running = w.candidates((t) => !t.schema, ['running']);
    const target = running.length ? run.pick(running) : undefined;
    const still =
      target &&
      !w.controlDown &&
      (
        await setup.control
          .query(`SELECT state FROM flotilla.rollout_tenants WHERE rollout_id = $1 AND tenant_id = $2`, [w.id, target.id])
          .catch(() => ({ rows: [] }))
      ).rows[0]?.state === 'running';
    if (target && still) {
      const ms = o.refusalWindowsMs[w.refusalsFired]!;
      w.refusalsFired++;
      setup.busy.add(target.id);
      const entry = { tenant: target.id, ms, atProgress: w.progress(), failedAttempts: 0 };
      figures.refusals.push(entry);
      run.refused.add(target.database);
      const killed = await run.admin(async (c) => {
        await c.query(`ALTER DATABASE ${qi(target.database)} ALLOW_CONNECTIONS false`);
        const r = await c.query(`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [
          target.database,
        ]);
        return r.rows[0].n as number;
      });
      run.log(`refuse: ${target.id} refuses connections for ${ms / 1000} s (${killed} backends terminated) at ${w.progress()}`);
      run.task(`refusal ${target.id}`, async () => {
        await sleep(ms, run.stop.signal);
        await run.admin((c) => c.query(`ALTER DATABASE ${qi(target.database)} ALLOW_CONNECTIONS true`));
        run.refused.delete(target.database);
        run.log(`refuse: ${target.id} accepts connections again`);
      });
    }
  }
}

/**
 * The control database refuses connections (and its backends are terminated) for a while: the workers and
 * `rollout --wait` must wait for it, and the rollout finish correctly afterwards.
 */
async function controlOutage(w: RolloutWatch, p: number): Promise<void> {
  const { run } = w;
  const { o, figures } = run;
  const controlDb = w.controlDb;
  if (w.outagesFired < o.controlOutages && !w.controlDown && w.midRollout() && w.state.running > 0 && p >= 0.2 + 0.25 * w.outagesFired) {
    w.outagesFired++;
    w.controlDown = true;
    run.refused.add(controlDb);
    const entry = { atProgress: w.progress(), ms: o.controlOutageMs, backendsTerminated: 0 };
    figures.controlOutages.push(entry);
    entry.backendsTerminated = await run.admin(async (c) => {
      await c.query(`ALTER DATABASE ${qi(controlDb)} ALLOW_CONNECTIONS false`);
      const r = await c.query(`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [
        controlDb,
      ]);
      return r.rows[0].n as number;
    });
    run.log(
      `control: the control database refuses connections for ${o.controlOutageMs / 1000} s (${entry.backendsTerminated} backends terminated) at ${entry.atProgress}`,
    );
    run.task('control outage', async () => {
      await sleep(o.controlOutageMs, run.stop.signal);
      await run.admin((c) => c.query(`ALTER DATABASE ${qi(controlDb)} ALLOW_CONNECTIONS true`));
      run.refused.delete(controlDb);
      w.controlDown = false;
      run.log('control: the control database accepts connections again');
    });
  }
}

/** A second runner: `flotilla pending` on a few tenants the workers are about to reach. */
function concurrentCli(w: RolloutWatch, p: number): void {
  const { run, setup } = w;
  const { o, figures, dir } = run;
  if (!w.cliFired && o.cliRunners > 0 && w.midRollout() && p >= 0.1) {
    w.cliFired = true;
    const pending = [...w.candidates(() => true, ['pending']), ...w.candidates(() => true, ['running'])];
    const targets = pending.slice(0, o.cliRunners);
    const schemaOne = pending.find((t) => t.schema);
    if (schemaOne && !targets.some((t) => t.schema) && targets.length) targets[targets.length - 1] = schemaOne;
    for (const t of targets) {
      setup.busy.add(t.id);
      setup.cliTenants.add(t.id);
    }
    run.log(`cli: \`flotilla pending\` on ${targets.map((t) => t.id).join(', ')} at ${w.progress()}`);
    for (const t of targets) {
      run.task(`cli pending ${t.id}`, async () => {
        const r = await run.runCli(['pending', '--dir', dir, '--database-url', t.url, ...(t.schema ? ['--schema', t.schema] : []), '--json'], run.env);
        let applied = -1;
        try {
          applied = (JSON.parse(r.stdout).applied as unknown[]).length;
        } catch {}
        figures.cliRuns.push({ tenant: t.id, code: r.code, applied, seconds: Math.round(r.seconds * 10) / 10 });
        if (r.code !== 0) run.violations.push(`cli: flotilla pending on ${t.id} exited ${r.code}: ${(r.stdout + r.stderr).slice(-600)}`);
        run.log(`cli: ${t.id} exit ${r.code}, applied ${applied} in ${r.seconds.toFixed(1)} s`);
      });
    }
  }
}

/** Redis restart (SAVE, SIGKILL, start on the same port). */
async function restartRedis(w: RolloutWatch, p: number): Promise<void> {
  const { run, setup } = w;
  if (w.restartsFired < run.o.redisRestarts && w.midRollout() && p >= 0.3 + 0.1 * w.restartsFired) {
    w.restartsFired++;
    const at = w.progress();
    const downMs = await setup.redis.restart();
    run.figures.redisRestarts.push({ atProgress: at, downMs });
    run.log(`redis: restarted (SIGKILL after SAVE, down ${downMs} ms) at ${at}`);
  }
}

/** FLUSHALL, then `rollout resume` twice (the second must find nothing to do). */
async function flushRedis(w: RolloutWatch, p: number): Promise<void> {
  const { run, setup, id } = w;
  const { o } = run;
  if (w.flushesFired < o.flushes && w.midRollout() && p >= 0.5 + 0.1 * w.flushesFired) {
    w.flushesFired++;
    const at = w.progress();
    await setup.redis.flushAll();
    const flush = { atProgress: at, resumes: [] as { code: number; recreated: number | null; dispatched: number | null }[] };
    run.figures.flushes.push(flush);
    run.log(`redis: FLUSHALL at ${at}; flotilla rollout resume ${id}`);
    run.task('resume', async () => {
      for (let round = 0; round < (o.resume ? 2 : 0); round++) {
        let r = await run.runCli(['rollout', 'resume', id, '--json'], run.env);
        for (let i = 0; i < 4 && r.code !== 0 && !run.aborted; i++) {
          await sleep(1000, run.stop.signal);
          r = await run.runCli(['rollout', 'resume', id, '--json'], run.env);
        }
        let parsed: { recreated?: number; dispatched?: number } = {};
        try {
          parsed = JSON.parse(r.stdout);
        } catch {}
        flush.resumes.push({ code: r.code, recreated: parsed.recreated ?? null, dispatched: parsed.dispatched ?? null });
        if (r.code !== 0) run.violations.push(`resume: flotilla rollout resume exited ${r.code}: ${r.stderr.slice(-600)}`);
        run.log(`resume #${round + 1}: exit ${r.code}, ${parsed.recreated ?? '?'} jobs re-created, ${parsed.dispatched ?? '?'} dispatched`);
      }
    });
  }
}
