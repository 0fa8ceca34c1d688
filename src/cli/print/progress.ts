/**
 * `--wait`: follow a rollout in the control database until it is over, with a progress line
 * on stderr (redrawn on a terminal, every 5 s otherwise) and one hint when no worker takes
 * its jobs. Returns the final view; the command's printer shows it.
 */
import { RolloutNotFoundError } from '../../core/errors.js';
import { redactUrl } from '../../core/redact.js';
import type { ControlStore } from '../../control/store.js';
import type { FleetSettings } from '../../config.js';
import type { Output } from '../output.js';
import { rolloutViewOf, type RolloutView } from './rollout.js';

export async function waitForRollout(store: ControlStore, id: string, out: Output, fleet: FleetSettings, intervalMs = 100): Promise<RolloutView> {
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
      return (await rolloutViewOf(store, id))!;
    }
    await new Promise((res) => setTimeout(res, intervalMs));
  }
}
