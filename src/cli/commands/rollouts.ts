/** `flotilla rollouts`: the most recent rollouts and their counts. */
import { fleetContext, withStore, type FleetContext } from '../context.js';
import type { Output } from '../output.js';
import { parseRolloutsList, type Flags, type RolloutsListRequest } from '../requests.js';
import type { CommandContext } from './single.js';
import type { ControlStore } from '../../control/store.js';

export type RolloutsList = Awaited<ReturnType<ControlStore['listRollouts']>>;

export async function rolloutsListCommand(fctx: FleetContext, req: RolloutsListRequest): Promise<RolloutsList> {
  return withStore(fctx, (store) => store.listRollouts(req.limit));
}

export function printRolloutsList(out: Output, list: RolloutsList): void {
  if (out.json) {
    out.data(list);
    return;
  }
  for (const r of list) {
    const c = r.counts;
    out.line(
      `${r.id}  ${r.state.padEnd(9)}  ${c.succeeded} succeeded, ${c.failed} failed, ${c.cancelled} cancelled, ${c.running + c.pending + c.scheduled} open  ${r.createdAt.toISOString()}${r.options.revert ? `  revert of ${r.options.revert.of}` : ''}`,
    );
  }
  if (!list.length) out.line('No rollouts yet.');
}

export async function rolloutsList(ctx: CommandContext, o: Flags): Promise<number> {
  const fctx = fleetContext(ctx);
  printRolloutsList(ctx.out, await rolloutsListCommand(fctx, parseRolloutsList(o)));
  return 0;
}
