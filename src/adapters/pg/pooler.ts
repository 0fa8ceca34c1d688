/**
 * Refusing connection poolers that do not keep a server session per client
 * connection (PgBouncer pool_mode = transaction or statement, and the like).
 * Behind one, a session lock is taken on one server connection and released
 * on another, session settings leak to other clients, and statements of one
 * "session" run in different server processes.
 *
 * A direct connection is recognised for free: the backend pid the server
 * announced at connect time (pg's BackendKeyData, `processID`) is the one
 * answering pg_backend_pid(). A pooler announces a key of its own, so then we
 * look at what it does: two connections of ours served by one server process,
 * or one connection served by two, is a pooler that does not keep sessions
 * (a real session keeps its process, and two live sessions never share one).
 * The probe goes statement by statement so that both a LIFO pool (PgBouncer's
 * default: the next client gets the connection just released) and a FIFO one
 * (server_round_robin) show it. Connections that passed are remembered, so a
 * worker's cached connections are checked once.
 */
import { SessionPoolerError } from '../../core/errors.js';
import type { Queryable } from './connection.js';

interface Session extends Queryable {
  readonly processID?: number | null;
}

const kept = new WeakSet<object>();
/** the server process behind a connection that passed, for who watches it (engine/lock-wait.ts) */
const pids = new WeakMap<object, number>();

/** The backend pid serving this connection, when assertSessionsKept learned it. */
export function backendPid(s: object): number | undefined {
  return pids.get(s);
}

async function pid(s: Session): Promise<number> {
  return Number((await s.query<{ pid: number }>('SELECT pg_catalog.pg_backend_pid() AS pid')).rows[0]!.pid);
}

/** Throws SessionPoolerError (naming `target`) when the migration and lock sessions do not each keep one server process. */
export async function assertSessionsKept(migration: Session, lock: Session, target: string): Promise<void> {
  if (kept.has(migration) && kept.has(lock)) return;
  const [m, l] = await Promise.all([pid(migration), pid(lock)]);
  pids.set(migration, m);
  const direct = (s: Session, p: number) => s.processID != null && Number(s.processID) === p;
  if (m !== l && direct(migration, m) && direct(lock, l)) {
    kept.add(migration);
    kept.add(lock);
    return;
  }
  if (m === l) throw new SessionPoolerError(target, `two connections were served by one server process, pid ${m}`);
  // a proxy: watch it serve one statement at a time
  const seen: [Session, number][] = [];
  for (const s of [lock, migration, migration, lock, migration]) seen.push([s, await pid(s)]);
  const first = new Map<Session, number>([
    [migration, m],
    [lock, l],
  ]);
  for (const [s, p] of seen) {
    const was = first.get(s)!;
    const name = s === migration ? 'the migration connection' : 'the lock connection';
    if (p !== was) throw new SessionPoolerError(target, `${name} was served by server process ${was}, then by ${p}`);
    if (p === first.get(s === migration ? lock : migration))
      throw new SessionPoolerError(target, `two connections were served by one server process, pid ${p}`);
  }
  kept.add(migration);
  kept.add(lock);
}
