/**
 * `flotilla schedule` (add), `schedule list`, `schedule remove <name>`: a recurring
 * maintenance-window batch. The control database holds the schedule (frozen set, selection,
 * the rollout options, built like `rollout`'s) and BullMQ a job scheduler that fires it.
 */
import { loadMigrationDir } from '../../adapters/fs-source.js';
import { checkRedis } from '../../adapters/redis.js';
import { rolloutEngineSettings } from '../../config.js';
import { ConfigError } from '../../core/errors.js';
import { rolloutOptions, type RolloutOptions } from '../../core/rollout-plan.js';
import { selectTenants } from '../../core/tenants.js';
import type { ControlStore } from '../../control/store.js';
import { registerSchedule, scheduleJobId } from '../../producer/schedule.js';
import { CONTROL_QUEUE } from '../../queue.js';
import { fleetContext, withQueue, withStore, type FleetContext } from '../context.js';
import type { Output } from '../output.js';
import { warnLiteralPasswords } from '../print/rollout.js';
import { parseSchedule, type Flags, type ScheduleRequest } from '../requests.js';
import { loadTenants } from '../tenants-source.js';
import type { CommandContext } from './single.js';
import { actorOf, NO_SAFETY_FLAGS, noteAcks, parseSafetyFlags, recordAcks, riskGate, type SafetyRequest } from './lint-gate.js';

export interface ScheduleSaved {
  name: string;
  cron: string;
  tz: string;
  setChecksum: string;
  migrations: number;
  options: RolloutOptions;
}

export async function scheduleAddCommand(
  fctx: FleetContext,
  req: ScheduleRequest,
  safety: SafetyRequest = NO_SAFETY_FLAGS,
  env: Record<string, string | undefined> = process.env,
): Promise<ScheduleSaved> {
  return withStore(fctx, async (store) => {
    await checkRedis(fctx.fleet.redisUrl);
    const set = await loadMigrationDir(fctx.config.dir);
    const who = actorOf(env);
    const registering = req.tenantsFile ? await loadTenants({ tenantsFile: req.tenantsFile, selection: { all: true } }, store) : [];
    // the selection must match tenants of the registry as it will be once the file is registered
    const registered = new Map((await store.registryTenants()).map((t) => [t.id, t]));
    for (const t of registering) registered.set(t.id, t);
    const selected = selectTenants([...registered.values()], req.selection);
    // error-level lint findings must each be acknowledged before the schedule is saved (exit 2 naming them)
    const acks = await riskGate(
      set,
      fctx.config,
      safety.acceptRisk,
      who.actor,
      store.pool,
      selected.map((t) => t.id),
    );
    warnLiteralPasswords(fctx.out, registering);
    // the options a `rollout` of the tenants selected today would freeze (a percentage counts them)
    const notify = req.settings.notify ?? fctx.config.notify;
    const options = rolloutOptions({ ...req.settings, ...(notify?.length && { notify }) }, selected.length, false, rolloutEngineSettings(fctx.config));
    await store.upsertTenants(registering);
    await store.saveMigrationSet(set);
    await store.saveSchedule({ name: req.name, cron: req.cron, tz: req.tz, setChecksum: set.checksum, selection: req.selection, options });
    await recordAcks(store.pool, { scheduleName: req.name, queuePrefix: fctx.fleet.prefix, setChecksum: set.checksum }, acks, who.osUser);
    noteAcks(fctx.out, acks);
    await withQueue(CONTROL_QUEUE, fctx.fleet, (control) => registerSchedule(control, { name: req.name, cron: req.cron, tz: req.tz }), false);
    return { name: req.name, cron: req.cron, tz: req.tz, setChecksum: set.checksum, migrations: set.migrations.length, options };
  });
}

export function printScheduleSaved(out: Output, s: ScheduleSaved): void {
  if (out.json) out.data({ name: s.name, cron: s.cron, tz: s.tz, setChecksum: s.setChecksum });
  else out.line(`Schedule ${s.name}: "${s.cron}" (${s.tz}) starts a rollout of ${s.migrations} migrations`);
}

export async function scheduleAdd(ctx: CommandContext, o: Flags): Promise<number> {
  const req = parseSchedule(o);
  const safety = parseSafetyFlags({ acceptRisk: o.acceptRisk });
  printScheduleSaved(ctx.out, await scheduleAddCommand(fleetContext(ctx), req, safety));
  return 0;
}

export type ScheduleList = Awaited<ReturnType<ControlStore['listSchedules']>>;

export async function scheduleListCommand(fctx: FleetContext): Promise<ScheduleList> {
  return withStore(fctx, (store) => store.listSchedules());
}

export function printScheduleList(out: Output, list: ScheduleList): void {
  if (out.json) out.data(list);
  else for (const s of list) out.line(`${s.name}  "${s.cron}" (${s.tz})  set ${s.setChecksum.slice(0, 12)}`);
}

export async function scheduleList(ctx: CommandContext): Promise<number> {
  printScheduleList(ctx.out, await scheduleListCommand(fleetContext(ctx)));
  return 0;
}

/** The row goes first, then the job scheduler (a worker restoring schedules re-reads the row). */
export async function scheduleRemoveCommand(fctx: FleetContext, name: string): Promise<{ name: string }> {
  return withStore(fctx, async (store) => {
    const removed = await store.deleteSchedule(name);
    await withQueue(CONTROL_QUEUE, fctx.fleet, (control) => control.removeJobScheduler(scheduleJobId(name)), false);
    if (!removed) throw new ConfigError([`no schedule named ${name}`]);
    return { name };
  });
}

export async function scheduleRemove(ctx: CommandContext, name: string): Promise<number> {
  const r = await scheduleRemoveCommand(fleetContext(ctx), name);
  ctx.out.line(`Schedule ${r.name} removed`);
  return 0;
}
