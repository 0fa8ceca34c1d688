/**
 * Where fleets are made, for the tests and the benchmarks alike (bench/ imports
 * this file, so it must not import vitest): the repo's paths, tenants files,
 * `flotilla worker` child processes, and a bulk fleet of N tenant databases
 * cloned from an empty template (fast enough for thousands) with a control
 * database. `fleet.ts` builds the per-test fixture on top of it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { stringify } from 'yaml';

/** The repository root: the nearest folder with a package.json (from test/helpers or a compiled .bench-dist/ alike). */
function findRepo(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return dir;
}

export const REPO = findRepo();
/** The built CLI, run as a user would. */
export const CLI = join(REPO, 'dist', 'cli', 'main.js');

export function dbUrl(admin: string, name: string): string {
  const u = new URL(admin);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function adminQuery(admin: string, sql: string, values?: unknown[]): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  try {
    return await c.query(sql, values);
  } finally {
    await c.end();
  }
}

/** One entry of a tenants file, as the CLI reads it. */
export interface TenantsFileEntry {
  id: string;
  databaseUrl: string;
  schema?: string;
  tags?: string[];
  window?: { cron: string; durationMinutes: number; tz?: string };
}

/** Write a YAML tenants file (entries in this order) to `path`; returns `path`. */
export function writeTenantsFile(path: string, entries: TenantsFileEntry[]): string {
  writeFileSync(path, stringify({ tenants: entries }));
  return path;
}

export interface FleetTenantInfo {
  id: string;
  /** its database (the shared one for schema tenants) */
  database: string;
  url: string;
  schema?: string;
}

export interface FleetFixture {
  tenantsFile: string;
  tenantIds: string[];
  /** every tenant with its database, URL and schema, in tenants-file order */
  tenants: FleetTenantInfo[];
  databases: string[];
  controlUrl: string;
  drop(): Promise<void>;
}

/**
 * `dbTenants` databases plus `schemaTenants` schemas spread over one shared
 * database. Names start with `prefix`; a previous run's databases of that
 * prefix are dropped first.
 */
export async function createFleet(admin: string, prefix: string, dbTenants: number, schemaTenants = 0): Promise<FleetFixture> {
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  const databases: string[] = [];
  const template = `${prefix}_template`;
  const control = `${prefix}_control`;
  const shared = `${prefix}_shared`;
  try {
    const old = await c.query(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`${prefix}\\_%`]);
    for (const r of old.rows) {
      // a template left by an interrupted run cannot be dropped as it is
      await c.query(`ALTER DATABASE "${r.datname}" IS_TEMPLATE false`);
      await c.query(`DROP DATABASE IF EXISTS "${r.datname}" WITH (FORCE)`);
    }
    await c.query(`CREATE DATABASE "${template}" IS_TEMPLATE true`);
    for (const name of [control, ...(schemaTenants ? [shared] : [])]) {
      await c.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
      databases.push(name);
    }
    const tenantIds: string[] = [];
    const tenants: FleetTenantInfo[] = [];
    for (let i = 1; i <= dbTenants; i++) {
      const name = `${prefix}_t${String(i).padStart(5, '0')}`;
      await c.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
      databases.push(name);
      const id = `t${String(i).padStart(5, '0')}`;
      tenantIds.push(id);
      tenants.push({ id, database: name, url: dbUrl(admin, name) });
    }
    for (let i = 1; i <= schemaTenants; i++) {
      const id = `s${String(i).padStart(5, '0')}`;
      tenantIds.push(id);
      tenants.push({ id, database: shared, url: dbUrl(admin, shared), schema: `tenant_${id}` });
    }
    const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
    const tenantsFile = writeTenantsFile(
      join(dir, 'tenants.yaml'),
      tenants.map((t) => ({ id: t.id, databaseUrl: t.url, ...(t.schema ? { schema: t.schema } : {}) })),
    );
    return {
      tenantsFile,
      tenantIds,
      tenants,
      databases,
      controlUrl: dbUrl(admin, control),
      drop: async () => {
        const d = new pg.Client({ connectionString: admin });
        await d.connect();
        try {
          for (const name of [...databases, template]) {
            if (name === template) await d.query(`ALTER DATABASE "${template}" IS_TEMPLATE false`).catch(() => {});
            await d.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
          }
        } finally {
          await d.end();
        }
      },
    };
  } finally {
    await c.end();
  }
}

export interface SpawnedWorker {
  child: ChildProcess;
  pid: number;
  /** resolves with the worker's id once it printed "worker <id> started"; rejects if it exits first */
  started: Promise<string>;
  /** resolves with the exit code once the process exited */
  exited: Promise<number | null>;
  /** everything the worker wrote on stdout and stderr so far (logs, "worker <id> started") */
  output(): string;
  /** peak resident memory (VmHWM) seen so far, sampled from /proc every 500 ms */
  peakRssMb(): number;
  /** CPU time (user + system) the worker used so far, from /proc; NaN once it exited */
  cpuSeconds(): number;
  /** send `signal` (default SIGTERM) and resolve once it exited */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface SpawnWorkerOptions {
  env: NodeJS.ProcessEnv;
  concurrency: number;
  /** more arguments after `worker --concurrency n` */
  args?: string[];
  /** the built CLI to run (default: dist/cli/main.js) */
  cli?: string;
}

/** Start `flotilla worker` as a child process (LOG_LEVEL info unless `env` sets it). */
export function spawnWorker(options: SpawnWorkerOptions): SpawnedWorker {
  const args = [options.cli ?? CLI, 'worker', '--concurrency', String(options.concurrency), ...(options.args ?? [])];
  const child = spawn(process.execPath, args, {
    cwd: REPO,
    env: { ...options.env, LOG_LEVEL: options.env.LOG_LEVEL ?? 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  let peak = 0;
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const started = new Promise<string>((resolve, reject) => {
    const check = () => {
      const m = /worker (\S+) started/.exec(log);
      if (m) {
        child.stderr!.off('data', check);
        resolve(m[1]!);
      }
    };
    child.stderr!.on('data', check);
    void exited.then((code) => reject(new Error(`worker exited with ${code} before starting:\n${log}`)));
  });
  started.catch(() => {});
  const sample = () => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak, Number(m[1]) / 1024);
    } catch {}
  };
  const timer = setInterval(sample, 500);
  timer.unref();
  child.once('exit', () => clearInterval(timer));
  return {
    child,
    pid: child.pid!,
    started,
    exited,
    output: () => log,
    peakRssMb: () => {
      sample();
      return peak;
    },
    cpuSeconds: () => {
      try {
        // fields 14 and 15 of /proc/pid/stat (after the parenthesised command name): utime, stime in clock ticks
        const f = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        return (Number(f[11]) + Number(f[12])) / 100;
      } catch {
        return Number.NaN;
      }
    },
    stop: (signal = 'SIGTERM') =>
      new Promise<void>((resolve) => {
        sample();
        clearInterval(timer);
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      }),
  };
}
