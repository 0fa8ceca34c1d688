/**
 * `flotilla rollout`: freeze the migration set and the selected tenants' targets, assign
 * waves, hand the first tenants to BullMQ; with --wait, follow it to the end.
 */
import { loadMigrationDir } from '../../adapters/fs-source.js';
import { checkRedis } from '../../adapters/redis.js';
import { rolloutEngineSettings } from '../../config.js';
import { createRollout, type CreatedRollout } from '../../producer/rollout.js';
import { MIGRATE_QUEUE, openQueue } from '../../queue.js';
import { fleetContext, openStore, type FleetContext } from '../context.js';
import { rolloutExitCode, type Output } from '../output.js';
import { waitForRollout } from '../print/progress.js';
import { printRollout, rolloutView, tenantsInWaves, warnLiteralPasswords, type RolloutView } from '../print/rollout.js';
import { parseRolloutCreate, type Flags, type RolloutCreateRequest } from '../requests.js';
import { loadTenants } from '../tenants-source.js';
import { cliIdentity, type CommandContext } from './single.js';
import { actorOf, NO_SAFETY_FLAGS, noteAcks, orderTenants, parseSafetyFlags, recordAcks, riskGate, type SafetyRequest } from './lint-gate.js';

export interface RolloutCreateResult {
  created: CreatedRollout;
  view: RolloutView;
  /** --wait: the view is the rollout's end */
  waited: boolean;
}

/** `started` is called once the rollout exists, before a --wait begins (the printer's header). */
export async function rolloutCreateCommand(
  fctx: FleetContext,
  req: RolloutCreateRequest,
  started: (c: CreatedRollout) => void = () => {},
  safety: SafetyRequest = NO_SAFETY_FLAGS,
  env: Record<string, string | undefined> = process.env,
): Promise<RolloutCreateResult> {
  const { config, out, fleet } = fctx;
  const set = await loadMigrationDir(config.dir);
  const who = actorOf(env);
  // a bad tenants file is refused before anything is touched (control schema, Redis)
  const fromFile = req.tenants.tenantsFile ? await loadTenants(req.tenants, undefined) : undefined;
  await checkRedis(fleet.redisUrl);
  const store = await openStore(fleet, out);
  let queue: ReturnType<typeof openQueue> | undefined;
  try {
    let tenants = fromFile ?? (await loadTenants(req.tenants, store));
    // error-level lint findings must each be acknowledged before anything starts (exit 2 naming them)
    const acks = await riskGate(
      set,
      config,
      safety.acceptRisk,
      who.actor,
      store.pool,
      tenants.map((t) => t.id),
    );
    if (safety.orderBy === 'size') tenants = await orderTenants(tenants, set, config, env, out);
    warnLiteralPasswords(out, tenants);
    // only now: opening a queue writes to Redis, and a refused selection must leave nothing there
    queue = openQueue(MIGRATE_QUEUE, fleet);
    const created = await createRollout(store, queue, {
      tenants,
      set,
      ...req.settings,
      // --notify replaces the config file's list (flags win, as everywhere)
      ...(!req.settings.notify && config.notify?.length ? { notify: config.notify } : {}),
      dryRun: req.dryRun,
      engine: rolloutEngineSettings(config),
      createdBy: cliIdentity(),
    });
    await recordAcks(store.pool, { rolloutId: created.id, queuePrefix: fleet.prefix, setChecksum: set.checksum }, acks, who.osUser);
    noteAcks(out, acks);
    fctx.logger.info({ rolloutId: created.id, tenants: created.tenants, waves: created.waves, enqueueMs: created.enqueueMs }, 'rollout created');
    if (!req.wait) return { created, view: rolloutView((await store.getRollout(created.id))!, await store.rolloutTenants(created.id)), waited: false };
    started(created);
    return { created, view: await waitForRollout(store, created.id, out, fleet), waited: true };
  } finally {
    await queue?.close().catch(() => {});
    await store.close();
  }
}

export function printRolloutCreated(out: Output, r: RolloutCreateResult): void {
  if (out.json) out.data(r.view);
  else if (r.waited) printRollout(out, r.view);
  else
    out.line(`Rollout ${r.created.id} created: ${tenantsInWaves(r.created.tenants, r.created.waves)}. Follow it with: flotilla rollout status ${r.created.id}`);
}

export async function rolloutCreate(ctx: CommandContext, o: Flags, env: Record<string, string | undefined> = process.env): Promise<number> {
  const fctx = fleetContext(ctx, env);
  const req = parseRolloutCreate(o);
  const safety = parseSafetyFlags(o);
  const r = await rolloutCreateCommand(
    fctx,
    req,
    (c) => {
      if (!ctx.out.json) ctx.out.line(`Rollout ${c.id}: ${tenantsInWaves(c.tenants, c.waves)}`);
    },
    safety,
    env,
  );
  printRolloutCreated(ctx.out, r);
  return r.waited ? rolloutExitCode(r.view) : 0;
}
