/**
 * Phase 1 of a chaos run: the migrations (the repo's plus the chaos ones), the
 * tenants (databases and schemas, in a seeded shuffled order), a reference
 * database holding the expected schema, a private Redis, the lock-hold tenants
 * (001 pre-applied by the CLI so the locked table exists), the workers, and a
 * pool on the control database.
 */
import { copyFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { loadMigrationDir } from '../../src/adapters/fs-source.js';
import type { MigrationSet } from '../../src/core/migration-set.js';
import { REPO, createFleet, dbUrl, writeTenantsFile, type FleetFixture, type FleetTenantInfo } from '../../test/helpers/fleet-base.js';
import { baseEnv, qi, sleep, type ChaosRun } from './context.js';
import { CHAOS_MIGRATIONS } from './options.js';
import { PrivateRedis } from './redis.js';

export interface ChaosSetup {
  set: MigrationSet;
  fleet: FleetFixture;
  redis: PrivateRedis;
  control: pg.Pool;
  referenceUrl: string;
  tenantsFile: string;
  /** the tenants in tenants-file order */
  order: FleetTenantInfo[];
  byId: Map<string, FleetTenantInfo>;
  /** the tenants a lock is held on while the rollout starts */
  lockTenants: FleetTenantInfo[];
  /** tenants that a CLI run may have migrated (pre-applied files, concurrent `pending` runs) */
  cliTenants: Set<string>;
  /** tenants some chaos event is already aimed at */
  busy: Set<string>;
}

/** Returns undefined when the run was stopped before setup was done. */
export async function setUp(run: ChaosRun): Promise<ChaosSetup | undefined> {
  const { o, dir, figures } = run;
  const repoMigrations = join(REPO, 'migrations');
  for (const f of readdirSync(repoMigrations).filter((f) => f.endsWith('.sql'))) copyFileSync(join(repoMigrations, f), join(dir, f));
  for (const [name, sql] of Object.entries(CHAOS_MIGRATIONS)) writeFileSync(join(dir, name), sql);
  const set: MigrationSet = await loadMigrationDir(dir);
  figures.migrations = set.migrations.length;
  run.log(
    `setting up ${o.tenants} tenants (${o.tenants - o.schemaTenants} databases, ${o.schemaTenants} schemas on a shared one), ${set.migrations.length} migrations, prefix ${o.prefix}`,
  );
  const fleet = await createFleet(o.adminUrl, o.prefix, o.tenants - o.schemaTenants, o.schemaTenants);
  run.fleet = fleet;
  if (run.aborted) return undefined;
  await run.admin((c) => c.query(`CREATE DATABASE ${qi(run.referenceDb)} TEMPLATE ${qi(`${o.prefix}_template`)}`));
  run.referenceCreated = true;
  const referenceUrl = dbUrl(o.adminUrl, run.referenceDb);
  {
    const c = new pg.Client({ connectionString: referenceUrl });
    await c.connect();
    try {
      for (const m of set.migrations) await c.query(m.sql);
    } finally {
      await c.end();
    }
  }
  // the tenants file in a seeded shuffled order: schema tenants among database tenants
  const order = [...fleet.tenants];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(run.random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const tenantsFile = writeTenantsFile(
    join(dir, 'tenants.yaml'),
    order.map((t) => ({ id: t.id, databaseUrl: t.url, ...(t.schema ? { schema: t.schema } : {}) })),
  );
  const byId = new Map(order.map((t) => [t.id, t]));

  const redis = await PrivateRedis.start();
  run.redis = redis;
  run.log(`private redis-server on port ${redis.port}`);
  const env = baseEnv({ CONTROL_DATABASE_URL: fleet.controlUrl, REDIS_URL: redis.url, FLOTILLA_QUEUE_PREFIX: '{chaos}', LOG_LEVEL: 'warn' });
  run.env = env;
  run.workerEnv = { ...env, FLOTILLA_JOB_LOCK_DURATION: `${o.jobLockMs}ms`, FLOTILLA_RECONCILE_EVERY: `${o.reconcileEveryMs}ms`, LOG_LEVEL: 'info' };

  // lock-hold tenants: early in the order (so they are attempted while the lock is held), schema tenants first;
  // 001 is applied beforehand by the CLI so that the locked table exists
  const early = order.slice(0, Math.max(4, Math.ceil(order.length / 10)));
  const lockTenants = [...early.filter((t) => t.schema), ...early.filter((t) => !t.schema)].slice(0, o.lockHolds);
  const cliTenants = new Set<string>(lockTenants.map((t) => t.id));
  const busy = new Set<string>(lockTenants.map((t) => t.id));
  for (const t of lockTenants) {
    const r = await run.runCli(['run', set.migrations[0]!.name, '--dir', dir, '--database-url', t.url, ...(t.schema ? ['--schema', t.schema] : [])], env);
    if (r.code !== 0) throw new Error(`pre-applying ${set.migrations[0]!.name} to ${t.id}: exit ${r.code}: ${r.stderr.slice(-500)}`);
  }

  for (let i = 0; i < o.workers; i++) run.startWorker();
  await Promise.race([
    Promise.all(run.workers.map((w) => w.proc.started)),
    sleep(120_000).then(() => Promise.reject(new Error('workers did not start within 120 s'))),
  ]);
  const control = new pg.Pool({ connectionString: fleet.controlUrl, max: 2, application_name: 'flotilla-chaos' });
  run.control = control;
  control.on('error', () => {});
  figures.seconds.setup = (performance.now() - run.t0) / 1000;
  run.log(`setup done: ${o.workers} workers x ${o.concurrency}`);
  return { set, fleet, redis, control, referenceUrl, tenantsFile, order, byId, lockTenants, cliTenants, busy };
}
