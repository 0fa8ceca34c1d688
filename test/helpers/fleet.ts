/**
 * A fleet fixture for the fleet integration tests: a control database, a
 * unique BullMQ prefix, tenant databases (one database each) and
 * schema-per-tenant tenants (schemas on one shared database), a tenants file
 * writer, `flotilla worker` child processes, and a clean-up that stops the
 * workers and removes every database and Redis key it made.
 *
 * One fleet serves one control database + one prefix, so the workers it
 * starts serve every rollout made through `fleet.cli`; tests sharing a fleet
 * use distinct tenant ids. Tenants files and worker processes come from
 * fleet-base.ts, which the benchmarks use too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { adminUrl, createTestDatabase, type TestDatabase } from './db.js';
import { cleanEnv, runCli, type CliResult } from './cli.js';
import { spawnWorker, writeTenantsFile, type SpawnedWorker } from './fleet-base.js';
import { deleteKeys, redisUrl, testPrefix } from './redis.js';

/** The secret the leak checks look for: it goes into tenant URLs, never into Redis or logs. */
export const SECRET = 'S3cr3tPW';

export interface TenantSpec {
  id: string;
  /** 'database' (default): a database of its own; 'schema': a schema on the fleet's shared database */
  kind?: 'database' | 'schema';
  tags?: string[];
  window?: { cron: string; durationMinutes: number; tz?: string };
  /** password in the URL: none, `${TENANT_PW}` (resolved by the worker) or the secret written literally */
  password?: 'none' | 'env' | 'literal';
  /** host written in the URL: another host name for the same server is another server for --per-server */
  host?: string;
  /** point the tenant at a database that does not exist (a tenant that fails to connect) */
  missingDatabase?: boolean;
}

export interface FleetTenant {
  id: string;
  spec: TenantSpec;
  /** the tenant's database (the shared one for schema tenants) */
  db: TestDatabase;
  schema?: string;
  /** the URL as written in the tenants file (may hold a ${TENANT_PW} placeholder) */
  urlTemplate: string;
  /** run SQL in the tenant's database */
  query<R extends pg.QueryResultRow = any>(sql: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  /** the schema holding its tables and tracking table */
  readonly tableSchema: string;
}

export interface WorkerProcess extends SpawnedWorker {
  /** worker id as written in the control database and application_name */
  id: string;
}

export interface FleetOptions {
  /** FLOTILLA_JOB_LOCK_DURATION for workers (default 30s; 3s recovers a killed worker's job fast but a
   * starved event loop on a busy machine may then lose locks of live jobs) */
  lockDuration?: string;
  /** FLOTILLA_RECONCILE_EVERY for workers (default 2s) */
  reconcileEvery?: string;
  /** worker LOG_LEVEL (default debug: the leak checks read everything they log) */
  logLevel?: string;
}

export interface TenantStateRow {
  tenant_id: string;
  state: string;
  generation: number;
  attempts: number;
  worker: string | null;
  server: string;
  applied: string[];
  started_at: Date | null;
  finished_at: Date | null;
  not_before: Date | null;
}

export class Fleet {
  readonly tenants = new Map<string, FleetTenant>();
  readonly workers: WorkerProcess[] = [];
  /** CLI results of this fleet (stdout + stderr), for the leak checks */
  readonly cliOutputs: string[] = [];
  private readonly databases: TestDatabase[] = [];
  private shared: TestDatabase | undefined;
  private controlPool: pg.Pool | undefined;
  private constructor(
    readonly control: TestDatabase,
    readonly prefix: string,
    readonly dir: string,
    private readonly options: Required<FleetOptions>,
  ) {}

  static async create(options: FleetOptions = {}): Promise<Fleet> {
    const control = await createTestDatabase('ctl');
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-fleet-'));
    const fleet = new Fleet(control, testPrefix(), dir, { lockDuration: '30s', reconcileEvery: '2s', logLevel: 'debug', ...options });
    fleet.databases.push(control);
    return fleet;
  }

  /** Environment of the CLI: no tenant password (the producer never resolves placeholders). */
  cliEnv(extra: Record<string, string> = {}): Record<string, string> {
    return { CONTROL_DATABASE_URL: this.control.url, REDIS_URL: redisUrl(), FLOTILLA_QUEUE_PREFIX: this.prefix, ...extra };
  }

  /** Environment of a worker: the CLI's plus the tenant password and worker settings. */
  workerEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return cleanEnv({
      ...this.cliEnv(),
      TENANT_PW: SECRET,
      FLOTILLA_JOB_LOCK_DURATION: this.options.lockDuration,
      FLOTILLA_RECONCILE_EVERY: this.options.reconcileEvery,
      LOG_LEVEL: this.options.logLevel,
      ...extra,
    });
  }

  /** Create tenant databases / schemas (schemas are left for the engine to create). */
  async addTenants(specs: TenantSpec[]): Promise<FleetTenant[]> {
    const out: FleetTenant[] = [];
    for (const spec of specs) {
      if (this.tenants.has(spec.id)) throw new Error(`tenant ${spec.id} already exists in this fleet`);
      let db: TestDatabase;
      let schema: string | undefined;
      if (spec.kind === 'schema') {
        if (!this.shared) {
          this.shared = await createTestDatabase('shared');
          this.databases.push(this.shared);
        }
        db = this.shared;
        schema = `tenant_${spec.id.replace(/-/g, '_')}`;
      } else {
        db = await createTestDatabase('tn');
        this.databases.push(db);
      }
      const base = new URL(adminUrl());
      const password = spec.password === 'env' ? ':${TENANT_PW}' : spec.password === 'literal' ? `:${SECRET}` : '';
      const host = spec.host ?? base.hostname;
      const database = spec.missingDatabase ? `${db.name}_missing` : db.name;
      const urlTemplate = `postgres://${base.username || 'postgres'}${password}@${host}:${base.port || '5432'}/${database}`;
      const tenant: FleetTenant = {
        id: spec.id,
        spec,
        db,
        urlTemplate,
        query: (sql, values) => db.query(sql, values),
        tableSchema: schema ?? 'public',
        ...(schema ? { schema } : {}),
      };
      this.tenants.set(spec.id, tenant);
      out.push(tenant);
    }
    return out;
  }

  tenant(id: string): FleetTenant {
    const t = this.tenants.get(id);
    if (!t) throw new Error(`no tenant ${id}`);
    return t;
  }

  /** Write a YAML tenants file for these tenants (in this order); returns its path. */
  writeTenantsFile(tenants: FleetTenant[], name = `tenants-${Math.random().toString(36).slice(2, 8)}.yaml`): string {
    return writeTenantsFile(
      join(this.dir, name),
      tenants.map((t) => ({
        id: t.id,
        databaseUrl: t.urlTemplate,
        ...(t.schema ? { schema: t.schema } : {}),
        ...(t.spec.tags?.length ? { tags: t.spec.tags } : {}),
        ...(t.spec.window ? { window: { tz: 'UTC', ...t.spec.window } } : {}),
      })),
    );
  }

  /** Run the CLI against this fleet's control database and prefix. */
  async cli(args: string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
    const r = await runCli(args, { env: this.cliEnv(options.env), timeoutMs: options.timeoutMs ?? 120_000 });
    this.cliOutputs.push(r.stdout, r.stderr);
    return r;
  }

  /** Run the CLI with --json and parse stdout (fails loudly with the output when it is not JSON). */
  async cliJson<T = any>(
    args: string[],
    options: { env?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<{ code: number; json: T; stdout: string; stderr: string }> {
    const r = await this.cli([...args, '--json'], options);
    let json: T;
    try {
      json = JSON.parse(r.stdout) as T;
    } catch {
      throw new Error(`flotilla ${args.join(' ')} --json: exit ${r.code}, stdout is not JSON:\n${r.stdout}\nstderr:\n${r.stderr}`);
    }
    return { code: r.code, json, stdout: r.stdout, stderr: r.stderr };
  }

  /** Start `flotilla worker`; resolves once it reports that it started. */
  async startWorker(options: { concurrency?: number; env?: Record<string, string> } = {}): Promise<WorkerProcess> {
    const proc = spawnWorker({ env: this.workerEnv(options.env), concurrency: options.concurrency ?? 2, args: ['--drain-timeout', '5s'] });
    let timer: NodeJS.Timeout | undefined;
    const id = await Promise.race([
      proc.started,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          proc.child.kill('SIGKILL');
          reject(new Error(`worker did not start within 120 s:\n${proc.output()}`));
        }, 120_000);
      }),
    ]).finally(() => clearTimeout(timer));
    const w: WorkerProcess = { ...proc, id };
    this.workers.push(w);
    return w;
  }

  async startWorkers(n: number, options: { concurrency?: number } = {}): Promise<WorkerProcess[]> {
    return Promise.all(Array.from({ length: n }, () => this.startWorker(options)));
  }

  /** SIGTERM (drain), SIGKILL if it has not exited after `timeoutMs`. */
  async stopWorker(w: WorkerProcess, timeoutMs = 15_000): Promise<void> {
    if (w.child.exitCode === null && w.child.signalCode === null) {
      w.child.kill('SIGTERM');
      const timer = setTimeout(() => w.child.kill('SIGKILL'), timeoutMs);
      await w.exited;
      clearTimeout(timer);
    }
  }

  /** Every worker's output, killed ones included. */
  workerLogs(): string {
    return this.workers.map((w) => w.output()).join('\n');
  }

  /** Direct read access to the control database (the scheduler's truth). */
  async controlQuery<R extends pg.QueryResultRow = any>(sql: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    this.controlPool ??= new pg.Pool({ connectionString: this.control.url, max: 2 });
    return this.controlPool.query<R>(sql, values);
  }

  async tenantStates(rolloutId: string): Promise<Map<string, TenantStateRow>> {
    const r = await this.controlQuery<TenantStateRow>(
      `SELECT tenant_id, state, generation, attempts, worker, server, applied, started_at, finished_at, not_before
         FROM flotilla.rollout_tenants WHERE rollout_id = $1 ORDER BY position`,
      [rolloutId],
    );
    return new Map(r.rows.map((x) => [x.tenant_id, x]));
  }

  async rolloutRow(rolloutId: string): Promise<{ state: string; halt_reason: string | null; finished_at: Date | null }> {
    return (await this.controlQuery(`SELECT state, halt_reason, finished_at FROM flotilla.rollouts WHERE id = $1`, [rolloutId])).rows[0];
  }

  /** Every key of this fleet's prefix with its value, read with the command its TYPE calls for. */
  async dumpRedis(): Promise<{ keys: string[]; text: string }> {
    const r = new Redis(redisUrl());
    try {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await r.scan(cursor, 'MATCH', `${this.prefix}*`, 'COUNT', 1000);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
      const parts: string[] = [];
      for (const key of keys) {
        const type = await r.type(key);
        let value: unknown;
        switch (type) {
          case 'string':
            value = await r.get(key);
            break;
          case 'hash':
            value = await r.hgetall(key);
            break;
          case 'list':
            value = await r.lrange(key, 0, -1);
            break;
          case 'set':
            value = await r.smembers(key);
            break;
          case 'zset':
            value = await r.zrange(key, 0, -1, 'WITHSCORES');
            break;
          case 'stream':
            value = await r.xrange(key, '-', '+');
            break;
          case 'none':
            value = null;
            break; // expired between SCAN and TYPE
          default:
            throw new Error(`key ${key} has type ${type}, which the dump does not read`);
        }
        parts.push(`${key} (${type}): ${JSON.stringify(value)}`);
      }
      return { keys, text: parts.join('\n') };
    } finally {
      r.disconnect();
    }
  }

  /** Stop workers, drop every database, delete the prefix's keys and the temp dir. */
  async cleanup(): Promise<void> {
    await Promise.all(this.workers.map((w) => this.stopWorker(w).catch(() => {})));
    await this.controlPool?.end().catch(() => {});
    for (const db of this.databases.reverse()) await db.drop().catch(() => {});
    await deleteKeys(this.prefix).catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Poll until `fn` returns a truthy value; fail with `what` (and the last value) after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 60_000, intervalMs = 100): Promise<T> {
  const started = Date.now();
  let last: unknown;
  for (;;) {
    const v = await fn();
    if (v) return v;
    last = v;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Does this relation exist in the tenant's database? (schema-qualified name) */
export async function relationExists(t: FleetTenant, name: string, schema = t.tableSchema): Promise<boolean> {
  const r = await t.query(`SELECT to_regclass($1) IS NOT NULL AS ok`, [`"${schema}"."${name}"`]);
  return r.rows[0].ok;
}

/** Tracking rows of a tenant (name, applied_at, applied_by), or null when it has no tracking table. */
export async function trackingRows(t: FleetTenant, table = 'migrations'): Promise<{ name: string; applied_at: Date; applied_by: string }[] | null> {
  if (!(await relationExists(t, table))) return null;
  const r = await t.query(`SELECT name, applied_at, applied_by FROM "${t.tableSchema}"."${table}" ORDER BY name`);
  return r.rows;
}

/** Names of the user tables in a schema of the tenant's database. */
export async function tablesIn(t: FleetTenant, schema = t.tableSchema): Promise<string[]> {
  const r = await t.query(`SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename`, [schema]);
  return r.rows.map((x: { tablename: string }) => x.tablename);
}

export async function schemaExists(t: FleetTenant, schema: string): Promise<boolean> {
  return (await t.query(`SELECT 1 FROM pg_namespace WHERE nspname = $1`, [schema])).rowCount === 1;
}

export { GUIDE_MIGRATIONS } from './migrations.js';

/** Tables the guide migrations create. */
export const GUIDE_TABLES = ['audit_log', 'contracts', 'invoices', 'products', 'roles', 'user_roles', 'users'];

/** A CLI result as an assertion message: exit code and output. */
export function why(r: { code: number; stdout: string; stderr: string }): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}
