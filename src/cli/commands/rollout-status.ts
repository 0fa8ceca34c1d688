/** `flotilla rollout status <id>`: the per-tenant state of a rollout, from the control database. */
import { rolloutAcks, type StoredAck } from '../../control/risk-acks.js';
import { RolloutNotFoundError } from '../../core/errors.js';
import { fleetContext, withStore, type FleetContext } from '../context.js';
import { printRolloutOrJson, rolloutView, type RolloutView } from '../print/rollout.js';
import type { CommandContext } from './single.js';

/**
 * The view plus the lint findings acknowledged for it (control/risk-acks.ts), when there are
 * any: without them the view is exactly what `rollout --wait` printed at the end.
 */
export type RolloutStatusView = RolloutView & { acknowledgements?: StoredAck[] };

export async function rolloutStatusCommand(fctx: FleetContext, id: string): Promise<RolloutStatusView> {
  return withStore(fctx, async (store) => {
    const r = await store.getRollout(id);
    if (!r) throw new RolloutNotFoundError(id);
    const acks = await rolloutAcks(store.pool, r);
    return { ...rolloutView(r, await store.rolloutTenants(id)), ...(acks.length ? { acknowledgements: acks } : {}) };
  });
}

export async function rolloutStatus(ctx: CommandContext, id: string): Promise<number> {
  const v = await rolloutStatusCommand(fleetContext(ctx), id);
  printRolloutOrJson(ctx.out, v);
  if (!ctx.out.json && v.acknowledgements?.length) {
    ctx.out.line();
    ctx.out.line('Acknowledged risks:');
    for (const a of v.acknowledgements)
      ctx.out.line(
        `  ${a.file}:${a.line} ${a.rule}${a.lock ? ` (${a.lock}${a.table ? ` on ${a.table}` : ''})` : ''}: ${a.actor} (${a.osUser}) via ${
          a.via === 'flag' ? '--accept-risk' : a.via === 'header' ? 'the file header' : `an earlier acknowledgement, ${a.earlier}`
        }, ${a.acknowledgedAt.toISOString()}`,
      );
  }
  return 0;
}
