/**
 * Peers for the rollout benchmark, run the way their users run them: one CLI
 * process per tenant, `concurrency` at a time, via `xargs -P`.
 *
 *  - dbmate (npm package `dbmate`: a Node wrapper that spawns the Go binary
 *    shipped in `@dbmate/<platform>-<arch>`): `dbmate --no-dump-schema
 *    --migrations-dir DIR up` with DATABASE_URL set per invocation, no `--wait`.
 *    `dbmate-native` runs the Go binary directly (what users of the
 *    Homebrew/GitHub-release binary pay), to show the wrapper's cost.
 *  - node-pg-migrate: `node-pg-migrate up -m DIR` with DATABASE_URL, on `.sql`
 *    migration files (`-- Up Migration` / `-- Down Migration`).
 *
 * ./migrations is converted into each tool's naming and format. The files' own
 * BEGIN;/COMMIT; lines are dropped: both tools wrap migrations in a transaction
 * of their own (as Flotilla does), and a COMMIT inside it would end theirs.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { readMigrationFiles } from '../src/adapters/fs-source.js';
import { REPO } from '../test/helpers/fleet-base.js';

export type PeerMethod = 'dbmate' | 'dbmate-native' | 'node-pg-migrate';
export const PEER_METHODS: readonly PeerMethod[] = ['dbmate', 'node-pg-migrate'];

export interface PeerResult {
  method: PeerMethod;
  tenants: number;
  concurrency: number;
  /** wall time from spawning xargs to its exit */
  totalMs: number;
  msPerTenant: number;
  tenantsPerSec: number;
  /** tenants whose CLI exited non-zero or that failed verification */
  failures: number;
  /** tenants checked after the run (not included in totalMs) */
  verified: number;
  /** a few error messages (tool stderr tail, verification errors) */
  errors: string[];
}

export interface PeerMigrations {
  dbmateDir: string;
  nodePgMigrateDir: string;
  /** number of migration files */
  count: number;
  /** tables and types created by the migrations, checked after a run */
  expect: { tables: string[]; types: string[] };
  cleanup(): void;
}

export interface RunPeerOptions {
  /** 'all' (default): one query per tenant; a number: that many tenants spread over the list; 0: none */
  verify?: 'all' | number;
  /** extra environment for the CLI processes */
  env?: NodeJS.ProcessEnv;
}

const TX_CONTROL = /^\s*(BEGIN|COMMIT|START\s+TRANSACTION)(\s+(WORK|TRANSACTION))?\s*;\s*$/gim;

/** The file's own top-level BEGIN;/COMMIT; lines removed (a plpgsql `BEGIN` has no semicolon, `END;` is kept). */
export function stripTransactionControl(sql: string): string {
  return sql.replace(TX_CONTROL, '');
}

/** Converts `srcDir` (NNN_name.sql) into dbmate and node-pg-migrate migration directories, in the same order. */
export async function preparePeerMigrations(srcDir: string): Promise<PeerMigrations> {
  const files = await readMigrationFiles(srcDir);
  const root = mkdtempSync(join(tmpdir(), 'flotilla-peers-'));
  const dbmateDir = join(root, 'dbmate');
  const nodePgMigrateDir = join(root, 'node-pg-migrate');
  const tables = new Set<string>();
  const types = new Set<string>();
  mkdirSync(dbmateDir);
  mkdirSync(nodePgMigrateDir);
  files.forEach((f, i) => {
    const stem = f.name.replace(/\.sql$/i, '').replace(/^\d+[_-]?/, '') || `migration_${i + 1}`;
    const body = stripTransactionControl(f.sql).trim();
    const n = String(i + 1);
    // dbmate: version prefix (digits, conventionally a timestamp), markers
    writeFileSync(join(dbmateDir, `20240101${n.padStart(6, '0')}_${stem}.sql`), `-- migrate:up\n${body}\n\n-- migrate:down\n`);
    // node-pg-migrate: numeric prefix (its `index` filename format), markers
    writeFileSync(join(nodePgMigrateDir, `${n.padStart(4, '0')}_${stem}.sql`), `-- Up Migration\n${body}\n\n-- Down Migration\n`);
    for (const m of f.sql.matchAll(/CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?("?[\w.]+"?)/gi)) tables.add(m[1]!.replace(/"/g, ''));
    for (const m of f.sql.matchAll(/CREATE\s+TYPE\s+("?[\w.]+"?)/gi)) types.add(m[1]!.replace(/"/g, ''));
  });
  return {
    dbmateDir,
    nodePgMigrateDir,
    count: files.length,
    expect: { tables: [...tables], types: [...types] },
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

const requireFromRepo = createRequire(join(REPO, 'package.json'));

/** Absolute path of a CLI as `npm exec`/npm scripts resolve it (no npx startup). */
function binPath(name: string): string {
  return join(REPO, 'node_modules', '.bin', name);
}

/** The command line one tenant runs (DATABASE_URL comes from the environment). */
export function peerCommand(method: PeerMethod, dirs: Pick<PeerMigrations, 'dbmateDir' | 'nodePgMigrateDir'>): string[] {
  switch (method) {
    case 'dbmate':
      return [binPath('dbmate'), '--no-dump-schema', '--migrations-dir', dirs.dbmateDir, 'up'];
    case 'dbmate-native':
      return [requireFromRepo.resolve(`@dbmate/${process.platform}-${process.arch}/bin/dbmate`), '--no-dump-schema', '--migrations-dir', dirs.dbmateDir, 'up'];
    case 'node-pg-migrate':
      return [binPath('node-pg-migrate'), 'up', '-m', dirs.nodePgMigrateDir];
  }
}

/** dbmate speaks lib/pq, whose default sslmode is `require`: users of a local, non-TLS server add sslmode=disable, as its docs show. */
function tenantUrl(method: PeerMethod, url: string): string {
  if (method === 'node-pg-migrate') return url;
  const u = new URL(url);
  if (!u.searchParams.has('sslmode')) u.searchParams.set('sslmode', 'disable');
  return u.toString();
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Runs `method` over every tenant URL, one CLI process each, `concurrency` at
 * a time (`xargs -0 -P C -n 1 sh -c '…'`), then checks the tenants.
 */
export async function runPeer(method: PeerMethod, urls: string[], concurrency: number, dirs: PeerMigrations, opts: RunPeerOptions = {}): Promise<PeerResult> {
  const cmd = peerCommand(method, dirs).map(shq).join(' ');
  const script = `DATABASE_URL="$1"; export DATABASE_URL; ${cmd} >/dev/null || { printf 'FAIL %s\\n' "$1"; exit 1; }`;
  const env = { ...process.env, ...opts.env };
  delete env.DATABASE_URL;
  const input = urls.map((u) => tenantUrl(method, u)).join('\0');
  const failed = new Set<string>();
  const errors: string[] = [];
  let stderrTail = '';
  const started = performance.now();
  const { code, ms } = await new Promise<{ code: number; ms: number }>((resolve, reject) => {
    const child = spawn('xargs', ['-0', '-P', String(concurrency), '-n', '1', 'sh', '-c', script, 'sh'], { cwd: REPO, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderrTail = (stderrTail + d.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('close', (c) => {
      const ms = performance.now() - started;
      for (const line of out.split('\n')) if (line.startsWith('FAIL ')) failed.add(line.slice(5));
      resolve({ code: c ?? -1, ms });
    });
    child.stdin.end(input);
  });
  if (code !== 0 && failed.size === 0) errors.push(`xargs exited with ${code}`);
  if (failed.size > 0 || code !== 0) errors.push(`${failed.size} tenant(s) failed; stderr tail: ${stderrTail.trim().slice(-1500)}`);

  // verification: the tool's bookkeeping has every migration and the schema objects exist
  const table = method === 'node-pg-migrate' ? 'pgmigrations' : 'schema_migrations';
  const objects = [
    ...dirs.expect.tables.map((t) => `to_regclass(${pgLiteral(t)}) IS NOT NULL`),
    ...dirs.expect.types.map((t) => `to_regtype(${pgLiteral(t)}) IS NOT NULL`),
  ];
  const sql = `SELECT (SELECT count(*)::int FROM ${table}) AS applied, ${objects.length ? objects.join(' AND ') : 'true'} AS schema_ok`;
  const verify = opts.verify ?? 'all';
  const sample = verify === 'all' ? urls : pickSpread(urls, verify);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(4, sample.length) }, async () => {
      while (next < sample.length) {
        const url = sample[next++]!;
        const client = new pg.Client({ connectionString: url });
        try {
          await client.connect();
          const row = (await client.query(sql)).rows[0];
          if (row.applied !== dirs.count || !row.schema_ok)
            throw new Error(`${row.applied}/${dirs.count} migrations recorded, schema ${row.schema_ok ? 'ok' : 'incomplete'}`);
        } catch (e) {
          const key = tenantUrl(method, url);
          if (!failed.has(key)) {
            failed.add(key);
            if (errors.length < 5) errors.push(`${new URL(url).pathname.slice(1)}: ${(e as Error).message}`);
          }
        } finally {
          await client.end().catch(() => {});
        }
      }
    }),
  );
  return {
    method,
    tenants: urls.length,
    concurrency,
    totalMs: ms,
    msPerTenant: urls.length ? ms / urls.length : 0,
    tenantsPerSec: ms > 0 ? urls.length / (ms / 1000) : 0,
    failures: failed.size,
    verified: sample.length,
    errors,
  };
}

function pgLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

function pickSpread<T>(xs: T[], n: number): T[] {
  if (n <= 0) return [];
  if (n >= xs.length) return xs;
  return Array.from({ length: n }, (_, i) => xs[Math.floor((i * xs.length) / n)]!);
}
