/**
 * `npm run demo`: a real rollout over a few local tenant databases.
 * Creates 4 tenant databases and 2 schema-per-tenant tenants on a shared one
 * (fresh every run), starts two worker processes, runs
 * `flotilla rollout --all --canary canary --wave-size 50% --wait` with the guide's
 * migrations, prints one tenant's `status`, and stops the workers.
 *
 * Uses DEMO_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres: a
 * role that may create databases) and REDIS_URL (default redis://127.0.0.1:6379).
 * It says which `flotilla_demo_*` databases it drops and re-creates before it
 * does. Exits 1 when the rollout did not succeed for every tenant, or when a
 * tenant's tracking table does not hold every migration afterwards (checked in
 * the databases themselves, not only in the rollout's report).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { readMigrationFiles } from '../src/adapters/fs-source.js';
import { redactUrl } from '../src/core/redact.js';
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
  await c.connect().catch((e) => {
    throw new Error(
      `cannot connect to ${redactUrl(admin)} (${e instanceof Error ? e.message : e}). Set DEMO_ADMIN_URL to a Postgres role that may create databases.`,
    );
  });
  const dbs = [
    'flotilla_demo_control',
    'flotilla_demo_acme',
    'flotilla_demo_globex',
    'flotilla_demo_initech',
    'flotilla_demo_umbrella',
    'flotilla_demo_shared',
  ];
  console.log(`Dropping and re-creating the demo databases on ${redactUrl(admin)} (DEMO_ADMIN_URL): ${dbs.join(', ')}`);
  for (const db of dbs) {
    await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${db}`);
  }
  await c.end();

  const dir = mkdtempSync(join(tmpdir(), 'flotilla-demo-'));
  const tenantsFile = join(dir, 'tenants.yaml');
  const base = new URL(admin);
  const withPlaceholder = (db: string) => `postgres://${base.username || 'postgres'}:\${DEMO_TENANT_PW}@${base.host}/${db}`;
  const tenants = [
    { id: 'acme', databaseUrl: withPlaceholder('flotilla_demo_acme'), tags: ['canary', 'eu'], db: 'flotilla_demo_acme' },
    { id: 'globex', databaseUrl: dbUrl('flotilla_demo_globex'), tags: ['us'], db: 'flotilla_demo_globex' },
    { id: 'initech', databaseUrl: dbUrl('flotilla_demo_initech'), tags: ['us'], db: 'flotilla_demo_initech' },
    { id: 'umbrella', databaseUrl: dbUrl('flotilla_demo_umbrella'), tags: ['eu'], db: 'flotilla_demo_umbrella' },
    { id: 'hooli', databaseUrl: dbUrl('flotilla_demo_shared'), schema: 'tenant_hooli', tags: ['eu'], db: 'flotilla_demo_shared' },
    { id: 'piedpiper', databaseUrl: dbUrl('flotilla_demo_shared'), schema: 'tenant_piedpiper', tags: ['us'], db: 'flotilla_demo_shared' },
  ];
  writeTenantsFile(
    tenantsFile,
    tenants.map(({ db: _db, ...t }) => t),
  );
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
    const status = await exited(run(['status', '--database-url', dbUrl('flotilla_demo_shared'), '--schema', 'tenant_hooli']));
    const missing = await unapplied(tenants);
    if (code !== 0) console.error(`\ndemo failed: the rollout exited with code ${code} (not every tenant succeeded)`);
    if (status !== 0) console.error(`demo failed: flotilla status exited with code ${status}`);
    for (const m of missing) console.error(`demo failed: ${m}`);
    if (code === 0 && status === 0 && !missing.length) console.log('\nDemo succeeded: every tenant holds every migration.');
    return code !== 0 ? code : status !== 0 || missing.length ? 1 : 0;
  } finally {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map(exited));
  }
}

/** What each tenant's own tracking table lacks of the repo's migrations (the databases, not the report). */
async function unapplied(tenants: { id: string; db: string; schema?: string }[]): Promise<string[]> {
  // the directory the CLI ran (cwd REPO: MIGRATIONS_DIR when set, else ./migrations)
  const want = (await readMigrationFiles(resolve(REPO, process.env.MIGRATIONS_DIR || 'migrations'))).map((f) => f.name).sort();
  const problems: string[] = [];
  for (const t of tenants) {
    const c = new pg.Client({ connectionString: dbUrl(t.db) });
    await c.connect();
    try {
      const table = `${t.schema ? `"${t.schema}".` : ''}migrations`;
      const rows = await c.query(`SELECT name FROM ${table}`).catch(() => ({ rows: [] as { name: string }[] }));
      const have = new Set(rows.rows.map((r) => r.name));
      const lacking = want.filter((n) => !have.has(n));
      if (lacking.length) problems.push(`tenant ${t.id} lacks ${lacking.length} of ${want.length} migrations (${lacking.join(', ')})`);
    } finally {
      await c.end();
    }
  }
  return problems;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`demo failed: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  },
);
