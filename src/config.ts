/**
 * Configuration: untrusted input (defaults < flotilla.config.json < environment
 * < command-line flags) parsed with zod into a typed Config. Every bad setting
 * is reported at once, one line each, naming where it came from. The fleet
 * commands' own settings (Redis, control database) come from the environment
 * only (`fleetSettings`). The engine's settings are derived from a Config in
 * one place (`engineSettings`, and the part a rollout freezes).
 */
import { existsSync, readFileSync } from 'node:fs';
import * as z from 'zod';
import { ConfigError } from './core/errors.js';
import { redactUrl } from './core/redact.js';
import { VALIDATION_OPTION_NAMES, type ValidationOptions } from './core/validation.js';
import { RULE_IDS } from './core/lint/rules.js';
import type { RolloutOptions } from './core/rollout-plan.js';
import { DEFAULT_PREFIX, clusterPrefixProblem, isClusterUrl, parseClusterUrl } from './adapters/redis.js';
import { DEFAULT_ENGINE_SETTINGS, type EngineSettings } from './engine/types.js';
import type { QueueSettings } from './queue.js';
import { describeTarget, targetProblem } from './notify/targets.js';

export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

const UNITS: Record<string, number> = { ms: 1, s: 1000, min: 60_000, m: 60_000, h: 3_600_000 };
/** "500ms", "10s", "5min", "1h", or a number of milliseconds. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  const m = typeof v === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h)?\s*$/.exec(v) : null;
  return m ? Number(m[1]) * UNITS[m[2] ?? 'ms']! : undefined;
}

const duration = z.unknown().transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a duration (use 500ms, 10s, 5min, 1h or a number of milliseconds)` });
    return z.NEVER;
  }
  return ms;
});

const identifier = z.string().regex(IDENTIFIER, 'must be a plain identifier: letters, digits and _, starting with a letter or _, at most 63 characters');

const postgresUrl = z.string().refine((u) => /^postgres(ql)?:\/\//.test(u) && URL.canParse(u.replace(/\$\{[^}]*\}/g, 'x')), {
  message: 'must be a postgres:// or postgresql:// URL',
});

const validationShape = Object.fromEntries(VALIDATION_OPTION_NAMES.map((n) => [n, z.boolean().optional()])) as Record<
  keyof ValidationOptions,
  z.ZodOptional<z.ZodBoolean>
>;

const ConfigSchema = z
  .object({
    databaseUrl: postgresUrl.optional(),
    dir: z.string().min(1),
    schema: identifier.optional(),
    trackingTable: identifier,
    lockTimeout: duration,
    statementTimeout: duration,
    lockWaitTimeout: duration,
    validate: z.boolean(),
    singleTransaction: z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')], {
      error: 'must be true or false',
    }),
    validation: z.object(validationShape).strict(),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    /** config file only: `"lint": { "disable": ["rename-column"] }` turns lint rules off (core/lint) */
    lint: z.object({ disable: z.array(z.enum(RULE_IDS, { error: `must be lint rule ids: ${RULE_IDS.join(', ')}` })) }).strict(),
    // webhook targets of every rollout this config creates (`rollout --notify` replaces them): notify/targets.ts
    notify: z
      .array(
        z
          .string()
          .superRefine(
            (t, ctx) =>
              void (targetProblem(t) && ctx.addIssue({ code: 'custom', message: `${t.trim() === '' ? '' : `${describeTarget(t)} `}${targetProblem(t)}` })),
          ),
      )
      .optional(),
  })
  .strict();

export type Config = z.output<typeof ConfigSchema>;

/** Raw settings as they arrive: anything, from anywhere. */
export type RawSettings = Record<string, unknown>;

const ENV: Record<string, string> = {
  databaseUrl: 'DATABASE_URL',
  dir: 'MIGRATIONS_DIR',
  schema: 'FLOTILLA_SCHEMA',
  trackingTable: 'FLOTILLA_TRACKING_TABLE',
  lockTimeout: 'FLOTILLA_LOCK_TIMEOUT',
  statementTimeout: 'FLOTILLA_STATEMENT_TIMEOUT',
  lockWaitTimeout: 'FLOTILLA_LOCK_WAIT_TIMEOUT',
  singleTransaction: 'FLOTILLA_SINGLE_TRANSACTION',
  logLevel: 'LOG_LEVEL',
};

const FLAG: Record<string, string> = {
  databaseUrl: '--database-url',
  dir: '--dir',
  schema: '--schema',
  trackingTable: '--tracking-table',
  lockTimeout: '--lock-timeout',
  statementTimeout: '--statement-timeout',
  lockWaitTimeout: '--lock-wait-timeout',
  validate: '--no-validate',
  singleTransaction: '--single-transaction',
  validation: '--allow-*',
  logLevel: '--log-level',
};

export interface LoadConfigInput {
  flags: RawSettings;
  env: Record<string, string | undefined>;
  /** path given with --config (or FLOTILLA_CONFIG); default ./flotilla.config.json when present */
  configFile?: string;
}

export function loadConfig(input: LoadConfigInput): Config {
  const sources: Record<string, string> = {};
  const merged: RawSettings = {
    dir: './migrations',
    trackingTable: DEFAULT_ENGINE_SETTINGS.trackingTable,
    lockTimeout: DEFAULT_ENGINE_SETTINGS.lockTimeoutMs,
    statementTimeout: DEFAULT_ENGINE_SETTINGS.statementTimeoutMs,
    lockWaitTimeout: DEFAULT_ENGINE_SETTINGS.lockWaitTimeoutMs,
    validate: true,
    singleTransaction: false,
    validation: {},
    logLevel: 'warn',
    lint: { disable: [] },
  };
  const problems: string[] = [];
  if (input.configFile === undefined && input.env.FLOTILLA_CONFIG?.trim() === '') problems.push(emptyVariable('FLOTILLA_CONFIG'));
  const file = input.configFile ?? (input.env.FLOTILLA_CONFIG || undefined) ?? (existsSync('flotilla.config.json') ? 'flotilla.config.json' : undefined);
  if (file) {
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('must hold a JSON object');
      for (const [k, v] of Object.entries(parsed)) {
        merged[k] = k === 'validation' && v && typeof v === 'object' ? { ...(merged.validation as object), ...v } : v;
        sources[k] = `${file}: ${k}`;
      }
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      problems.push(`${file}: ${err?.code === 'ENOENT' ? 'file not found' : err.message}`);
    }
  }
  for (const [k, name] of Object.entries(ENV)) {
    const v = input.env[name];
    // set but empty (an unset shell variable in `X=$Y`) never means "use the default" when it decides
    if (v !== undefined && v.trim() === '' && input.flags[k] === undefined && k !== 'logLevel') problems.push(emptyVariable(name));
    if (v !== undefined && v.trim() !== '') {
      merged[k] = v;
      sources[k] = name;
    }
  }
  for (const [k, v] of Object.entries(input.flags)) {
    if (v === undefined) continue;
    merged[k] = k === 'validation' ? { ...(merged.validation as object), ...(v as object) } : v;
    sources[k] = FLAG[k] ?? k;
  }
  const result = ConfigSchema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const key = String(issue.path[0] ?? '');
      // unknown top-level keys can only come from the config file (flags and variables are fixed): name it
      const where = issue.code === 'unrecognized_keys' && key === '' ? (file ?? 'config') : (sources[key] ?? key);
      const sub = issue.path.length > 1 ? `.${issue.path.slice(1).join('.')}` : '';
      const message = issue.code === 'unrecognized_keys' ? `unknown setting(s) ${issue.keys.join(', ')}` : issue.message;
      problems.push(`${where || 'config'}${sub}: ${message}`);
    }
  }
  if (problems.length) throw new ConfigError(problems.map(redactUrl));
  return result.data!;
}

export function requireDatabaseUrl(config: Config): string {
  if (!config.databaseUrl) throw new ConfigError(['no database: pass --database-url <url> or set DATABASE_URL']);
  return config.databaseUrl;
}

/** The engine settings a rollout freezes; the target's schema and who applies come per tenant. */
export type FrozenEngineSettings = RolloutOptions['engine'];

/** Config -> what a rollout freezes of the engine's settings (the workers read it back). */
export function rolloutEngineSettings(config: Config): FrozenEngineSettings {
  return {
    trackingTable: config.trackingTable,
    lockTimeoutMs: config.lockTimeout,
    statementTimeoutMs: config.statementTimeout,
    validate: config.validate,
    validation: config.validation,
    singleTransaction: config.singleTransaction,
  };
}

/**
 * Frozen settings + where and who -> the engine's settings: the one mapping every caller
 * uses (the CLI for one database, the worker for a rollout's tenant).
 */
export function engineSettingsOf(
  frozen: FrozenEngineSettings,
  at: { schema: string | undefined; lockWaitTimeoutMs: number; appliedBy: string },
): EngineSettings {
  return {
    ...frozen,
    singleTransaction: frozen.singleTransaction ?? false,
    schema: at.schema,
    lockWaitTimeoutMs: at.lockWaitTimeoutMs,
    appliedBy: at.appliedBy,
  };
}

/** Config -> the engine's settings for one database (the CLI's single-database commands). */
export function engineSettings(config: Config, appliedBy: string): EngineSettings {
  return engineSettingsOf(rolloutEngineSettings(config), { schema: config.schema, lockWaitTimeoutMs: config.lockWaitTimeout, appliedBy });
}

// ---------------------------------------------------------------------------------------------
// Fleet commands: REDIS_URL, CONTROL_DATABASE_URL (default DATABASE_URL), FLOTILLA_QUEUE_PREFIX.

export interface FleetSettings extends QueueSettings {
  controlUrl: string;
  /** how long a call to the control database keeps retrying through an outage (FLOTILLA_CONTROL_RETRY_FOR, default 90s) */
  controlRetryMs?: number;
  /** `--wait`: after this long without a worker taking a job, print a hint (FLOTILLA_WAIT_HINT_AFTER, default 30s) */
  waitHintMs?: number;
}

const FleetEnv = z.object({
  REDIS_URL: z
    .string()
    .regex(/^rediss?(\+cluster)?:\/\//, 'must be a redis://, rediss:// or (a Redis Cluster) redis+cluster://h1:p1,h2:p2 URL')
    .refine((u) => isClusterUrl(u) || URL.canParse(u), 'is not a valid URL (check the port; percent-encode special characters in the password)')
    .default('redis://127.0.0.1:6379'),
  CONTROL_DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .refine((u) => URL.canParse(u.replace(/\$\{[^}]*\}/g, 'x')), 'is not a valid URL (check the port; percent-encode special characters in the password)')
    .optional(),
  FLOTILLA_QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9{}_.-]{1,64}$/, 'letters, digits, {}_.- only')
    .default(DEFAULT_PREFIX),
  FLOTILLA_CONTROL_RETRY_FOR: z
    .string()
    .refine((v) => parseDuration(v) !== undefined, 'is not a duration (90s, 2min)')
    .optional(),
  FLOTILLA_WAIT_HINT_AFTER: z
    .string()
    .refine((v) => parseDuration(v) !== undefined, 'is not a duration (30s, 1min)')
    .optional(),
});

function emptyVariable(name: string): string {
  return `${name} is set but empty (an unset shell variable?): unset it or give it a value`;
}

export function fleetSettings(config: Config, env: Record<string, string | undefined>): FleetSettings {
  const empty = Object.keys(FleetEnv.shape).filter((k) => env[k] !== undefined && env[k]!.trim() === '');
  if (empty.length) throw new ConfigError(empty.map(emptyVariable));
  const parsed = FleetEnv.safeParse(Object.fromEntries(Object.entries(env).filter(([k]) => k in FleetEnv.shape)));
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`));
  const controlUrl = parsed.data.CONTROL_DATABASE_URL ?? config.databaseUrl;
  if (!controlUrl) throw new ConfigError(['no control database: set CONTROL_DATABASE_URL (or DATABASE_URL)']);
  const d = parsed.data;
  if (isClusterUrl(d.REDIS_URL)) {
    // the URL's own problems (exit 2), and a prefix without a hash tag: BullMQ's multi-key scripts would fail with CROSSSLOT
    parseClusterUrl(d.REDIS_URL);
    const problem = clusterPrefixProblem(d.FLOTILLA_QUEUE_PREFIX);
    if (problem) throw new ConfigError([problem]);
  }
  return {
    redisUrl: d.REDIS_URL,
    prefix: d.FLOTILLA_QUEUE_PREFIX,
    controlUrl,
    controlRetryMs: d.FLOTILLA_CONTROL_RETRY_FOR === undefined ? undefined : parseDuration(d.FLOTILLA_CONTROL_RETRY_FOR),
    waitHintMs: d.FLOTILLA_WAIT_HINT_AFTER === undefined ? undefined : parseDuration(d.FLOTILLA_WAIT_HINT_AFTER),
  };
}
