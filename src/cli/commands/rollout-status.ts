/**
 * `flotilla rollout status <id>`: a rollout from the control database. The
 * counts (per state, per wave) come from the counters and the lock waits from
 * one aggregate, so a 50,000-tenant rollout answers at once; the tenant list
 * is read a page at a time (index on rollout and position). Text shows the
 * first 50 tenants unless --limit says otherwise (0: all); --json lists every
 * tenant unless --limit, --offset or --state narrow it (then `page` says which).
 */
import { rolloutAcks, type StoredAck } from '../../control/risk-acks.js';
import { ConfigError, RolloutNotFoundError } from '../../core/errors.js';
import type { TenantState } from '../../control/store.js';
import { fleetContext, withStore, type FleetContext } from '../context.js';
import { printRolloutOrJson, rolloutViewOf, type RolloutView } from '../print/rollout.js';
import { intOption, type Flags } from '../requests.js';
import type { CommandContext } from './single.js';

/** How many tenants the text output lists when --limit is not given. */
export const TEXT_PAGE = 50;

const STATES: TenantState[] = ['pending', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled'];

export interface RolloutStatusRequest {
  id: string;
  /** undefined: every tenant */
  limit?: number;
  offset: number;
  states?: TenantState[];
}

export function parseRolloutStatus(id: string, o: Flags, json: boolean): RolloutStatusRequest {
  const limit = intOption('--limit', o.limit, 0);
  const offset = intOption('--offset', o.offset, 0) ?? 0;
  let states: TenantState[] | undefined;
  if (o.state !== undefined) {
    states = String(o.state)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean) as TenantState[];
    const bad = states.filter((s) => !STATES.includes(s));
    if (!states.length || bad.length) throw new ConfigError([`--state: "${o.state}" is not a list of tenant states (${STATES.join(', ')})`]);
  }
  const shown = limit === undefined ? (json ? undefined : TEXT_PAGE) : limit === 0 ? undefined : limit;
  return { id, offset, ...(shown !== undefined && { limit: shown }), ...(states && { states }) };
}

/**
 * The view plus the lint findings acknowledged for it (control/risk-acks.ts), when there are
 * any: without them the view is exactly what `rollout --wait` printed at the end.
 */
export type RolloutStatusView = RolloutView & { acknowledgements?: StoredAck[] };

export async function rolloutStatusCommand(fctx: FleetContext, req: RolloutStatusRequest | string): Promise<RolloutStatusView> {
  const q: RolloutStatusRequest = typeof req === 'string' ? { id: req, offset: 0 } : req;
  return withStore(fctx, async (store) => {
    const r = await store.getRollout(q.id);
    if (!r) throw new RolloutNotFoundError(q.id);
    const [v, acks] = await Promise.all([rolloutViewOf(store, q.id, q), rolloutAcks(store.pool, r)]);
    if (!v) throw new RolloutNotFoundError(q.id);
    return { ...v, ...(acks.length ? { acknowledgements: acks } : {}) };
  });
}

export async function rolloutStatus(ctx: CommandContext, id: string, o: Flags = {}): Promise<number> {
  const v = await rolloutStatusCommand(fleetContext(ctx), parseRolloutStatus(id, o, ctx.out.json));
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
