/**
 * Postgres error codes we act on, by name; which failures are worth a retry;
 * and the one place where an error the target raised because of its own rules
 * or state (no privilege, read-only, a standby, a terminated session, a lost
 * connection) becomes an explanation with a next step. The CLI and the workers
 * both go through `explainPgError`, so a tenant fails with the same words on
 * either, and only a real defect reaches "This is a bug".
 */
import type { ErrorKind, TargetRefusal } from '../../core/errors.js';

export const SQLSTATE = {
  undefinedTable: '42P01',
  undefinedColumn: '42703',
  invalidSchemaName: '3F000',
  insufficientPrivilege: '42501',
  readOnlySqlTransaction: '25006',
  lockNotAvailable: '55P03',
  deadlockDetected: '40P01',
  serializationFailure: '40001',
  tooManyConnections: '53300',
  /** out of shared memory: the lock table is full (another session holds thousands of locks); it frees up */
  outOfMemory: '53200',
  adminShutdown: '57P01',
  crashShutdown: '57P02',
  cannotConnectNow: '57P03',
  queryCanceled: '57014',
  uniqueViolation: '23505',
} as const;

const RETRYABLE = new Set<string>([
  SQLSTATE.lockNotAvailable,
  SQLSTATE.deadlockDetected,
  SQLSTATE.serializationFailure,
  SQLSTATE.tooManyConnections,
  SQLSTATE.outOfMemory,
  SQLSTATE.adminShutdown,
  SQLSTATE.crashShutdown,
  SQLSTATE.cannotConnectNow,
]);

const NETWORK_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
const CONNECTION_LOST = /Connection terminated|connection ended|Client has encountered a connection error|Client was closed and is not queryable/i;

/** Transient: the same attempt may succeed later (locks, deadlocks, connection trouble). */
export function isRetryable(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  if (!err || typeof err !== 'object') return false;
  if (err.code && (RETRYABLE.has(err.code) || NETWORK_ERRNOS.has(err.code) || err.code.startsWith('08'))) return true;
  return CONNECTION_LOST.test(err.message ?? '');
}

/** What we know about the target when explaining (each field best effort). */
export interface TargetFacts {
  /** what Flotilla was doing, e.g. "creating the tracking table public.migrations" */
  doing: string;
  role?: string;
  database?: string;
  /** pg_is_in_recovery(): a standby */
  standby?: boolean;
  /** default_transaction_read_only of the session: false means a statement made the transaction read-only itself */
  readOnlyDefault?: boolean;
}

export interface Explanation {
  reason: TargetRefusal;
  kind: ErrorKind;
  /** one line naming what happened, without the driver's message */
  summary: string;
  /** the next step */
  hint: string;
}

/** A bare identifier when it can be one, else quoted: for SQL the user will paste. */
export function sqlIdent(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

/**
 * Why the target refused, and what to do, or undefined when the error is not
 * the target's rules or state (a syntax error in our own SQL is a defect).
 */
export function explainPgError(e: unknown, facts: TargetFacts): Explanation | undefined {
  const err = e as { code?: string; message?: string };
  if (!err || typeof err !== 'object') return undefined;
  const code = typeof err.code === 'string' ? err.code : '';
  const message = err.message ?? '';
  const role = facts.role ? sqlIdent(facts.role) : '<role>';
  if (code === SQLSTATE.insufficientPrivilege)
    return { reason: 'privilege', kind: 'input', summary: `permission denied while ${facts.doing}`, hint: privilegeHint(message, role, facts) };
  if (code === SQLSTATE.readOnlySqlTransaction) {
    if (facts.standby) {
      return {
        reason: 'standby',
        kind: 'transient',
        summary: `the database${facts.database ? ` ${facts.database}` : ''} is a standby (in recovery, read-only) and cannot accept ${facts.doing}`,
        hint: 'Point the database URL at the primary. If a failover is under way, retry once the new primary is up. Nothing was changed.',
      };
    }
    const db = facts.database ? sqlIdent(facts.database) : '<database>';
    if (facts.readOnlyDefault === false) {
      return {
        reason: 'read_only',
        kind: 'migration',
        summary: `a read-only transaction refused ${facts.doing}; the database itself is writable, so the SQL made its transaction read-only (SET transaction_read_only, SET TRANSACTION READ ONLY)`,
        hint: 'Remove the statement that makes the transaction read-only, then run again.',
      };
    }
    return {
      reason: 'read_only',
      kind: 'input',
      summary: `the database${facts.database ? ` ${facts.database}` : ''} is read-only (default_transaction_read_only is on for it or for the role) and refused ${facts.doing}`,
      hint: `Nothing was changed. Make it writable, as its owner or a superuser: ALTER DATABASE ${db} SET default_transaction_read_only = off; (or ALTER ROLE ${role} SET default_transaction_read_only = off), then run again; or point the URL at a writable database.`,
    };
  }
  if (code === SQLSTATE.adminShutdown || code === SQLSTATE.crashShutdown || code === SQLSTATE.cannotConnectNow) {
    return {
      reason: 'terminated',
      kind: 'transient',
      summary: `the server ended the session while ${facts.doing} (${code}: ${code === SQLSTATE.adminShutdown ? 'terminated by pg_terminate_backend or a shutdown' : code === SQLSTATE.crashShutdown ? 'another server process crashed' : 'the server is starting up or shutting down'})`,
      hint: 'Nothing uncommitted was kept. Run again once the server accepts connections; if it keeps happening, look for whoever terminates sessions (a pooler, a watchdog, pg_terminate_backend).',
    };
  }
  if (code.startsWith('08') || NETWORK_ERRNOS.has(code) || (!code && CONNECTION_LOST.test(message))) {
    return {
      reason: 'connection',
      kind: 'transient',
      summary: `lost the connection to the database while ${facts.doing}`,
      hint: 'Nothing uncommitted was kept. Check that the server is up (pg_isready) and run again.',
    };
  }
  if (code === SQLSTATE.lockNotAvailable || code === SQLSTATE.deadlockDetected || code === SQLSTATE.serializationFailure) {
    return {
      reason: 'busy',
      kind: 'transient',
      summary: `the database was busy while ${facts.doing} (${code})`,
      hint: 'Another session held what was needed; run again (raise --lock-timeout if it keeps happening).',
    };
  }
  if (code === SQLSTATE.queryCanceled) {
    return {
      reason: 'canceled',
      kind: 'transient',
      summary: `a statement was canceled while ${facts.doing} (statement_timeout or pg_cancel_backend)`,
      hint: 'Run again; raise --statement-timeout if the statement needs longer.',
    };
  }
  if (code.startsWith('53')) {
    return {
      reason: 'resources',
      kind: 'transient',
      summary: `the server ran out of a resource while ${facts.doing} (${code})`,
      hint: 'Free disk, memory or connections on the server (or lower the concurrency), then run again.',
    };
  }
  if (code.startsWith('P0')) {
    return {
      reason: 'refused',
      kind: 'input',
      summary: `a trigger or function on the target refused ${facts.doing}`,
      hint: 'An event trigger, trigger or rule on the target raised this error; change it (or its conditions) and run again. Nothing was changed.',
    };
  }
  return undefined;
}

function privilegeHint(message: string, role: string, facts: TargetFacts): string {
  const denied = /permission denied for (schema|database|table|relation|sequence|view|function|procedure|type|language|tablespace) (.+)$/.exec(message);
  if (denied) {
    const what = denied[1]!;
    const name = denied[2]!;
    const obj = sqlIdent(name.replace(/^"(.*)"$/, '$1'));
    if (what === 'schema') return `Nothing was changed. As the schema's owner or a superuser: GRANT USAGE, CREATE ON SCHEMA ${obj} TO ${role}; then run again.`;
    if (what === 'database') {
      return `Nothing was changed. Creating a schema needs CREATE on the database. As its owner or a superuser: GRANT CREATE ON DATABASE ${obj} TO ${role}; or create the schema for this role beforehand (CREATE SCHEMA <name> AUTHORIZATION ${role}), then run again.`;
    }
    return `Nothing was changed. Run as a role that may use ${what} ${obj} (e.g. its owner), or have its owner GRANT the privilege on ${what === 'relation' ? 'TABLE' : what.toUpperCase()} ${obj} TO ${role}; then run again.`;
  }
  const owner = /must be owner of (\w+(?: \w+)?) (.+)$/.exec(message);
  if (owner)
    return `Nothing was changed. Only the owner of ${owner[1]} ${owner[2]} may do this: run as that owner, or make ${role} a member of the owning role (GRANT <owner> TO ${role}); then run again.`;
  return `Nothing was changed. Run as a role allowed to do this${facts.database ? ` on ${facts.database}` : ''}, or have an administrator GRANT the missing privilege to ${role}; then run again.`;
}
