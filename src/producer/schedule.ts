/**
 * Maintenance-window batches: `flotilla schedule` stores a frozen migration
 * set and a tenant selection in the control database and registers a BullMQ
 * job scheduler (cron + time zone). Each firing starts a rollout over the
 * selected tenants of the registry; up-to-date tenants cost one query.
 */
import type { Queue } from 'bullmq';
import { isFlotillaError } from '../core/errors.js';
import { selectTenants } from '../core/tenants.js';
import type { ControlStore } from '../control/store.js';
import { createRollout } from './rollout.js';

export async function startScheduledRollout(store: ControlStore, queue: Queue, name: string, now: () => Date): Promise<{ rolloutId: string } | { skipped: string }> {
  const s = await store.getSchedule(name);
  if (!s) return { skipped: `schedule ${name} no longer exists` };
  let tenants;
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
      tenants, set, dryRun: s.options.dryRun, engine: s.options.engine, createdBy: `schedule ${name}`,
      maxFailures: { count: s.options.maxFailures },
      ...(s.options.concurrency ? { concurrency: s.options.concurrency } : {}),
      ...(s.options.perServer ? { perServer: s.options.perServer } : {}),
    },
    now,
  );
  return { rolloutId: created.id };
}
