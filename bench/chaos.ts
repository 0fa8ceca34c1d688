/**
 * `npm run chaos -- [--tenants 100] [--schema-tenants 20] [--workers 3] [--concurrency 2]
 *   [--kill-every 3s] [--max-kills n] [--refusals 6s,12s,45s] [--control-outages 1] [--control-outage 20s] [--lock-hold 8s] [--cli-runners 4]
 *   [--redis-restarts 1] [--flushes 1] [--timeout 15min] [--seed 1] [--keep] [--json file]`
 *
 * A rollout under chaos (see chaos/run.ts), verified from the databases
 * themselves. Prints the figures; exit 0 only without any violation.
 * Admin connection: CHAOS_ADMIN_URL, else TEST_DATABASE_URL, else
 * postgres://postgres@127.0.0.1:5432/postgres. Needs redis-server on PATH
 * (or REDIS_SERVER_BIN); it starts its own on a free port.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/config.js';
import { DEFAULT_CHAOS_OPTIONS, formatChaosReport, runChaos, type ChaosOptions } from './chaos/run.js';

function usage(message: string): never {
  console.error(`chaos: ${message}`);
  process.exit(2);
}

function int(flag: string, v: string | undefined, min = 0): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min) usage(`--${flag}: "${v}" must be a whole number >= ${min}`);
  return Number(v);
}

function ms(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const d = parseDuration(v);
  if (d === undefined) usage(`--${flag}: "${v}" is not a duration (500ms, 3s, 15min)`);
  return d;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      tenants: { type: 'string' },
      'schema-tenants': { type: 'string' },
      workers: { type: 'string' },
      concurrency: { type: 'string' },
      'kill-every': { type: 'string' },
      'max-kills': { type: 'string' },
      refusals: { type: 'string' },
      'control-outages': { type: 'string' },
      'control-outage': { type: 'string' },
      'lock-hold': { type: 'string' },
      'lock-holds': { type: 'string' },
      'cli-runners': { type: 'string' },
      'redis-restarts': { type: 'string' },
      flushes: { type: 'string' },
      'skip-resume': { type: 'boolean', default: false },
      timeout: { type: 'string' },
      seed: { type: 'string' },
      prefix: { type: 'string' },
      keep: { type: 'boolean', default: false },
      json: { type: 'string' },
    },
  });
  const options: Partial<ChaosOptions> & { adminUrl: string } = {
    adminUrl: process.env.CHAOS_ADMIN_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    tenants: int('tenants', values.tenants, 1),
    schemaTenants: int('schema-tenants', values['schema-tenants']),
    workers: int('workers', values.workers, 1),
    concurrency: int('concurrency', values.concurrency, 1),
    killEveryMs: ms('kill-every', values['kill-every']),
    maxKills: int('max-kills', values['max-kills']),
    refusalWindowsMs:
      values.refusals === undefined
        ? undefined
        : values.refusals
            .split(',')
            .filter(Boolean)
            .map((x) => ms('refusals', x.trim())!),
    controlOutages: int('control-outages', values['control-outages']),
    controlOutageMs: ms('control-outage', values['control-outage']),
    lockHoldMs: ms('lock-hold', values['lock-hold']),
    lockHolds: int('lock-holds', values['lock-holds']),
    cliRunners: int('cli-runners', values['cli-runners']),
    redisRestarts: int('redis-restarts', values['redis-restarts']),
    flushes: int('flushes', values.flushes),
    resume: !values['skip-resume'],
    timeoutMs: ms('timeout', values.timeout),
    seed: int('seed', values.seed),
    prefix: values.prefix,
    keep: values.keep,
  };
  if (values.prefix !== undefined && !/^[a-z_][a-z0-9_]{0,40}$/.test(values.prefix)) usage('--prefix: lowercase letters, digits and _, at most 41 characters');
  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    if (interrupts++ > 0) process.exit(130);
    console.error('chaos: interrupted, cleaning up (Ctrl-C again to quit at once)');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const report = await runChaos({ ...options, signal: abort.signal, log: DEFAULT_CHAOS_OPTIONS.log });
  console.log('');
  console.log(formatChaosReport(report));
  if (values.json)
    writeFileSync(
      values.json,
      `${JSON.stringify({ ok: report.ok, violations: report.violations, figures: report.figures, options: report.options }, null, 2)}\n`,
    );
  if (interrupts) return 130;
  return report.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
