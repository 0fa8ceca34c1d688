/**
 * pino on stderr (stdout is for human and --json output): JSON lines, or
 * readable lines when stderr is a terminal (FLOTILLA_LOG_FORMAT=json|pretty
 * decides otherwise). Secrets are redacted twice over: known fields by path,
 * and any URL with a password or `password=` pair inside any logged string.
 * pino itself loads on the first createLogger(), not with this module.
 */
import { createRequire } from 'node:module';
import type { DestinationStream, Logger, LoggerOptions as PinoOptions } from 'pino';
import { redactSecrets } from './core/redact.js';

export type { Logger };

type Pino = ((options: PinoOptions, stream?: DestinationStream) => Logger) & {
  destination(o: { dest: number; sync: boolean }): DestinationStream;
};
let pinoLib: Pino | undefined;
const loadPino = (): Pino => (pinoLib ??= createRequire(import.meta.url)('pino') as Pino);

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
  destination?: DestinationStream;
  /** readable lines instead of JSON; default: when stderr is a terminal (env FLOTILLA_LOG_FORMAT=json|pretty overrides) */
  pretty?: boolean;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const pino = loadPino();
  const pretty = options.pretty ?? prettyByDefault(process.env, !!process.stderr.isTTY);
  const stderr = pino.destination({ dest: 2, sync: true });
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
    options.destination ?? (pretty ? prettyStream(stderr, !!process.stderr.isTTY) : stderr),
  );
}

export function prettyByDefault(env: Record<string, string | undefined>, tty: boolean): boolean {
  const format = env.FLOTILLA_LOG_FORMAT?.trim().toLowerCase();
  return format === 'pretty' ? true : format === 'json' ? false : tty;
}

const LEVELS: Record<number, [string, string]> = {
  10: ['TRACE', '\x1b[90m'],
  20: ['DEBUG', '\x1b[36m'],
  30: ['INFO ', '\x1b[32m'],
  40: ['WARN ', '\x1b[33m'],
  50: ['ERROR', '\x1b[31m'],
  60: ['FATAL', '\x1b[35m'],
};
const OMIT = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'v']);

/**
 * One JSON log line (already redacted by pino's formatters) as a readable line:
 * `12:03:04.123 INFO  flotilla: tenant succeeded  tenant=acme durationMs=412`,
 * an error's message and hint on their own indented lines.
 */
export function formatLogLine(json: string, color = false): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const [label, tint] = LEVELS[o.level as number] ?? [String(o.level).toUpperCase().padEnd(5), ''];
  const time = typeof o.time === 'number' ? new Date(o.time).toISOString().slice(11, 23) : '';
  const paint = (s: string) => (color && tint ? `${tint}${s}\x1b[0m` : s);
  const fields: string[] = [];
  const extra: string[] = [];
  for (const [k, v] of Object.entries(o)) {
    if (OMIT.has(k) || v === undefined) continue;
    if ((k === 'err' || k === 'error') && v && typeof v === 'object') {
      const e = v as { message?: unknown; hint?: unknown; stack?: unknown; type?: unknown };
      extra.push(`    ${String(e.message ?? JSON.stringify(e))}`);
      if (e.hint) extra.push(`    ${String(e.hint)}`);
      if ((o.level as number) >= 50 && typeof e.stack === 'string' && !e.hint)
        extra.push(
          ...e.stack
            .split('\n')
            .slice(1, 4)
            .map((l) => `    ${l.trim()}`),
        );
      continue;
    }
    fields.push(`${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`);
  }
  const head = `${time} ${paint(label)} ${o.name ? `${o.name}: ` : ''}${String(o.msg ?? '')}${fields.length ? `  ${fields.join(' ')}` : ''}`;
  return `${[head, ...extra].join('\n')}\n`;
}

function prettyStream(out: DestinationStream, color: boolean): DestinationStream {
  return { write: (line: string) => out.write(formatLogLine(line, color)) };
}
