/** `flotilla rollout status <id>`: the per-tenant state of a rollout, from the control database. */
import { RolloutNotFoundError } from '../../core/errors.js';
import { fleetContext, withStore, type FleetContext } from '../context.js';
import { printRolloutOrJson, rolloutView, type RolloutView } from '../print/rollout.js';
import type { CommandContext } from './single.js';

export async function rolloutStatusCommand(fctx: FleetContext, id: string): Promise<RolloutView> {
  return withStore(fctx, async (store) => {
    const r = await store.getRollout(id);
    if (!r) throw new RolloutNotFoundError(id);
    return rolloutView(r, await store.rolloutTenants(id));
  });
}

export async function rolloutStatus(ctx: CommandContext, id: string): Promise<number> {
  printRolloutOrJson(ctx.out, await rolloutStatusCommand(fleetContext(ctx), id));
  return 0;
}
