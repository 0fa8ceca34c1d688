/**
 * `npm run bench:single [-- --runs 5 --startup-runs 21]`: apply the repo's
 * migrations/ set to an empty database with Flotilla and with `psql -f` (the
 * same SQL concatenated), same machine, same run, fresh database each time.
 * Medians, end to end (process start to exit), plus the in-process time of each.
 *
 * Then the CLI's start-up: `flotilla list` and `flotilla status` (on the
 * migrated database) next to `node -e 0`, runs interleaved so a busy machine
 * weighs on all three alike; median of each and the ratio to `node -e 0`
 * (issue 11 target: at most 3x), with the parse cache these two keep (after one run that fills
 * it) and with it off.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadMigrationDir, readMigrationFiles } from '../src/adapters/fs-source.js';
import { Migrator } from '../src/migrator.js';
import { CLI, REPO, adminQuery, dbUrl } from '../test/helpers/fleet-base.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    'startup-runs': { type: 'string', default: '21' },
    // another build's dist/cli/main.js (e.g. of the commit before a change), timed in the same interleaved runs
    'baseline-cli': { type: 'string' },
  },
});
const admin = process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const dir = join(REPO, 'migrations');
const DB = 'flotilla_bench_single';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function fresh(): Promise<string> {
  await adminQuery(admin, `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await adminQuery(admin, `CREATE DATABASE ${DB}`);
  return dbUrl(admin, DB);
}

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): number {
  const t = performance.now();
  const r = spawnSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  return performance.now() - t;
}

async function inProcess<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const t = performance.now();
  await fn(c);
  const ms = performance.now() - t;
  await c.end();
  return ms;
}

async function main(): Promise<void> {
  const runs = Number(values.runs);
  const files = await readMigrationFiles(dir);
  const sql = files
    .filter((f) => f.name.endsWith('.sql'))
    .map((f) => f.sql)
    .join('\n');
  const tmpDir = mkdtempSync(join(tmpdir(), 'flotilla-bench-single-'));
  const tmp = join(tmpDir, 'all-migrations.sql');
  writeFileSync(tmp, sql);
  const set = await loadMigrationDir(dir);
  const r: Record<string, number[]> = { cli: [], psql: [], engine: [], engineNoValidate: [], pgRaw: [] };
  for (let i = 0; i < runs; i++) {
    let url = await fresh();
    r.cli!.push(timed(process.execPath, [CLI, 'pending', '--dir', dir, '--database-url', url], process.env));
    url = await fresh();
    r.psql!.push(timed('psql', ['-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-f', tmp], process.env));
    url = await fresh();
    r.engine!.push(await inProcess(url, (c) => new Migrator(c).migrate(set)));
    url = await fresh();
    r.engineNoValidate!.push(await inProcess(url, (c) => new Migrator(c, { validate: false }).migrate(set)));
    url = await fresh();
    r.pgRaw!.push(await inProcess(url, (c) => c.query(sql)));
  }
  // start-up: the database as `flotilla pending` left it (8 applied), so status reads a full ledger
  const migrated = await fresh();
  timed(process.execPath, [CLI, 'pending', '--dir', dir, '--database-url', migrated], process.env);
  const startup: Record<string, number[]> = { node: [], list: [], status: [], coldList: [], coldStatus: [], baseList: [], baseStatus: [] };
  const startupRuns = Number(values['startup-runs']);
  const baseline = values['baseline-cli'];
  // list and status keep parse trees between runs (cli/parse-cache.ts): a cache of this bench's own, and
  // the same commands with it off (every file parsed, as on a first run or after every file changed)
  const cacheDir = join(tmpDir, 'cache');
  const warm = { ...process.env, FLOTILLA_CACHE_DIR: cacheDir };
  const cold = { ...process.env, FLOTILLA_CACHE_DIR: 'off' };
  timed(process.execPath, [CLI, 'list', '--dir', dir], warm);
  for (let i = 0; i < startupRuns; i++) {
    startup.node!.push(timed(process.execPath, ['-e', '0'], process.env));
    startup.list!.push(timed(process.execPath, [CLI, 'list', '--dir', dir], warm));
    startup.status!.push(timed(process.execPath, [CLI, 'status', '--dir', dir, '--database-url', migrated], warm));
    startup.coldList!.push(timed(process.execPath, [CLI, 'list', '--dir', dir], cold));
    startup.coldStatus!.push(timed(process.execPath, [CLI, 'status', '--dir', dir, '--database-url', migrated], cold));
    if (baseline) {
      startup.baseList!.push(timed(process.execPath, [baseline, 'list', '--dir', dir], process.env));
      startup.baseStatus!.push(timed(process.execPath, [baseline, 'status', '--dir', dir, '--database-url', migrated], process.env));
    }
  }
  await adminQuery(admin, `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  rmSync(tmpDir, { recursive: true, force: true });
  console.log(`8 guide migrations onto an empty database, median of ${runs} runs`);
  console.log('');
  console.log('method                                       median ms');
  console.log(`psql -f (concatenated SQL, process)          ${median(r.psql!).toFixed(0).padStart(9)}`);
  console.log(`flotilla pending (CLI process, validated)    ${median(r.cli!).toFixed(0).padStart(9)}`);
  console.log(`pg client, concatenated SQL (in process)     ${median(r.pgRaw!).toFixed(0).padStart(9)}`);
  console.log(`Migrator.migrate, validated (in process)     ${median(r.engine!).toFixed(0).padStart(9)}`);
  console.log(`Migrator.migrate, --no-validate (in process) ${median(r.engineNoValidate!).toFixed(0).padStart(9)}`);
  const base = median(startup.node!);
  console.log('');
  console.log(`CLI start-up on the same 8 files, median of ${startupRuns} interleaved runs (target: at most 3x node -e 0)`);
  console.log('');
  console.log('command                                      median ms   x node -e 0');
  console.log(`node -e 0                                    ${base.toFixed(0).padStart(9)}   ${'1.00'.padStart(11)}`);
  for (const [name, label] of [
    ['list', 'flotilla list'],
    ['status', 'flotilla status (8 applied)'],
    ['coldList', 'flotilla list, parse cache off'],
    ['coldStatus', 'flotilla status, parse cache off'],
    ['baseList', 'flotilla list (--baseline-cli)'],
    ['baseStatus', 'flotilla status (--baseline-cli)'],
  ] as const) {
    if (!startup[name]!.length) continue;
    const m = median(startup[name]!);
    console.log(`${label.padEnd(45)}${m.toFixed(0).padStart(9)}   ${(m / base).toFixed(2).padStart(11)}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
