/**
 * `flotilla rollout retry <id>`: hand the failed and cancelled tenants of a rollout to the
 * workers again (its frozen set and targets, or with --refresh the files on disk).
 */
import { checkRedis } from '../../adapters/redis.js';
import { RolloutNotFoundError } from '../../core/errors.js';
import { MIGRATE_QUEUE, openQueue } from '../../queue.js';
import { retryAndEnqueue } from '../../producer/dispatcher.js';
import { fleetContext, withStore, type FleetContext } from '../context.js';
import { rolloutExitCode, type Output } from '../output.js';
import { waitForRollout } from '../print/progress.js';
import { printRollout, rolloutViewOf, type RolloutView } from '../print/rollout.js';
import { parseRolloutRetry, type Flags, type RolloutRetryRequest } from '../requests.js';
import { prepareRetry } from './frozen-checks.js';
import type { CommandContext } from './single.js';

export interface RolloutRetryResult {
  id: string;
  retried: number;
  /** what changed since the rollout froze its targets and set (also said on stderr at once) */
  notices: string[];
  view: RolloutView;
  waited: boolean;
}

export async function rolloutRetryCommand(fctx: FleetContext, req: RolloutRetryRequest): Promise<RolloutRetryResult> {
  const { id } = req;
  return withStore(fctx, async (store) => {
    // an unknown id is refused before Redis is touched
    const rollout = await store.getRollout(id);
    if (!rollout) throw new RolloutNotFoundError(id);
    await checkRedis(fctx.fleet.redisUrl);
    // the frozen targets and set run again: say when the registry or the files on disk moved on
    const prepared = await prepareRetry(store, rollout, fctx.config.dir, req.refresh);
    const queue = openQueue(MIGRATE_QUEUE, fctx.fleet);
    try {
      const r = await retryAndEnqueue(store, queue, id, new Date(), prepared.refresh);
      for (const n of prepared.notices) fctx.out.error(`! ${n}`);
      if (!r) throw new RolloutNotFoundError(id);
      const view = req.wait ? await waitForRollout(store, id, fctx.out, fctx.fleet) : (await rolloutViewOf(store, id))!;
      return { id, retried: r.retried, notices: prepared.notices, view, waited: req.wait };
    } finally {
      await queue.close().catch(() => {});
    }
  });
}

export function printRolloutRetried(out: Output, r: RolloutRetryResult): void {
  if (out.json) out.data({ ...r.view, notices: r.notices });
  else if (r.waited) printRollout(out, r.view);
  else out.line(`Rollout ${r.id}: ${r.retried} tenant${r.retried === 1 ? '' : 's'} re-enqueued`);
}

export async function rolloutRetry(ctx: CommandContext, id: string, o: Flags): Promise<number> {
  const r = await rolloutRetryCommand(fleetContext(ctx), parseRolloutRetry(id, o));
  printRolloutRetried(ctx.out, r);
  return r.waited ? rolloutExitCode(r.view) : 0;
}
