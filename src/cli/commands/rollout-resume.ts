/**
 * `flotilla rollout resume <id>`: rebuild a rollout's jobs in Redis from the control database
 * (after Redis lost its data); safe any time, as job ids are deterministic.
 */
import { checkRedis } from '../../adapters/redis.js';
import { RolloutNotFoundError } from '../../core/errors.js';
import { reconcile } from '../../producer/reconcile.js';
import { MIGRATE_QUEUE, openQueue } from '../../queue.js';
import { fleetContext, withStore, type FleetContext } from '../context.js';
import { rolloutExitCode, type Output } from '../output.js';
import { waitForRollout } from '../print/progress.js';
import { printRollout, type RolloutView } from '../print/rollout.js';
import { parseRolloutResume, type Flags, type RolloutResumeRequest } from '../requests.js';
import { targetChangeNotices } from './frozen-checks.js';
import type { CommandContext } from './single.js';

export interface RolloutResumeResult {
  id: string;
  resume: Awaited<ReturnType<typeof reconcile>>;
  /** tenants whose registry entry moved away from the frozen target (also said on stderr at once) */
  notices: string[];
  /** --wait: the rollout's end */
  view?: RolloutView;
}

/** `started` is called once the jobs are back, before a --wait begins (the printer's header). */
export async function rolloutResumeCommand(
  fctx: FleetContext,
  req: RolloutResumeRequest,
  started: (r: RolloutResumeResult) => void = () => {},
): Promise<RolloutResumeResult> {
  const { id } = req;
  return withStore(fctx, async (store) => {
    if (!(await store.getRollout(id))) throw new RolloutNotFoundError(id);
    await checkRedis(fctx.fleet.redisUrl);
    const notices = await targetChangeNotices(store, id);
    for (const n of notices) fctx.out.error(`! ${n}`);
    const queue = openQueue(MIGRATE_QUEUE, fctx.fleet);
    try {
      const resume = await reconcile(store, queue, () => new Date(), id);
      const result: RolloutResumeResult = { id, resume, notices };
      if (!req.wait) return result;
      started(result);
      return { ...result, view: await waitForRollout(store, id, fctx.out, fctx.fleet) };
    } finally {
      await queue.close().catch(() => {});
    }
  });
}

function resumedLine(r: RolloutResumeResult): string {
  return `Rollout ${r.id}: ${r.resume.recreated} jobs re-created, ${r.resume.dispatched} dispatched`;
}

export function printRolloutResumed(out: Output, r: RolloutResumeResult): void {
  if (r.view) {
    if (out.json) out.data({ ...r.view, resume: r.resume, notices: r.notices });
    else printRollout(out, r.view);
  } else if (out.json) out.data({ id: r.id, ...r.resume, notices: r.notices });
  else out.line(resumedLine(r));
}

export async function rolloutResume(ctx: CommandContext, id: string, o: Flags = {}): Promise<number> {
  const r = await rolloutResumeCommand(fleetContext(ctx), parseRolloutResume(id, o), (started) => {
    if (!ctx.out.json) ctx.out.line(`${resumedLine(started)}; waiting for the end`);
  });
  printRolloutResumed(ctx.out, r);
  return r.view ? rolloutExitCode(r.view) : 0;
}
