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
import { assignWaves, newRolloutId, rolloutOptions, type RolloutOptions, type RolloutSettings } from '../core/rollout-plan.js';
import type { ControlStore } from '../control/store.js';
import { dispatchAndEnqueue } from './dispatcher.js';

export interface RolloutRequest extends RolloutSettings {
  tenants: Tenant[];
  set: MigrationSet;
  dryRun: boolean;
  engine: RolloutOptions['engine'];
  createdBy: string;
  /** frozen with the options: a revert rollout's files (`rollout revert`), tenants left out (`--skip-drifted`) */
  extra?: Pick<RolloutOptions, 'revert' | 'skipped'>;
  /** false: leave the registry as it is (a revert runs the reverted rollout's frozen targets) */
  register?: boolean;
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
  const options = { ...rolloutOptions(req, req.tenants.length, req.dryRun, req.engine), ...req.extra };
  const id = newRolloutId(now(), randomBytes(3).toString('hex'));
  // a dry run leaves the registry as it was: it must not change what later rollouts or schedules select
  if (!req.dryRun && req.register !== false) await store.upsertTenants(req.tenants);
  await store.saveMigrationSet(req.set);
  await store.createRollout({ id, setChecksum: req.set.checksum, options, waveCount, createdBy: req.createdBy, assignments });
  const jobs = await dispatchAndEnqueue(store, queue, id, now());
  return { id, tenants: req.tenants.length, waves: waveCount, enqueued: jobs.length, enqueueMs: Math.round(performance.now() - started) };
}
