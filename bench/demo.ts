/**
 * `npm run demo`: a real rollout over a few local tenant databases.
 * Creates 4 tenant databases and 2 schema-per-tenant tenants on a shared one
 * (fresh every run), starts two worker processes, runs
 * `flotilla rollout --all --canary canary --wave-size 50% --wait` with the guide's
 * migrations, prints one tenant's `status`, and stops the workers.
 *
 * Uses DEMO_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres) and
 * REDIS_URL (default redis://127.0.0.1:6379).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { CLI, REPO, writeTenantsFile } from '../test/helpers/fleet-base.js';

const admin = process.env.DEMO_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

function dbUrl(name: string, password?: string): string {
  const u = new URL(admin);
  u.pathname = `/${name}`;
  if (password) u.password = password;
  return u.toString();
}

async function main(): Promise<number> {
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  const dbs = [
    'flotilla_demo_control',
    'flotilla_demo_acme',
    'flotilla_demo_globex',
    'flotilla_demo_initech',
    'flotilla_demo_umbrella',
    'flotilla_demo_shared',
  ];
  for (const db of dbs) {
    await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${db}`);
  }
  await c.end();

  const dir = mkdtempSync(join(tmpdir(), 'flotilla-demo-'));
  const tenantsFile = join(dir, 'tenants.yaml');
  const base = new URL(admin);
  const withPlaceholder = (db: string) => `postgres://${base.username || 'postgres'}:\${DEMO_TENANT_PW}@${base.host}/${db}`;
  writeTenantsFile(tenantsFile, [
    { id: 'acme', databaseUrl: withPlaceholder('flotilla_demo_acme'), tags: ['canary', 'eu'] },
    { id: 'globex', databaseUrl: dbUrl('flotilla_demo_globex'), tags: ['us'] },
    { id: 'initech', databaseUrl: dbUrl('flotilla_demo_initech'), tags: ['us'] },
    { id: 'umbrella', databaseUrl: dbUrl('flotilla_demo_umbrella'), tags: ['eu'] },
    { id: 'hooli', databaseUrl: dbUrl('flotilla_demo_shared'), schema: 'tenant_hooli', tags: ['eu'] },
    { id: 'piedpiper', databaseUrl: dbUrl('flotilla_demo_shared'), schema: 'tenant_piedpiper', tags: ['us'] },
  ]);
  const env = {
    ...process.env,
    CONTROL_DATABASE_URL: dbUrl('flotilla_demo_control'),
    REDIS_URL: redisUrl,
    FLOTILLA_QUEUE_PREFIX: '{flotilla-demo}',
    // the password stays out of the tenants file; only workers resolve it (trust auth ignores it locally)
    DEMO_TENANT_PW: process.env.DEMO_TENANT_PW ?? 'not-a-real-secret',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  };
  const run = (args: string[], stdio: 'inherit' | 'ignore' = 'inherit'): ChildProcess =>
    spawn(process.execPath, [CLI, ...args], { cwd: REPO, env, stdio: ['ignore', stdio, 'inherit'] });
  const exited = (p: ChildProcess) => new Promise<number>((res) => p.on('close', (code) => res(code ?? 1)));

  console.log(`Tenants file: ${tenantsFile}`);
  console.log('Starting 2 workers (concurrency 2 each)...');
  const workers = [run(['worker', '--concurrency', '2'], 'ignore'), run(['worker', '--concurrency', '2'], 'ignore')];
  try {
    console.log('$ flotilla rollout --tenants tenants.yaml --all --canary canary --wave-size 50% --wait\n');
    const code = await exited(run(['rollout', '--tenants', tenantsFile, '--all', '--canary', 'canary', '--wave-size', '50%', '--wait']));
    console.log('\n$ flotilla status --database-url .../flotilla_demo_shared --schema tenant_hooli\n');
    await exited(run(['status', '--database-url', dbUrl('flotilla_demo_shared'), '--schema', 'tenant_hooli']));
    return code;
  } finally {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map(exited));
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`demo failed: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  },
);
