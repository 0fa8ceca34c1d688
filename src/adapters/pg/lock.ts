/**
 * The migration lock: a session-level Postgres advisory lock, one per database,
 * schema and tracking table, so schema-per-tenant runs on one database do not
 * block each other (Rails #31627) and any number of CLIs and workers apply each
 * migration once.
 *
 * Key (two int4 form): classid 1179405140 ("FLOT"), objid
 * hashtext(current_database() || '/' || schema || '/' || table).
 *
 * Waiting runners poll pg_try_advisory_lock instead of blocking in
 * pg_advisory_lock: a session blocked in a statement holds a snapshot, and the
 * lock holder's CREATE INDEX CONCURRENTLY would wait for that snapshot while
 * the waiter waits for the lock (a deadlock Postgres would break by killing one
 * of them). Session locks stack per connection, so every runner uses its own
 * dedicated client, never a pooled one.
 */
import type { LedgerLocation } from './ledger.js';
import type { Queryable } from './connection.js';

export const LOCK_CLASS_ID = 1179405140;
const KEY = `$1::int, hashtext(current_database() || '/' || $2 || '/' || $3)`;

export async function tryLock(db: Queryable, l: LedgerLocation): Promise<boolean> {
  const r = await db.query<{ locked: boolean }>(`SELECT pg_try_advisory_lock(${KEY}) AS locked`, [LOCK_CLASS_ID, l.schema, l.table]);
  return r.rows[0]!.locked;
}

export async function unlock(db: Queryable, l: LedgerLocation): Promise<void> {
  await db.query(`SELECT pg_advisory_unlock(${KEY})`, [LOCK_CLASS_ID, l.schema, l.table]);
}

/** Who holds the lock: "pid 123, flotilla-cli, since 12:00:01", for the waiting message. */
export async function lockHolder(db: Queryable, l: LedgerLocation): Promise<string | undefined> {
  const r = await db.query<{ pid: number; app: string; since: Date }>(
    `SELECT a.pid, a.application_name AS app, a.backend_start AS since
       FROM pg_locks k JOIN pg_stat_activity a ON a.pid = k.pid
      WHERE k.locktype = 'advisory' AND k.granted AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND k.classid = $1::int::oid AND k.objsubid = 2
        AND k.objid = ((hashtext(current_database() || '/' || $2 || '/' || $3))::bigint & 4294967295)::oid`,
    [LOCK_CLASS_ID, l.schema, l.table],
  );
  const h = r.rows[0];
  return h ? `pid ${h.pid}${h.app ? `, ${h.app}` : ''}, connected since ${h.since.toISOString()}` : undefined;
}
