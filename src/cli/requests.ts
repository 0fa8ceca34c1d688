/**
 * Command-line flags -> typed requests, once per command, before anything is opened. The
 * flags arrive untrusted from commander (an unset shell variable is ""): every parser here
 * refuses what it cannot read with a ConfigError (exit 2). `rollout` and `schedule` share
 * `parseRolloutSettings`, and both build the frozen options with core's `rolloutOptions`.
 * (The settings of the engine and of the fleet's services are parsed in config.ts, which
 * every command loads; this module loads with the fleet commands only, as it needs the
 * tenants and cron rules.)
 */
import { ConfigError } from '../core/errors.js';
import { scheduleProblems } from '../core/cron.js';
import { parseCanary, parseCountSpec, type RolloutSettings } from '../core/rollout-plan.js';
import { parseSelectorFlags, type TenantSelection } from '../core/tenants.js';
import { parseDuration } from '../config.js';
import { parseTargets } from '../notify/targets.js';

/** Flags as commander hands them over (strings, booleans, string lists; "" when a shell variable was unset). */
export type Flags = Record<string, any>;

/** "--concurrency 4": a whole number >= min, or undefined when the flag is absent. */
export function intOption(flag: string, v: string | undefined, min = 1): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min) throw new ConfigError([`${flag}: "${v}" must be a whole number >= ${min}`]);
  return Number(v);
}

/** --canary, --wave-size, --max-failures, --concurrency, --per-server (the flags a schedule lacks stay undefined). */
export function parseRolloutSettings(o: Flags): RolloutSettings {
  // an empty value (an unset shell variable) is refused, not read as "no canary, every tenant at once"
  const canary = o.canary !== undefined ? parseCanary(o.canary) : undefined;
  const waveSize = o.waveSize !== undefined ? parseCountSpec('--wave-size', o.waveSize) : undefined;
  if (waveSize && ('count' in waveSize ? waveSize.count : waveSize.percent) < 1)
    throw new ConfigError([`--wave-size: "${o.waveSize}" must be at least 1 (or 1%)`]);
  const maxFailures = o.maxFailures !== undefined ? parseCountSpec('--max-failures', o.maxFailures) : undefined;
  const concurrency = intOption('--concurrency', o.concurrency);
  const perServer = intOption('--per-server', o.perServer);
  return {
    ...(canary && { canary }),
    ...(waveSize && { waveSize }),
    ...(maxFailures && { maxFailures }),
    ...(concurrency !== undefined && { concurrency }),
    ...(perServer !== undefined && { perServer }),
  };
}

/** Where the tenants come from and which of them: --tenants | --tenants-query | the registry, and --only | --tag | --all. */
export interface TenantsRequest {
  tenantsFile?: string;
  tenantsQuery?: string;
  selection: TenantSelection;
}

function parseTenantsRequest(o: Flags): TenantsRequest {
  // empty values and a missing selector are refused here, before anything is read (promise 10)
  const { source, selection } = parseSelectorFlags(o);
  return {
    ...(source.kind === 'file' && { tenantsFile: source.path }),
    ...(source.kind === 'query' && { tenantsQuery: source.sql }),
    selection,
  };
}

export interface RolloutCreateRequest {
  tenants: TenantsRequest;
  settings: RolloutSettings;
  dryRun: boolean;
  wait: boolean;
}

export function parseRolloutCreate(o: Flags): RolloutCreateRequest {
  const tenants = parseTenantsRequest(o);
  // --notify (repeatable): checked here, before anything is opened; without it, the config file's list applies
  const notify = o.notify !== undefined ? parseTargets('--notify', [o.notify].flat()) : undefined;
  return { tenants, settings: { ...parseRolloutSettings(o), ...(notify && { notify }) }, dryRun: !!o.dryRun, wait: !!o.wait };
}

export interface RolloutRetryRequest {
  id: string;
  wait: boolean;
  refresh: boolean;
}

export function parseRolloutRetry(id: string, o: Flags): RolloutRetryRequest {
  return { id, wait: !!o.wait, refresh: !!o.refresh };
}

export interface RolloutResumeRequest {
  id: string;
  wait: boolean;
}

export function parseRolloutResume(id: string, o: Flags): RolloutResumeRequest {
  return { id, wait: !!o.wait };
}

export interface RolloutsListRequest {
  limit: number;
}

export function parseRolloutsList(o: Flags): RolloutsListRequest {
  return { limit: intOption('--limit', o.limit) ?? 20 };
}

export interface ScheduleRequest {
  name: string;
  cron: string;
  tz: string;
  /** register the tenants of this file first */
  tenantsFile?: string;
  selection: TenantSelection;
  settings: RolloutSettings;
}

export function parseSchedule(o: Flags): ScheduleRequest {
  const problems: string[] = [];
  if (!o.name || !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(o.name)) problems.push('--name: required, a slug (a-z, 0-9, _ and -)');
  // every problem at once, before anything is opened or saved: name, cron and zone, then the selection
  problems.push(...scheduleProblems(o.cron, o.tz));
  if (problems.length) throw new ConfigError(problems);
  const { selection } = parseSelectorFlags({ tenants: o.tenants, tag: o.tag, all: o.all });
  // a schedule has no canary and no waves: only the flags it declares are read
  const settings = parseRolloutSettings({ maxFailures: o.maxFailures, concurrency: o.concurrency, perServer: o.perServer });
  if (o.notify !== undefined) settings.notify = parseTargets('--notify', [o.notify].flat());
  return { name: o.name, cron: o.cron, tz: o.tz, ...(o.tenants && { tenantsFile: o.tenants }), selection, settings };
}

export interface WorkerRequest {
  concurrency: number;
  drainTimeoutMs: number;
  lockDurationMs: number;
  reconcileEveryMs: number;
  /** --metrics-port / --metrics-host: serve Prometheus metrics (worker/metrics.ts) */
  metrics?: { host: string; port: number };
}

export function parseWorker(o: Flags, env: Record<string, string | undefined>): WorkerRequest {
  const drain = parseDuration(o.drainTimeout);
  if (drain === undefined) throw new ConfigError([`--drain-timeout: "${o.drainTimeout}" is not a duration`]);
  const port = intOption('--metrics-port', o.metricsPort, 0);
  if (port !== undefined && port > 65535) throw new ConfigError([`--metrics-port: "${o.metricsPort}" must be a port number (0-65535)`]);
  if (o.metricsHost !== undefined && (port === undefined || !/^[A-Za-z0-9.:_-]+$/.test(o.metricsHost)))
    throw new ConfigError([
      port === undefined ? '--metrics-host: give --metrics-port too' : `--metrics-host: "${o.metricsHost}" is not a host name or address`,
    ]);
  return {
    ...(port !== undefined && { metrics: { host: o.metricsHost ?? '0.0.0.0', port } }),
    concurrency: intOption('--concurrency', o.concurrency) ?? 2,
    drainTimeoutMs: drain,
    lockDurationMs: parseDuration(env.FLOTILLA_JOB_LOCK_DURATION ?? '30s') ?? 30_000,
    reconcileEveryMs: parseDuration(env.FLOTILLA_RECONCILE_EVERY ?? '5s') ?? 5000,
  };
}
