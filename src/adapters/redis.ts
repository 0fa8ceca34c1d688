/**
 * Redis: the connection options every queue, worker and check uses (TLS included), the
 * default key prefix, and the health check a fleet command runs before it queues anything.
 * ioredis loads only when the check runs, so the CLI's settings can name the prefix
 * without paying for a Redis client.
 */
import type { ConnectionOptions } from 'bullmq';
import { ConnectionError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import { tlsProblem } from '../core/tls.js';

/** BullMQ key prefix by default; the hash tag keeps a queue's keys in one Redis Cluster slot. */
export const DEFAULT_PREFIX = '{flotilla}';

/**
 * `rediss://` turns TLS on for every connection we make (queues, workers, checks). ioredis does
 * it for the URL too; saying it here keeps it true whoever builds the client. The server
 * certificate is verified against Node's CAs: add a private CA with NODE_EXTRA_CA_CERTS=<file>.
 */
export function redisTls(url: string): { tls?: Record<string, never> } {
  return /^rediss:\/\//i.test(url) ? { tls: {} } : {};
}

export function redisConnection(url: string): ConnectionOptions {
  return { url, maxRetriesPerRequest: null, enableOfflineQueue: true, connectionName: 'flotilla', ...redisTls(url) };
}

/** Fail fast and clearly when Redis is not there, instead of queueing commands forever. */
export async function checkRedis(url: string, timeoutMs = 5000): Promise<void> {
  const { Redis } = await import('ioredis');
  const r = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
    ...redisTls(url),
  });
  // connect() only rejects with "Connection is closed."; the socket's own error (ECONNREFUSED, ...) arrives as an event
  let socketError: (Error & { code?: string }) | undefined;
  r.on('error', (e: Error & { code?: string }) => {
    socketError ??= e;
  });
  try {
    await r.connect();
    await r.ping();
  } catch (e) {
    const u = new URL(url);
    const err = (socketError ?? e) as { code?: string; message?: string } | undefined;
    const reason = err?.code === 'ECONNREFUSED' ? 'connection refused' : String(err?.message ?? err);
    const tls = tlsProblem(err, { host: u.hostname, howToTrust: 'Set NODE_EXTRA_CA_CERTS=<CA file> for every flotilla process' });
    if (tls) throw new ConnectionError(`${u.hostname}:${u.port || 6379}`, tls.cause, tls.hint, 'input', undefined, 'Redis');
    throw new ConnectionError(
      `${u.hostname}:${u.port || 6379}`,
      `${reason}${err?.code ? ` (${err.code})` : ''}`,
      `Is Redis running? Check with: redis-cli -u ${redactUrl(url)} ping; and check REDIS_URL${u.protocol === 'rediss:' ? ' (rediss:// needs a TLS port)' : ' (a TLS-only server needs rediss://)'}.`,
      'transient',
      undefined,
      'Redis',
    );
  } finally {
    r.disconnect();
  }
}
