/**
 * Creating a rollout: register the tenants (not for a dry run), freeze the
 * migration set and every tenant's target, assign waves, record everything in
 * the control database, then hand the first tenants to BullMQ. After this
 * returns, workers drive the rollout to its end.
 */
import { randomBytes } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { MigrationSet } from '../core/migration-set.js';
import type { Tenant } from '../core/tenants.js';
import { ConfigError } from '../core/errors.js';
import { assignWaves, newRolloutId, resolveCount, type CanarySpec, type CountSpec, type RolloutOptions } from '../core/rollout-plan.js';
import type { ControlStore } from '../control/store.js';
import { dispatchAndEnqueue } from './dispatcher.js';

export interface RolloutRequest {
  tenants: Tenant[];
  set: MigrationSet;
  canary?: CanarySpec;
  waveSize?: CountSpec;
  maxFailures?: CountSpec;
  concurrency?: number;
  perServer?: number;
  dryRun: boolean;
  engine: RolloutOptions['engine'];
  createdBy: string;
}

export interface CreatedRollout {
  id: string;
  tenants: number;
  waves: number;
  /** tenants handed to BullMQ right away (the rest follow as workers finish) */
  enqueued: number;
  /** ms spent registering, freezing and enqueuing */
  enqueueMs: number;
}

export async function createRollout(store: ControlStore, queue: Queue, req: RolloutRequest, now: () => Date = () => new Date()): Promise<CreatedRollout> {
  const started = performance.now();
  if (req.tenants.length === 0) throw new ConfigError(['no tenants selected']);
  if (req.concurrency !== undefined && req.concurrency < 1) throw new ConfigError(['--concurrency: must be at least 1']);
  if (req.perServer !== undefined && req.perServer < 1) throw new ConfigError(['--per-server: must be at least 1']);
  const { assignments, waveCount } = assignWaves(req.tenants, req.canary, req.waveSize);
  const options: RolloutOptions = {
    canary: !!req.canary,
    maxFailures: req.maxFailures ? resolveCount(req.maxFailures, req.tenants.length) : 0,
    concurrency: req.concurrency ?? null,
    perServer: req.perServer ?? null,
    dryRun: req.dryRun,
    engine: req.engine,
  };
  const id = newRolloutId(now(), randomBytes(3).toString('hex'));
  // a dry run leaves the registry as it was: it must not change what later rollouts or schedules select
  if (!req.dryRun) await store.upsertTenants(req.tenants);
  await store.saveMigrationSet(req.set);
  await store.createRollout({ id, setChecksum: req.set.checksum, options, waveCount, createdBy: req.createdBy, assignments });
  const jobs = await dispatchAndEnqueue(store, queue, id, now());
  return { id, tenants: req.tenants.length, waves: waveCount, enqueued: jobs.length, enqueueMs: Math.round(performance.now() - started) };
}
