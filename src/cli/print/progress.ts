/**
 * `--wait`: follow a rollout in the control database until it is over, with a progress line
 * on stderr (redrawn on a terminal, every 5 s otherwise) and one hint when no worker takes
 * its jobs. Returns the final view; the command's printer shows it.
 *
 * The line is a pure function of what the control database says (progressLine): tenants
 * succeeded and failed out of the total, running, waiting, attempts and retries, and an ETA
 * from the tenants' own durations so far that only ever counts down (Eta).
 */
import { RolloutNotFoundError } from '../../core/errors.js';
import { redactUrl } from '../../core/redact.js';
import type { ControlStore, RolloutRow, TenantState } from '../../control/store.js';
import type { FleetSettings } from '../../config.js';
import type { Output } from '../output.js';
import { rolloutView, type RolloutView } from './rollout.js';

/** What the tenants' rows say so far (read again only when tenants finish). */
export interface TenantStats {
  /** durations of the tenants that finished (succeeded or failed) */
  durationsMs: number[];
  /** attempts of all tenants, and how many of them were retries (attempts beyond each tenant's first) */
  attempts: number;
  retries: number;
}

export function tenantStats(rows: readonly { state: TenantState; attempts: number; durationMs: number | null }[]): TenantStats {
  const durationsMs: number[] = [];
  let attempts = 0;
  let retries = 0;
  for (const t of rows) {
    attempts += t.attempts;
    retries += Math.max(0, t.attempts - 1);
    if ((t.state === 'succeeded' || t.state === 'failed') && t.durationMs !== null) durationsMs.push(t.durationMs);
  }
  return { durationsMs, attempts, retries };
}

/**
 * Seconds left, estimated from the tenants' own durations: the remaining tenants times their
 * mean duration, spread over as many at once as the rollout has been seen running. Between
 * two estimates it counts down with the clock, and a new estimate never shows more than
 * the countdown did: the ETA never counts up (once it has run out, none is shown).
 */
export class Eta {
  private shownMs: number | undefined;
  private at = 0;
  private parallel = 1;

  update(now: number, remaining: number, running: number, durationsMs: readonly number[]): number | undefined {
    this.parallel = Math.max(this.parallel, running);
    const countdown = this.shownMs === undefined ? undefined : Math.max(0, this.shownMs - (now - this.at));
    if (remaining === 0) return undefined;
    let fresh: number | undefined;
    if (durationsMs.length) {
      const mean = durationsMs.reduce((a, b) => a + b, 0) / durationsMs.length;
      fresh = (remaining * mean) / this.parallel;
    }
    const next = countdown === undefined ? fresh : fresh === undefined ? countdown : Math.min(fresh, countdown);
    if (next !== undefined) [this.shownMs, this.at] = [next, now];
    // tenants slower than estimated: the ETA is dropped rather than raised
    return next === undefined || next <= 0 ? undefined : Math.ceil(next / 1000);
  }
}

export interface ProgressInput {
  state: RolloutRow['state'];
  counts: Record<TenantState, number>;
  stats: TenantStats;
  etaSeconds: number | undefined;
}

/**
 * `[#######.................] 3/8 · 1 failed · 2 running · 2 waiting · 6 attempts (1 retry) · ETA 12 s`
 * while it runs; once over: `succeeded: 8/8`, `halted at 3/8 (1 failed, 5 cancelled)`,
 * `cancelled at 2/8 (6 cancelled)`. The count is the tenants that finished their work
 * (succeeded or failed): a cancelled tenant did not.
 */
export function progressLine(p: ProgressInput, width = 24): string {
  const c = p.counts;
  const total = Object.values(c).reduce((a, b) => a + b, 0);
  const finished = c.succeeded + c.failed;
  const waiting = c.pending + c.scheduled;
  const bar = '#'.repeat(Math.round((finished / Math.max(1, total)) * width)).padEnd(width, '.');
  const attempts = p.stats.attempts
    ? `${p.stats.attempts} attempt${p.stats.attempts === 1 ? '' : 's'}${p.stats.retries ? ` (${p.stats.retries} retr${p.stats.retries === 1 ? 'y' : 'ies'})` : ''}`
    : '';
  const over = p.state !== 'running' && c.running === 0;
  if (over) {
    const extra = [c.failed ? `${c.failed} failed` : '', c.cancelled ? `${c.cancelled} cancelled` : '', waiting ? `${waiting} not started` : '']
      .filter(Boolean)
      .join(', ');
    const head = p.state === 'succeeded' ? `succeeded: ${finished}/${total}` : `${p.state} at ${finished}/${total}`;
    return [`[${bar}] ${head}${extra ? ` (${extra})` : ''}`, attempts].filter(Boolean).join(' · ');
  }
  return [
    `[${bar}] ${finished}/${total}`,
    c.failed ? `${c.failed} failed` : '',
    `${c.running} running`,
    waiting ? `${waiting} waiting` : '',
    c.cancelled ? `${c.cancelled} cancelled` : '',
    attempts,
    p.etaSeconds !== undefined ? `ETA ${p.etaSeconds} s` : '',
  ]
    .filter(Boolean)
    .join(' · ');
}

export async function waitForRollout(store: ControlStore, id: string, out: Output, fleet: FleetSettings, intervalMs = 100): Promise<RolloutView> {
  const tty = !out.json && process.stderr.isTTY;
  let lastLine = '';
  let lastPrint = 0;
  // tenants handed out that no worker takes: say once where workers should be (and keep waiting)
  const hintAfter = fleet.waitHintMs ?? 30_000;
  let activity = '';
  let activityAt = Date.now();
  let hinted = false;
  const eta = new Eta();
  let stats: TenantStats = { durationsMs: [], attempts: 0, retries: 0 };
  let statsFor = '';
  let statsAt = 0;
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
      // the tenants' rows (durations, attempts) are read again when tenants start or finish, at most
      // every 2 s (every `total` ms for a big rollout): the counts above are the cheap part
      const key = `${c.succeeded}/${c.failed}/${c.running}`;
      if (finished || (key !== statsFor && Date.now() - statsAt >= Math.max(2000, total))) {
        stats = tenantStats(await store.rolloutTenants(id));
        [statsFor, statsAt] = [key, Date.now()];
      }
      const line = progressLine({ state: r.state, counts: c, stats, etaSeconds: eta.update(Date.now(), total - done, c.running, stats.durationsMs) });
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
