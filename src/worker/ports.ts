/**
 * What the tenant-job processor (processor.ts) needs from the world, and no
 * more: a few calls on the control database, and the tenant database (a
 * connection, the engine, the post-commit checks). ControlStore satisfies
 * ProcessorStore as it is; pgTenants() is the real TenantTarget. Unit tests
 * pass plain objects (test/unit/processor.test.ts).
 */
import type pg from 'pg';
import type { ClaimedJob, ControlStore } from '../control/store.js';
import type { DispatchedJob } from '../core/jobs.js';
import type { MigrationSet } from '../core/migration-set.js';
import type { AppliedRow } from '../core/plan.js';
import type { Clock } from '../core/ports.js';
import { connect, tenantUrlSource } from '../adapters/pg/connection.js';
import type { ConnectionCache } from '../adapters/pg/connection-cache.js';
import { readLedger, resolveLedger } from '../adapters/pg/ledger.js';
import { connectLockSessions } from '../adapters/pg/lock.js';
import { postChecks, type PostChecks } from '../adapters/pg/post-checks.js';
import { Migrator, type EngineSettings, type MigrateReport, type MigrateRequest, type RevertRequest } from '../migrator.js';
import type { RevertPairs } from '../core/revert.js';

/** One attempt of a tenant job, as the control database records it. */
export type AttemptRecord = Parameters<ControlStore['recordAttempt']>[0];

/** The control-database calls a tenant job makes (ControlStore implements them). */
export interface ProcessorStore {
  /** start the job: what it needs, or undefined when it is stale (cancelled, finished, an older generation) */
  claim(rolloutId: string, tenantId: string, generation: number, worker: string): Promise<ClaimedJob | undefined>;
  /** the job waits for its maintenance window: the tenant goes back to `scheduled` until `notBefore` */
  markScheduled(rolloutId: string, tenantId: string, generation: number, notBefore: Date): Promise<void>;
  /** the rollout's frozen migration set, by checksum */
  loadMigrationSet(checksum: string): Promise<MigrationSet>;
  /** record the attempt (and the tenant's state when final); returns the tenants to enqueue next */
  recordAttempt(a: AttemptRecord, now: Date): Promise<DispatchedJob[]>;
  /** fingerprint -> number of checked tenants of the rollout that have it */
  fingerprints(rolloutId: string): Promise<Map<string, number>>;
}

/** The tenant database: the only part of a tenant job that needs Postgres. */
export interface TenantTarget {
  /** a connection to the tenant (from the cache when there is one); a failure's hint names the tenant's entry */
  connect(url: string, tenantId: string): Promise<pg.Client>;
  /** done with it: kept for another job only when `reusable` (the job went well) */
  release(url: string, client: pg.Client, reusable: boolean): Promise<void>;
  /** the engine on that connection (its lock session is a second connection to `url`) */
  migrate(client: pg.Client, url: string, settings: Partial<EngineSettings>, set: MigrationSet, req: MigrateRequest): Promise<MigrateReport>;
  /** the engine's revert on that connection (a revert rollout's job: down files) */
  revert(client: pg.Client, url: string, settings: Partial<EngineSettings>, pairs: RevertPairs, req: RevertRequest): Promise<MigrateReport>;
  /** post-commit checks: invalid indexes, NOT VALID constraints, the schema's fingerprint */
  postChecks(client: pg.Client, schema: string, trackingTable: string): Promise<PostChecks>;
  /** the tenant's tracking table */
  readLedger(client: pg.Client, schema: string | undefined, table: string): Promise<AppliedRow[]>;
}

/** The real tenant side: connections (cached between jobs when `connections` is given), the Migrator, the pg checks. */
export function pgTenants(workerId: string, connections?: ConnectionCache): TenantTarget {
  const applicationName = `flotilla-worker ${workerId}`;
  return {
    connect: (url, tenantId) =>
      connections ? connections.acquire(url, tenantUrlSource(tenantId)) : connect(url, { applicationName, urlSource: tenantUrlSource(tenantId) }),
    release: async (url, client, reusable) => {
      if (connections) await connections.release(url, client, reusable);
      else await client.end().catch(() => {});
    },
    migrate: (client, url, settings, set, req) => {
      // the lock session: a second connection, taken only when something is pending (adapters/pg/lock.ts); from the
      // cache for a schema tenant (its database serves the next tenants), else opened and closed (the lock ends with it)
      const lockSessions =
        connections && settings.schema !== undefined ? connections.lockSessions(url) : connectLockSessions(url, { applicationName: `${applicationName} lock` });
      return new Migrator(client, settings, undefined, { lockSessions }).migrate(set, req);
    },
    revert: (client, url, settings, pairs, req) => {
      const lockSessions = connections ? connections.lockSessions(url) : connectLockSessions(url, { applicationName: `${applicationName} lock` });
      return new Migrator(client, settings, undefined, { lockSessions }).revert(pairs, req);
    },
    postChecks: (client, schema, trackingTable) => postChecks(client, schema, trackingTable),
    // where the engine keeps it (resolved as the engine does: adapters/pg/ledger.ts)
    readLedger: async (client, schema, table) => readLedger(client, await resolveLedger(client, schema, table)),
  };
}

/**
 * The most common fingerprint among a rollout's checked tenants. Counting them
 * is a scan of the rollout, so a worker reuses the answer for a second: drift
 * is a warning, and a fleet does not change its majority that fast. One per
 * worker (worker.ts creates it), passed to the processor in its deps.
 */
export class FleetFingerprints {
  private readonly majorities = new Map<string, { at: number; value: Promise<string | undefined> }>();
  constructor(
    private readonly clock: Clock,
    private readonly maxAgeMs = 1000,
  ) {}

  majority(store: Pick<ProcessorStore, 'fingerprints'>, rolloutId: string): Promise<string | undefined> {
    const hit = this.majorities.get(rolloutId);
    if (hit && this.clock.now() - hit.at < this.maxAgeMs) return hit.value;
    const value = store.fingerprints(rolloutId).then((known) => [...known.entries()].sort((a, b) => b[1] - a[1])[0]?.[0]);
    value.catch(() => this.majorities.delete(rolloutId));
    if (this.majorities.size > 100) this.majorities.clear();
    this.majorities.set(rolloutId, { at: this.clock.now(), value });
    return value;
  }
}
