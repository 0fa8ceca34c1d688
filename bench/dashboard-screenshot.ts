/**
 * The README's screenshot of `flotilla dashboard` (docs/dashboard.png), taken during a
 * demo-like rollout: 20 tenants (6 databases, 14 schemas on a shared one), canary then waves
 * of 6, two workers, the guide's migrations plus a slow one so the picture catches the rollout
 * half-way, and one tenant that fails (a conflicting `products` table).
 *
 *   npm run build && npm run build:bench && node .bench-dist/bench/dashboard-screenshot.js [out.png [tenant.png]]
 *
 * (the second picture, of the failed tenant's page once the rollout ended, only when asked for)
 *
 * Needs /usr/bin/chromium (apt-get install -y chromium). DROPS AND RE-CREATES the databases
 * flotilla_shot_* on DEMO_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres);
 * Redis: REDIS_URL (default redis://127.0.0.1:6379), keys under the prefix {flotilla-shot}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { launchChromium } from '../test/helpers/browser.js';
import { CLI, REPO, writeTenantsFile, type TenantsFileEntry } from '../test/helpers/fleet-base.js';

const admin = process.env.DEMO_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const out = resolve(process.argv[2] ?? join(REPO, 'docs', 'dashboard.png'));
const tenantOut = process.argv[3] ? resolve(process.argv[3]) : undefined;
const TOKEN = 'screenshot-token-not-a-secret-0123';

const dbUrl = (name: string) => {
  const u = new URL(admin);
  u.pathname = `/${name}`;
  return u.toString();
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<number> {
  const databases = ['acme', 'globex', 'initech', 'umbrella', 'hooli', 'soylent'];
  const schemas = [
    'piedpiper',
    'stark',
    'wayne',
    'wonka',
    'tyrell',
    'cyberdyne',
    'oscorp',
    'aperture',
    'vandelay',
    'dunder',
    'prestige',
    'gringotts',
    'monarch',
    'duff',
  ];
  const names = ['control', 'shared', ...databases].map((d) => `flotilla_shot_${d}`);
  console.log(`Re-creating databases ${names.join(', ')} on ${new URL(admin).host}`);
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  for (const db of names) {
    await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${db}`);
  }
  await c.end();
  // initech fails at 005 (its own products table has no `name` column), as a real tenant might
  const initech = new pg.Client({ connectionString: dbUrl('flotilla_shot_initech') });
  await initech.connect();
  await initech.query('CREATE TABLE products (id text)');
  await initech.end();

  const dir = mkdtempSync(join(tmpdir(), 'flotilla-shot-'));
  const migrations = join(dir, 'migrations');
  mkdirSync(migrations);
  for (const f of readdirSync(join(REPO, 'migrations')).filter((f) => f.endsWith('.sql'))) copyFileSync(join(REPO, 'migrations', f), join(migrations, f));
  writeFileSync(
    join(migrations, '009_backfill_pause.sql'),
    '-- stands for a slow backfill, so the picture catches the rollout half-way\nSELECT pg_sleep(1.5);\n',
  );
  const tenants: TenantsFileEntry[] = [
    ...databases.map((d, i) => ({ id: d, databaseUrl: dbUrl(`flotilla_shot_${d}`), tags: i < 2 ? ['canary'] : ['eu'] })),
    ...schemas.map((s) => ({ id: s, databaseUrl: dbUrl('flotilla_shot_shared'), schema: `tenant_${s}`, tags: ['us'] })),
  ];
  const tenantsFile = writeTenantsFile(join(dir, 'tenants.yaml'), tenants);

  const env = {
    ...process.env,
    CONTROL_DATABASE_URL: dbUrl('flotilla_shot_control'),
    REDIS_URL: redisUrl,
    FLOTILLA_QUEUE_PREFIX: '{flotilla-shot}',
    FLOTILLA_DASHBOARD_TOKEN: TOKEN,
    LOG_LEVEL: 'warn',
  };
  const run = (args: string[]): ChildProcess => spawn(process.execPath, [CLI, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = (p: ChildProcess) => new Promise<number>((res) => (p.exitCode !== null ? res(p.exitCode) : p.on('close', (code) => res(code ?? 1))));
  const stdout = (p: ChildProcess) => {
    let s = '';
    p.stdout!.on('data', (d) => (s += d));
    return () => s;
  };

  const dashboard = run(['dashboard', '--port', '0']);
  let said = '';
  dashboard.stderr!.on('data', (d) => (said += d));
  const workers = [run(['worker', '--concurrency', '2']), run(['worker', '--concurrency', '2'])];
  const browser = await launchChromium();
  try {
    while (!/listening on (\S+)/.test(said)) {
      if (dashboard.exitCode !== null) throw new Error(`dashboard exited: ${said}`);
      await sleep(50);
    }
    const url = /listening on (\S+)/.exec(said)![1]!;
    const create = run([
      'rollout',
      '--dir',
      migrations,
      '--tenants',
      tenantsFile,
      '--all',
      '--canary',
      'canary',
      '--wave-size',
      '6',
      '--max-failures',
      '2',
      '--json',
    ]);
    const created = stdout(create);
    if ((await exited(create)) !== 0) throw new Error(`rollout failed to start: ${created()}`);
    const id = JSON.parse(created()).id as string;
    console.log(`Rollout ${id}; dashboard ${url}`);

    const page = await browser.newPage({ viewport: { width: 1280, height: 1100 }, deviceScaleFactor: 1 });
    await page.goto(`${url}/rollouts/${id}`);
    // half-way: the canary passed, initech failed, some tenants still running
    await page.waitForFunction(
      () => {
        const d = (globalThis as any).document;
        const n = (s: string) => d.querySelectorAll(`tr[data-tenant][data-state="${s}"]`).length;
        return n('failed') >= 1 && n('succeeded') >= 8 && n('running') >= 2;
      },
      undefined,
      { timeout: 120_000, polling: 100 },
    );
    await page.screenshot({ path: out, fullPage: true });
    console.log(`Screenshot: ${out}`);
    await page.waitForFunction(() => (globalThis as any).document.querySelector('.summary .state')?.textContent !== 'running', undefined, { timeout: 180_000 });
    console.log(`Rollout ended: ${await page.locator('.summary .state').textContent()}`);
    if (tenantOut) {
      await page.goto(`${url}/rollouts/${id}/tenants/initech`);
      await page.screenshot({ path: tenantOut, fullPage: true });
      console.log(`Screenshot: ${tenantOut}`);
    }
    return 0;
  } finally {
    await browser.close();
    for (const p of [dashboard, ...workers]) p.kill('SIGTERM');
    await Promise.all([dashboard, ...workers].map(exited));
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`dashboard screenshot failed: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  },
);
