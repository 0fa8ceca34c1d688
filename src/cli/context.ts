/**
 * What a fleet command works with: the command context plus the fleet's settings (from the
 * environment), and the control store and queues it opens and always closes.
 */
import type { Queue } from 'bullmq';
import { fleetSettings, type FleetSettings } from '../config.js';
import { ControlStore } from '../control/store.js';
import { openQueue } from '../queue.js';
import type { Output } from './output.js';
import type { CommandContext } from './commands/single.js';

export interface FleetContext extends CommandContext {
  fleet: FleetSettings;
  /** a store kept open by a long-lived process (the dashboard): commands use it and leave it open */
  store?: ControlStore;
}

/** Settings are read (and refused, exit 2) before anything is opened. */
export function fleetContext(ctx: CommandContext, env: Record<string, string | undefined> = process.env): FleetContext {
  return { ...ctx, fleet: fleetSettings(ctx.config, env) };
}

/** The control store, its schema brought up to date. */
export async function openStore(settings: FleetSettings, out: Output): Promise<ControlStore> {
  // an outage of the control database is ridden out (pool.ts), said once on stderr, and once when it is over
  const store = new ControlStore(settings.controlUrl, {
    // rollouts and schedules belong to the queue prefix they were created with
    queuePrefix: settings.prefix,
    retry: {
      retryForMs: settings.controlRetryMs,
      down: (reason, ms) => out.error(`\n! control database unreachable (${reason}); retrying for up to ${Math.round(ms / 1000)} s`),
      up: (ms) => out.error(`✓ control database reachable again after ${(ms / 1000).toFixed(1)} s`),
    },
  });
  try {
    await store.migrate();
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}

export async function withStore<T>(fctx: FleetContext, fn: (store: ControlStore) => Promise<T>): Promise<T> {
  if (fctx.store) return fn(fctx.store);
  const store = await openStore(fctx.fleet, fctx.out);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** A BullMQ queue for the length of `fn`; `quiet` ignores a failure to close it. */
export async function withQueue<T>(name: string, fleet: FleetSettings, fn: (queue: Queue) => Promise<T>, quiet = true): Promise<T> {
  const queue = openQueue(name, fleet);
  try {
    return await fn(queue);
  } finally {
    if (quiet) await queue.close().catch(() => {});
    else await queue.close();
  }
}
