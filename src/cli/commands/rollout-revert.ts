/**
 * `flotilla rollout revert <id>`: a new rollout that runs the down files of the
 * files rollout <id> applied, on the tenants that applied them (their targets
 * as <id> froze them), canary and waves as usual. Its set is the down files
 * (frozen like any set) and its options say what it reverts, so workers run
 * those jobs as reverts (core/jobs.ts jobKindOf) and only undo, per tenant,
 * what <id> applied there (its tracking rows' applied_by). Refused, nothing
 * created, when a down file is missing (naming every one), and for the other
 * reasons of core/revert.ts planRolloutRevert.
 */
import { loadMigrationDir } from '../../adapters/fs-source.js';
import { checkRedis } from '../../adapters/redis.js';
import { setChecksum } from '../../core/checksum.js';
import { RolloutNotFoundError } from '../../core/errors.js';
import { planRolloutRevert } from '../../core/revert.js';
import { revertTargets } from '../../control/revert.js';
import { createRollout } from '../../producer/rollout.js';
import { MIGRATE_QUEUE, openQueue } from '../../queue.js';
import { fleetContext, openStore, type FleetContext } from '../context.js';
import { rolloutExitCode } from '../output.js';
import { waitForRollout } from '../print/progress.js';
import { rolloutView, tenantsInWaves } from '../print/rollout.js';
import { parseRolloutSettings, type Flags } from '../requests.js';
import { printRolloutCreated, type RolloutCreateResult } from './rollout-create.js';
import { cliIdentity, type CommandContext } from './single.js';

export async function rolloutRevertCommand(
  fctx: FleetContext,
  id: string,
  o: Flags,
  started: (c: RolloutCreateResult['created']) => void = () => {},
): Promise<RolloutCreateResult> {
  const settings = parseRolloutSettings(o);
  const disk = await loadMigrationDir(fctx.config.dir);
  const store = await openStore(fctx.fleet, fctx.out);
  let queue: ReturnType<typeof openQueue> | undefined;
  try {
    const rollout = await store.getRollout(id);
    if (!rollout) throw new RolloutNotFoundError(id);
    store.assertOwn(id, rollout.queuePrefix);
    const frozen = await store.loadMigrationSet(rollout.setChecksum);
    const targets = await revertTargets(store.pool, id);
    const plan = planRolloutRevert(
      { id, state: rollout.state, dryRun: rollout.options.dryRun, ...(rollout.options.revert ? { revertOf: rollout.options.revert.of } : {}) },
      frozen.migrations,
      disk,
      targets.map((t) => ({ id: t.tenant.id, state: t.state, applied: t.applied })),
    );
    await checkRedis(fctx.fleet.redisUrl);
    queue = openQueue(MIGRATE_QUEUE, fctx.fleet);
    const chosen = new Set(plan.tenants);
    const created = await createRollout(store, queue, {
      tenants: targets.filter((t) => chosen.has(t.tenant.id)).map((t) => t.tenant),
      set: { migrations: plan.downs, checksum: setChecksum(plan.downs) },
      ...settings,
      dryRun: !!o.dryRun,
      // the reverted rollout's engine settings: the same tracking table, timeouts and validation
      engine: rollout.options.engine,
      createdBy: cliIdentity(),
      extra: { revert: { of: id, ups: plan.ups } },
      register: false,
    });
    fctx.logger.info({ rolloutId: created.id, revertOf: id, tenants: created.tenants }, 'revert rollout created');
    if (!o.wait) return { created, view: rolloutView((await store.getRollout(created.id))!, await store.rolloutTenants(created.id)), waited: false };
    started(created);
    return { created, view: await waitForRollout(store, created.id, fctx.out, fctx.fleet), waited: true };
  } finally {
    await queue?.close().catch(() => {});
    await store.close();
  }
}

export async function rolloutRevert(ctx: CommandContext, id: string, o: Flags): Promise<number> {
  const r = await rolloutRevertCommand(fleetContext(ctx), id, o, (c) => {
    if (!ctx.out.json) ctx.out.line(`Rollout ${c.id} (revert of ${id}): ${tenantsInWaves(c.tenants, c.waves)}`);
  });
  if (!ctx.out.json && !r.waited) ctx.out.line(`Rollout ${r.created.id} reverts ${id}.`);
  printRolloutCreated(ctx.out, r);
  return r.waited ? rolloutExitCode(r.view) : 0;
}
