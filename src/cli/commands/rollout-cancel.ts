/** `flotilla rollout cancel <id>`: tenants not started are cancelled, running ones finish. */
import { RolloutNotFoundError } from '../../core/errors.js';
import { fleetContext, withStore, type FleetContext } from '../context.js';
import type { Output } from '../output.js';
import { rolloutViewOf, type RolloutView } from '../print/rollout.js';
import { cliIdentity, type CommandContext } from './single.js';

export async function rolloutCancelCommand(fctx: FleetContext, id: string): Promise<RolloutView> {
  return withStore(fctx, async (store) => {
    const r = await store.cancel(id, `cancelled by ${cliIdentity()}`);
    if (!r) throw new RolloutNotFoundError(id);
    return (await rolloutViewOf(store, id))!;
  });
}

export function printRolloutCancelled(out: Output, v: RolloutView): void {
  if (out.json) out.data(v);
  else out.line(`Rollout ${v.id}: ${v.state}; ${v.counts.cancelled} tenants cancelled, ${v.counts.running} still running`);
}

export async function rolloutCancel(ctx: CommandContext, id: string): Promise<number> {
  printRolloutCancelled(ctx.out, await rolloutCancelCommand(fleetContext(ctx), id));
  return 0;
}
