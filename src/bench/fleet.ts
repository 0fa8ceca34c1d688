/**
 * Fleet fixture for benchmarks and the chaos run: N tenant databases cloned
 * from an empty template (fast), a control database, a tenants file, and
 * worker processes whose peak memory is read from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export function dbUrl(admin: string, name: string): string {
  const u = new URL(admin);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function adminQuery(admin: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
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
 * database. Names start with `prefix`.
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
    const lines = ['tenants:'];
    const tenantIds: string[] = [];
    const tenants: FleetTenantInfo[] = [];
    for (let i = 1; i <= dbTenants; i++) {
      const name = `${prefix}_t${String(i).padStart(5, '0')}`;
      await c.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
      databases.push(name);
      const id = `t${String(i).padStart(5, '0')}`;
      tenantIds.push(id);
      tenants.push({ id, database: name, url: dbUrl(admin, name) });
      lines.push(`  - { id: ${id}, databaseUrl: "${dbUrl(admin, name)}" }`);
    }
    for (let i = 1; i <= schemaTenants; i++) {
      const id = `s${String(i).padStart(5, '0')}`;
      tenantIds.push(id);
      tenants.push({ id, database: shared, url: dbUrl(admin, shared), schema: `tenant_${id}` });
      lines.push(`  - { id: ${id}, databaseUrl: "${dbUrl(admin, shared)}", schema: tenant_${id} }`);
    }
    const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
    const tenantsFile = join(dir, 'tenants.yaml');
    writeFileSync(tenantsFile, `${lines.join('\n')}\n`);
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

export interface WorkerProcess {
  child: ChildProcess;
  /** resolves when the worker logged that it started */
  ready: Promise<void>;
  peakRssMb(): number;
  /** what the worker wrote on stderr so far (logs, "worker <id> started") */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface CliPathOptions {
  /** the built CLI to run (default: dist/cli/main.js next to this file) */
  cli?: string;
  /** more arguments after `worker --concurrency n` */
  args?: string[];
}

export function startWorkerProcess(env: NodeJS.ProcessEnv, concurrency: number, logFile?: string, options: CliPathOptions = {}): WorkerProcess {
  const args = [options.cli ?? CLI, 'worker', '--concurrency', String(concurrency), ...(options.args ?? [])];
  const child = spawn(process.execPath, args, { cwd: REPO, env: { ...env, LOG_LEVEL: env.LOG_LEVEL ?? 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  let peak = 0;
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('worker started')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`worker exited with ${code} before starting: ${log.slice(-500)}`)));
  });
  ready.catch(() => {});
  const sample = () => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak, Number(m[1]) / 1024);
    } catch {}
  };
  const timer = setInterval(sample, 500);
  return {
    child,
    ready,
    peakRssMb: () => (sample(), peak),
    output: () => log,
    stop: (signal = 'SIGTERM') =>
      new Promise<void>((resolve) => {
        sample();
        clearInterval(timer);
        if (logFile) writeFileSync(logFile, log);
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      }),
  };
}

export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv,
  options: Pick<CliPathOptions, 'cli'> = {},
): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [options.cli ?? CLI, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr, ms: performance.now() - started }));
  });
}
