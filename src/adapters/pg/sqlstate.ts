/**
 * Postgres error codes we act on, by name, and which failures are worth a retry.
 */
export const SQLSTATE = {
  undefinedTable: '42P01',
  undefinedColumn: '42703',
  lockNotAvailable: '55P03',
  deadlockDetected: '40P01',
  serializationFailure: '40001',
  tooManyConnections: '53300',
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
  SQLSTATE.adminShutdown,
  SQLSTATE.crashShutdown,
  SQLSTATE.cannotConnectNow,
]);

const NETWORK_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/** Transient: the same attempt may succeed later (locks, deadlocks, connection trouble). */
export function isRetryable(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  if (!err || typeof err !== 'object') return false;
  if (err.code && (RETRYABLE.has(err.code) || NETWORK_ERRNOS.has(err.code) || err.code.startsWith('08'))) return true;
  return /Connection terminated|connection ended|Client has encountered a connection error/i.test(err.message ?? '');
}
