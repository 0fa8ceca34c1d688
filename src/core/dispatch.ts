/**
 * The rollout's dispatch rules as pure functions, the sibling of plan.ts: given
 * what the control database holds about a rollout, what happens next? Halt on a
 * failed canary or past --max-failures, finish when nothing is open, advance
 * the wave when the current one is done, fill the --concurrency window,
 * respect --per-server caps, and send tenants outside their maintenance window
 * to wait for it as delayed jobs (they take no slot until they run).
 *
 * A wave whose 95th percentile of lock waits is certain to pass
 * --max-lock-wait halts the rollout too (lockWaitP95Over).
 *
 * Two steps, because which candidates to read depends on the first: assess()
 * decides from the counts alone (halt, finish, the wave, the free slots), then
 * choose() picks among the pending tenants of that wave. control/dispatch.ts
 * reads the inputs and writes the decision; producer/dispatcher.ts enqueues it.
 * Nothing here knows SQL, Redis or the clock.
 */
import type { MaintenanceWindow } from './tenants.js';
import { isInsideWindow, nextWindowStart } from './windows.js';

export type TenantState = 'pending' | 'scheduled' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export type RolloutState = 'running' | 'succeeded' | 'failed' | 'halted' | 'cancelled';

/** What the rules need of a rollout. */
export interface DispatchRollout {
  state: RolloutState;
  currentWave: number;
  waveCount: number;
  finished: boolean;
  options: { canary: boolean; maxFailures: number; concurrency: number | null; perServer: number | null; maxLockWaitMs?: number | null };
}

/** Tenants of the rollout counted by (wave, state, handed to the queue, server). */
export interface TenantGroup {
  wave: number;
  state: TenantState;
  dispatched: boolean;
  server: string;
  n: number;
}

/** A pending tenant of the current wave not yet handed to the queue, in rollout order. */
export interface Candidate {
  tenantId: string;
  server: string;
  generation: number;
  window: MaintenanceWindow | null;
}

/** How many tenants a rollout keeps queued in Redis at most when --concurrency is not given. */
export const DISPATCH_WINDOW = 500;

/** The first step: decided from the counts alone. */
export type Assessment =
  /** halted or cancelled earlier: record the end once nothing runs any more */
  | { kind: 'stopped'; markFinished: boolean }
  | { kind: 'finish'; state: 'succeeded' | 'failed' }
  /** cancel the pending and scheduled tenants; the rollout ends now when nothing runs */
  | { kind: 'halt'; reason: string; finishedNow: boolean }
  /** the window is full: only the counters change */
  | { kind: 'full'; wave: number; inFlight: number; waiting: number }
  /** read up to `candidateLimit` candidates of `wave`, then call choose() */
  | { kind: 'fill'; wave: number; slots: number; candidateLimit: number; inFlight: number; waiting: number; perServer: Map<string, number> };

const open = (g: TenantGroup) => g.state === 'pending' || g.state === 'scheduled' || g.state === 'running';
const inFlight = (g: TenantGroup) => g.state === 'running' || (g.state === 'pending' && g.dispatched);
const waiting = (g: TenantGroup) => g.state === 'pending' && !g.dispatched;

function sum(groups: TenantGroup[], f: (g: TenantGroup) => boolean): number {
  let n = 0;
  for (const g of groups) if (f(g)) n += g.n;
  return n;
}

/**
 * Is a wave's 95th percentile of lock waits over the limit, whatever the tenants still to
 * finish will wait? `over` of the wave's `tenants` (cancelled ones left out) waited longer.
 * The percentile is the nearest rank (the value at rank ceil(0.95 n) in ascending order,
 * as Postgres' percentile_disc(0.95)): it passes the limit once more than n - ceil(0.95 n)
 * tenants did: a wave of up to 19 tenants halts on its first slow tenant, one of 20 to 39 on
 * its second, one of 100 on its sixth, however early in the wave they come.
 */
export function lockWaitP95Over(tenants: number, over: number): boolean {
  if (tenants <= 0 || over <= 0) return false;
  return over >= tenants - Math.ceil(0.95 * tenants) + 1;
}

/** "2 s", "750 ms", "1.5 min" */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${Math.round(ms / 100) / 10} s`;
  return `${Math.round(ms / 6000) / 10} min`;
}

/**
 * Halt, finish, advance the wave, or how many tenants may go now. `lockSlow`: per wave,
 * how many of its finished tenants waited for locks longer than --max-lock-wait.
 */
export function assess(rollout: DispatchRollout, groups: TenantGroup[], lockSlow: ReadonlyMap<number, number> = new Map()): Assessment {
  const running = sum(groups, (g) => g.state === 'running');
  if (rollout.state !== 'running') return { kind: 'stopped', markFinished: running === 0 && !rollout.finished };

  const failed = sum(groups, (g) => g.state === 'failed');
  if (sum(groups, open) === 0) return { kind: 'finish', state: failed > 0 ? 'failed' : 'succeeded' };

  const canaryFailed = rollout.options.canary && sum(groups, (g) => g.wave === 0 && g.state === 'failed') > 0;
  if (canaryFailed || failed > rollout.options.maxFailures) {
    const reason = canaryFailed ? 'a canary tenant failed' : `${failed} tenants failed (--max-failures ${rollout.options.maxFailures})`;
    return { kind: 'halt', reason, finishedNow: running === 0 };
  }
  const limit = rollout.options.maxLockWaitMs;
  if (limit != null) {
    for (const [w, over] of [...lockSlow].sort((a, b) => a[0] - b[0])) {
      const tenants = sum(groups, (g) => g.wave === w && g.state !== 'cancelled');
      if (lockWaitP95Over(tenants, over)) {
        const reason = `wave ${w + 1}: the 95th percentile of lock waits is over ${formatMs(limit)} (${over} of ${tenants} tenants waited longer; --max-lock-wait)`;
        return { kind: 'halt', reason, finishedNow: running === 0 };
      }
    }
  }

  let wave = rollout.currentWave;
  while (wave < rollout.waveCount - 1 && sum(groups, (g) => g.wave === wave && open(g)) === 0) wave++;
  const flying = sum(groups, inFlight);
  const queued = sum(groups, waiting);
  const slots = (rollout.options.concurrency ?? DISPATCH_WINDOW) - flying;
  if (slots <= 0) return { kind: 'full', wave, inFlight: flying, waiting: queued };
  const perServer = new Map<string, number>();
  for (const g of groups) if (inFlight(g)) perServer.set(g.server, (perServer.get(g.server) ?? 0) + g.n);
  // windows and --per-server skip candidates: read more than the free slots
  const candidateLimit = slots + (rollout.options.perServer ? 1000 : 200);
  return { kind: 'fill', wave, slots, candidateLimit, inFlight: flying, waiting: queued, perServer };
}

export interface Choice {
  /** every job to enqueue (ready and scheduled), in rollout order */
  jobs: { candidate: Candidate; delayMs: number }[];
  /** handed to the queue now, in order */
  ready: Candidate[];
  /** outside their window: delayed jobs, state `scheduled` until `at` */
  scheduled: { candidate: Candidate; at: Date; delayMs: number }[];
  /** counters after this dispatch */
  inFlight: number;
  waiting: number;
}

/** Which candidates go now, which wait for their window, which stay pending. */
export function choose(rollout: Pick<DispatchRollout, 'options'>, fill: Extract<Assessment, { kind: 'fill' }>, candidates: Candidate[], now: Date): Choice {
  let slots = fill.slots;
  const perServer = new Map(fill.perServer);
  const jobs: Choice['jobs'] = [];
  const ready: Candidate[] = [];
  const scheduled: Choice['scheduled'] = [];
  const cap = rollout.options.perServer;
  for (const c of candidates) {
    if (c.window && !isInsideWindow(c.window, now)) {
      // waits for its window as a delayed job; takes no slot until it runs
      const at = nextWindowStart(c.window, now);
      const delayMs = Math.max(0, at.getTime() - now.getTime());
      scheduled.push({ candidate: c, at, delayMs });
      jobs.push({ candidate: c, delayMs });
      continue;
    }
    if (slots <= 0) continue;
    const onServer = perServer.get(c.server) ?? 0;
    if (cap && onServer >= cap) continue;
    perServer.set(c.server, onServer + 1);
    slots--;
    ready.push(c);
    jobs.push({ candidate: c, delayMs: 0 });
  }
  return { jobs, ready, scheduled, inFlight: fill.inFlight + ready.length, waiting: fill.waiting - ready.length - scheduled.length };
}

/**
 * A tenant that finished well need not pay for a full dispatch while the
 * window is still three-quarters full, or while everything is handed out and
 * others are still running: nothing could change. (Failures, halts, waves
 * finishing, --per-server caps: always a full dispatch. The reconcile job
 * dispatches every few seconds regardless.) Decided from the rollout row's
 * in_flight/waiting counters, which every dispatch recomputes.
 */
export function windowStillFull(state: string, options: DispatchRollout['options'], inFlightNow: number, waitingNow: number): boolean {
  if (state !== 'running' || options.perServer || inFlightNow <= 0) return false;
  const limit = options.concurrency ?? DISPATCH_WINDOW;
  return waitingNow <= 0 || inFlightNow > limit - Math.max(1, Math.floor(limit / 4));
}
