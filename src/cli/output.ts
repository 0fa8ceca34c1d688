/**
 * Where the CLI writes: human text or --json on stdout, errors on stderr.
 * Commands receive this, so tests can capture it. Exit codes are decided
 * here: an error's kind (reportError), a waited-for rollout's outcome
 * (rolloutExitCode); every other command that returns exits 0.
 */
import { FlotillaError, EXIT_CODES } from '../core/errors.js';
import { redactSecrets } from '../core/redact.js';
import { explainPgError } from '../adapters/pg/sqlstate.js';

export interface Output {
  json: boolean;
  line(text?: string): void;
  data(value: unknown): void;
  error(text: string): void;
}

export function processOutput(json: boolean): Output {
  return {
    json,
    line: (text = '') => void process.stdout.write(`${text}\n`),
    data: (value) => void process.stdout.write(`${JSON.stringify(value, jsonReplacer, 2)}\n`),
    error: (text) => void process.stderr.write(`${redactSecrets(text)}\n`),
  };
}

export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof FlotillaError) return value.toJSON();
  if (typeof value === 'string') return redactSecrets(value);
  return value;
}

/** Print an error the way every command does, and return its exit code. */
export function reportError(out: Output, e: unknown): number {
  if (e instanceof FlotillaError) {
    if (out.json) out.data({ error: e.toJSON() });
    else out.error(`✗ ${e.message}\n  ${e.hint}`);
    return EXIT_CODES[e.kind];
  }
  const message = e instanceof Error ? e.message : String(e);
  // a database's own refusal (privilege, read-only, lost connection) that no command explained: still not a bug
  const x = explainPgError(e, { doing: 'this command' });
  if (x) {
    const code = (e as { code?: string }).code;
    if (out.json)
      out.data({ error: { code: 'target_refused', kind: x.kind, reason: x.reason, message: `${x.summary}: ${message}`, hint: x.hint, pg: { code, message } } });
    else out.error(`✗ ${x.summary}: ${message}${code ? ` (${code})` : ''}\n  ${x.hint}`);
    return EXIT_CODES[x.kind];
  }
  if (out.json) out.data({ error: { code: 'internal', kind: 'internal', message } });
  else out.error(`✗ unexpected error: ${message}\n  This is a bug in Flotilla; rerun with --log-level debug and report it.`);
  return 1;
}

/** A command that waited for a rollout's end: 0 only if every tenant succeeded, 1 otherwise. */
export function rolloutExitCode(view: { counts: { succeeded: number }; tenants: readonly unknown[] }): number {
  return view.counts.succeeded === view.tenants.length ? 0 : 1;
}
