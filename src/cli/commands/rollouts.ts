/**
 * `flotilla rollouts`: the most recent rollouts and their counts (from the
 * counters: one index scan and a few counter rows per rollout, however many
 * rollouts and tenants the history holds). `flotilla rollouts prune
 * --older-than <age>`: remove the history of rollouts that finished before.
 */
import { ConfigError } from '../../core/errors.js';
import { parseDuration } from '../../config.js';
import { fleetContext, withStore, type FleetContext } from '../context.js';
import type { Output } from '../output.js';
import { parseRolloutsList, type Flags, type RolloutsListRequest } from '../requests.js';
import type { CommandContext } from './single.js';
import type { ControlStore, PruneResult } from '../../control/store.js';

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

export interface PruneRequest {
  olderThanMs: number;
  dryRun: boolean;
}

const DAY = 86_400_000;

/** "30d", "2w", "12h", "90min": how old a finished rollout must be (days and weeks on top of config.ts's durations). */
export function parseAge(v: unknown): number | undefined {
  const m = typeof v === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*(d|w)\s*$/.exec(v) : null;
  if (m) return Number(m[1]) * (m[2] === 'w' ? 7 * DAY : DAY);
  return typeof v === 'string' ? parseDuration(v) : undefined;
}

export function parsePrune(o: Flags): PruneRequest {
  if (o.olderThan === undefined) throw new ConfigError(['--older-than: required, e.g. --older-than 30d (rollouts that finished more than 30 days ago)']);
  const ms = parseAge(o.olderThan);
  if (ms === undefined) throw new ConfigError([`--older-than: "${o.olderThan}" is not a duration (use 30d, 2w, 12h, 90min)`]);
  return { olderThanMs: ms, dryRun: !!o.dryRun };
}

export interface PruneReport extends PruneResult {
  before: Date;
  dryRun: boolean;
}

export async function rolloutsPruneCommand(fctx: FleetContext, req: PruneRequest, now = new Date()): Promise<PruneReport> {
  const before = new Date(now.getTime() - req.olderThanMs);
  return withStore(fctx, async (store) => ({ before, dryRun: req.dryRun, ...(await store.prune(before, req.dryRun)) }));
}

export function printPrune(out: Output, r: PruneReport): void {
  if (out.json) {
    out.data(r);
    return;
  }
  const verb = r.dryRun ? 'Would remove' : 'Removed';
  if (!r.rollouts.length) {
    out.line(`No finished rollout of this fleet ended before ${r.before.toISOString()}: nothing ${r.dryRun ? 'to remove' : 'removed'}.`);
    return;
  }
  out.line(`${verb} ${r.rollouts.length} rollout${r.rollouts.length === 1 ? '' : 's'} that finished before ${r.before.toISOString()}:`);
  for (const x of r.rollouts) out.line(`  ${x.id}  ${x.state.padEnd(9)}  finished ${x.finishedAt.toISOString()}  ${x.tenants} tenants`);
  out.line(
    `Total: ${r.rollouts.length} rollouts, ${r.tenantRows} tenant rows, ${r.attempts} attempts, ${r.migrationSets} migration sets no longer used${r.dryRun ? ' (dry run: nothing removed)' : ''}`,
  );
}

export async function rolloutsPrune(ctx: CommandContext, o: Flags): Promise<number> {
  const req = parsePrune(o);
  printPrune(ctx.out, await rolloutsPruneCommand(fleetContext(ctx), req));
  return 0;
}
