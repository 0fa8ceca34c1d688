/**
 * `npm run bench:steps -- [--tenants 200] [--concurrency 4] [--rounds 2]`
 *
 * What the server spends per tenant, step by step from the floor to the engine, in one run on
 * the same tenant databases (reset between steps, as `npm run bench` does): wall time per tenant
 * at `--concurrency`, and PostgreSQL's CPU per tenant from /proc (bench/cpu.ts). All in this
 * process, no queue, no control database:
 *   floor           one connection, the guide's 8 files concatenated, one round trip
 *   + lock session  the same with a second connection holding an advisory lock meanwhile
 *   + tracking      and a tracking table created, one row inserted per file in the file's transaction
 *   engine, no validation   Flotilla's engine (Migrator) as a worker runs it, validate: false
 *   engine          the same, validated (the default)
 * Each step runs `--rounds` times, interleaved; the table shows every round.
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadMigrationDir, readMigrationFiles } from '../src/adapters/fs-source.js';
import { connectLockSessions } from '../src/adapters/pg/lock.js';
import { Migrator } from '../src/migrator.js';
import { REPO, adminQuery, dbUrl } from '../test/helpers/fleet-base.js';
import { cpuNow, cpuSince } from './cpu.js';

const { values } = parseArgs({
  options: {
    tenants: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '2' },
  },
});
const admin = process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const N = Number(values.tenants);
const C = Number(values.concurrency);
const names = Array.from({ length: N }, (_, i) => `flotilla_bench_steps_${i}`);
const urls = names.map((d) => dbUrl(admin, d));
const CATALOGS = [
  'pg_class',
  'pg_attribute',
  'pg_type',
  'pg_depend',
  'pg_constraint',
  'pg_index',
  'pg_attrdef',
  'pg_namespace',
  'pg_trigger',
  'pg_proc',
  'pg_description',
  'pg_sequence',
  'pg_statistic',
];

async function on(url: string, fn: (c: pg.Client) => Promise<unknown>): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await fn(c);
  } finally {
    await c.end();
  }
}

async function each(fn: (url: string) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next < N) await fn(urls[next++]!);
    }),
  );
}

/** Back to empty, the catalogs vacuumed (as bench/rollout.ts resetTenants). */
const reset = () =>
  each((u) =>
    on(u, async (c) => {
      await c.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public');
      await c.query(`VACUUM ${CATALOGS.map((t) => `pg_catalog.${t}`).join(', ')}`);
    }),
  );

async function main(): Promise<void> {
  for (const d of names) {
    await adminQuery(admin, `DROP DATABASE IF EXISTS ${d}`);
    await adminQuery(admin, `CREATE DATABASE ${d}`);
  }
  const dir = `${REPO}/migrations`;
  const files = (await readMigrationFiles(dir)).filter((f) => f.name.endsWith('.sql'));
  const all = files.map((f) => f.sql).join('\n');
  const bare = (sql: string) => sql.replace(/^\s*(BEGIN|COMMIT);\s*$/gim, '');
  const tracked =
    'CREATE TABLE migrations (name text PRIMARY KEY, checksum text, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms integer, applied_by text);\n' +
    files
      .map((f) => `BEGIN;\n${bare(f.sql)}\nINSERT INTO migrations (name, checksum, duration_ms, applied_by) VALUES ('${f.name}', 'x', 1, 'bench');\nCOMMIT;`)
      .join('\n');
  const set = await loadMigrationDir(dir);
  const withLock = (sql: string) => async (u: string) =>
    on(u, async (lock) => {
      await lock.query('BEGIN; SELECT pg_advisory_xact_lock(42)');
      await on(u, (c) => c.query(sql));
    });
  const engine = (validate: boolean) => async (u: string) =>
    on(u, async (c) => {
      const r = await new Migrator(c, { validate }, undefined, { lockSessions: connectLockSessions(u) }).migrate(set, { deferCommits: true, postChecks: true });
      if (r.failed) throw r.failed.error;
    });
  const steps: [string, (u: string) => Promise<void>][] = [
    ['floor', (u) => on(u, (c) => c.query(all))],
    ['+ lock session', withLock(all)],
    ['+ tracking', withLock(tracked)],
    ['engine, no validation', engine(false)],
    ['engine', engine(true)],
  ];
  console.log(`${N} tenant databases, concurrency ${C}: the guide's 8 files from empty, per tenant`);
  console.log(`${'step'.padEnd(24)}${'round'.padStart(6)}${'wall ms'.padStart(10)}${'pg cpu ms'.padStart(11)}${'x floor cpu'.padStart(13)}`);
  let floorCpu = Number.NaN;
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const [name, step] of steps) {
      await reset();
      const at = cpuNow([]);
      const t = performance.now();
      await each(step);
      const wall = (performance.now() - t) / N;
      const cpu = (cpuSince(at, []).postgres * 1000) / N;
      if (name === 'floor') floorCpu = cpu;
      console.log(
        `${name.padEnd(24)}${String(round).padStart(6)}${wall.toFixed(1).padStart(10)}${cpu.toFixed(1).padStart(11)}${(cpu / floorCpu).toFixed(2).padStart(13)}`,
      );
    }
  }
  for (const d of names) await adminQuery(admin, `DROP DATABASE IF EXISTS ${d}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
