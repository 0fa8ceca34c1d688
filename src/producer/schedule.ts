/**
 * Maintenance-window batches: `flotilla schedule` stores a frozen migration
 * set and a tenant selection in the control database and registers a BullMQ
 * job scheduler (cron + time zone). Each firing starts a rollout over the
 * selected tenants of the registry; up-to-date tenants cost one query.
 * The control database is the truth: a Redis that lost its data lost the job
 * schedulers too, and workers put them back from flotilla.schedules
 * (restoreSchedules), as they do for the reconcile schedule.
 */
import type { Queue } from 'bullmq';
import { isFlotillaError } from '../core/errors.js';
import { selectTenants, type Tenant } from '../core/tenants.js';
import type { ControlStore } from '../control/store.js';
import { createRollout } from './rollout.js';

export async function startScheduledRollout(
  store: ControlStore,
  queue: Queue,
  name: string,
  now: () => Date,
): Promise<{ rolloutId: string } | { skipped: string }> {
  const s = await store.getSchedule(name);
  if (!s) return { skipped: `schedule ${name} no longer exists` };
  let tenants: Tenant[];
  try {
    // a stored selection obeys the same rules as the flags: never "everything" unless it says --all
    tenants = selectTenants(await store.registryTenants(), s.selection);
  } catch (e) {
    if (isFlotillaError(e) && e.kind === 'input') return { skipped: e.message };
    throw e;
  }
  const set = await store.loadMigrationSet(s.setChecksum);
  const created = await createRollout(
    store,
    queue,
    {
      tenants,
      set,
      dryRun: s.options.dryRun,
      engine: s.options.engine,
      createdBy: `schedule ${name}`,
      maxFailures: { count: s.options.maxFailures },
      ...(s.options.concurrency ? { concurrency: s.options.concurrency } : {}),
      ...(s.options.perServer ? { perServer: s.options.perServer } : {}),
      ...(s.options.notify?.length ? { notify: s.options.notify } : {}),
    },
    now,
  );
  return { rolloutId: created.id };
}

/** The BullMQ job scheduler of a schedule: one definition for `flotilla schedule` and for the restore. */
export function scheduleJobId(name: string): string {
  return `schedule.${name}`;
}

export async function registerSchedule(control: Queue, s: { name: string; cron: string; tz: string }): Promise<void> {
  await control.upsertJobScheduler(scheduleJobId(s.name), { pattern: s.cron, tz: s.tz }, { name: 'scheduled-rollout', data: { schedule: s.name } });
}

/**
 * Make Redis's job schedulers match flotilla.schedules: put back the missing
 * ones, remove those whose schedule is gone. Each decision re-reads the row
 * just before acting, so a `schedule` or `schedule remove` running meanwhile
 * wins (the CLI saves the row before the scheduler, and deletes it before).
 */
export async function restoreSchedules(
  store: ControlStore,
  control: Queue,
): Promise<{ restored: string[]; removed: string[]; failed: { name: string; error: string }[] }> {
  const result = { restored: [] as string[], removed: [] as string[], failed: [] as { name: string; error: string }[] };
  for (const s of await store.listSchedules()) {
    if (await control.getJobScheduler(scheduleJobId(s.name))) continue;
    const row = await store.getSchedule(s.name);
    if (!row) continue;
    try {
      await registerSchedule(control, row);
      result.restored.push(s.name);
    } catch (e) {
      result.failed.push({ name: s.name, error: e instanceof Error ? e.message : String(e) });
      continue;
    }
    if (!(await store.getSchedule(s.name))) await control.removeJobScheduler(scheduleJobId(s.name));
  }
  for (const j of await control.getJobSchedulers(0, -1)) {
    if (!j.key.startsWith('schedule.')) continue;
    const name = j.key.slice('schedule.'.length);
    if (await store.getSchedule(name)) continue;
    await control.removeJobScheduler(j.key);
    result.removed.push(name);
  }
  return result;
}
