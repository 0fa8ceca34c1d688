/**
 * pino on stderr (stdout is for human and --json output). Secrets are redacted
 * twice over: known fields by path, and any URL with a password or
 * `password=` pair inside any logged string.
 */
import pino, { type Logger } from 'pino';
import { redactSecrets } from './core/redact.js';

export type { Logger };

const REDACT_PATHS = [
  'databaseUrl',
  '*.databaseUrl',
  'url',
  '*.url',
  'password',
  '*.password',
  'connectionString',
  '*.connectionString',
  'redisUrl',
  '*.redisUrl',
  'controlDatabaseUrl',
  '*.controlDatabaseUrl',
];

function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    return {
      type: value.name,
      message: redactSecrets(value.message),
      stack: value.stack ? redactSecrets(value.stack) : undefined,
      ...(scrub({ ...value }, depth + 1) as object),
    };
  }
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = scrub(v, depth + 1);
  return out;
}

export interface LoggerOptions {
  level?: string;
  name?: string;
  /** where to write; default stderr (fd 2), synchronously so nothing is lost at exit */
  destination?: pino.DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      name: options.name ?? 'flotilla',
      level: options.level ?? process.env.LOG_LEVEL ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '***' },
      serializers: { err: (e: unknown) => scrub(e) },
      formatters: { log: (obj) => scrub(obj) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((a) => (typeof a === 'string' ? redactSecrets(a) : a)) as Parameters<typeof method>);
        },
      },
    },
    options.destination ?? pino.destination({ dest: 2, sync: true }),
  );
}
