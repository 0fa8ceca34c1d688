/**
 * The migration lock: a Postgres advisory lock, one per database, schema and
 * tracking table, so schema-per-tenant runs on one database do not block each
 * other (Rails #31627) and any number of CLIs and workers apply each migration
 * once.
 *
 * Key (two int4 form, unchanged since the first version so old and new runners
 * exclude each other): classid 1179405140 ("FLOT"), objid
 * hashtext(current_database() || '/' || schema || '/' || table).
 *
 * Where it lives: on a connection of its own, the lock session, that runs
 * nothing but the statements of this file. Migration SQL runs on another
 * connection, so pg_advisory_unlock_all(), DISCARD ALL, RESET ALL, SET ROLE
 * or SET SESSION AUTHORIZATION in a migration cannot release or hide it. The
 * lock session takes it as a transaction-level lock (pg_try_advisory_xact_lock,
 * which conflicts with the session-level form older runners take) and keeps
 * that transaction open until the run ends: a transaction-pooling proxy keeps
 * a server connection for an open transaction, and a lock session that dies
 * or is terminated releases the lock. So the engine checks, in the migration
 * session and in the same round trip as each COMMIT (`HeldLock.checkSql`),
 * that the lock session's backend still holds it; when it does not, the COMMIT
 * does not happen.
 *
 * Waiting runners poll instead of blocking in pg_advisory_lock: a session
 * blocked in a statement holds a snapshot, and the holder's CREATE INDEX
 * CONCURRENTLY would wait for that snapshot while the waiter waits for the
 * lock. Between polls, and while holding the lock, the lock session is idle in
 * a READ COMMITTED transaction: no snapshot, nothing for CIC to wait for.
 */
import pg from 'pg';
import type { LedgerLocation } from './ledger.js';
import { connect, connectionError, describeUrl, targetLabel, type ConnectOptions, type Queryable } from './connection.js';

export const LOCK_CLASS_ID = 1179405140;
const KEY = `$1::int, hashtext(current_database() || '/' || $2 || '/' || $3)`;

/** What the engine needs of the lock connection (pg.Client fits). */
export interface LockConnection extends Queryable {
  /** the backend pid the server announced at connect time (pg.Client's BackendKeyData); a pooler announces its own */
  readonly processID?: number | null;
  once?(event: 'end' | 'error', listener: () => void): unknown;
  off?(event: 'end' | 'error', listener: () => void): unknown;
}

/**
 * Where the engine gets its lock session: a connection to the same database as
 * the migration session, used for nothing else while it is out.
 */
export interface LockSessions {
  /** host:port/database, no secrets: for messages */
  readonly target: string;
  open(): Promise<LockConnection>;
  /** `clean`: its transaction ended and it ran nothing else (reusable as is); otherwise close it */
  release(c: LockConnection, clean: boolean): Promise<void>;
  /** release() always closes the connection: the lock ends with the session, no ROLLBACK round trip needed first */
  readonly closes?: boolean;
}

/** Lock sessions as new connections to `url`, closed after use (the CLI). */
export function connectLockSessions(url: string, options: ConnectOptions = {}): LockSessions {
  return {
    target: targetLabel(describeUrl(url)),
    open: () => connect(url, options),
    release: async (c) => void (await (c as pg.Client).end().catch(() => {})),
    closes: true,
  };
}

/**
 * For a pg.Client given alone (library callers, benchmarks, tests): lock
 * sessions are second clients opened with the same connection parameters.
 * Anything else has to say where its lock sessions come from.
 */
export function siblingLockSessions(db: Queryable): LockSessions | undefined {
  if (!(db instanceof pg.Client)) return undefined;
  const c = db as pg.Client & { connectionParameters: Record<string, any>; password?: unknown };
  const p = c.connectionParameters;
  return {
    target: `${p.host}:${p.port}/${p.database}`,
    async open() {
      const lock = new pg.Client({
        user: p.user,
        database: p.database,
        host: p.host,
        port: p.port,
        password: (c.password ?? p.password) as string | undefined,
        ssl: p.ssl,
        options: p.options,
        application_name: `${p.application_name ?? 'flotilla'} lock`.slice(0, 63),
        connectionTimeoutMillis: p.connect_timeout ? p.connect_timeout * 1000 : 10_000,
      });
      lock.on('error', () => {});
      try {
        await lock.connect();
      } catch (e) {
        await lock.end().catch(() => {});
        throw connectionError({ host: p.host, port: p.port, database: p.database, user: p.user }, e, 10_000);
      }
      return lock;
    },
    release: async (lock) => void (await (lock as pg.Client).end().catch(() => {})),
    closes: true,
  };
}

/** A lock the lock session holds: what to check before a COMMIT, and how to let go. */
export class HeldLock {
  private ended = false;
  private readonly onEnd = () => {
    this.ended = true;
  };
  constructor(
    readonly conn: LockConnection,
    /** the lock session's backend */
    readonly pid: number,
    /**
     * Run in the migration session, in the COMMIT's round trip (`${checkSql}; COMMIT`):
     * raises (22P02, message carrying LOCK_LOST_MARKER) unless backend `pid` holds
     * the lock, so an open transaction is aborted instead of committed. Everything
     * is schema-qualified and literal: the migration may have changed search_path,
     * the role, or created look-alike objects.
     */
    readonly checkSql: string,
  ) {
    conn.once?.('end', this.onEnd);
    conn.once?.('error', this.onEnd);
  }

  /** the client saw its connection end: no need to ask the server */
  get lost(): boolean {
    return this.ended;
  }

  /**
   * End the transaction (and with it the lock). Returns false when the connection is not reusable.
   * `rollback` false: the caller closes the connection, which ends the session and the lock with it.
   */
  async release(rollback = true): Promise<boolean> {
    this.conn.off?.('end', this.onEnd);
    this.conn.off?.('error', this.onEnd);
    if (this.ended || !rollback) return false;
    try {
      await this.conn.query('ROLLBACK');
      return true;
    } catch {
      return false;
    }
  }
}

export const LOCK_LOST_MARKER = 'flotilla: the migration lock was lost';

/** Is this the error `HeldLock.checkSql` raises? */
export function isLockLostError(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  return err?.code === '22P02' && typeof err.message === 'string' && err.message.includes(LOCK_LOST_MARKER);
}

/**
 * One attempt on the lock session: open a transaction and try the lock in it
 * (one round trip). Not obtained: the transaction is rolled back.
 */
export async function tryAcquire(conn: LockConnection, l: LedgerLocation): Promise<HeldLock | undefined> {
  const key = `pg_catalog.hashtext(pg_catalog.current_database() || '/' || ${quoteLiteral(l.schema)} || '/' || ${quoteLiteral(l.table)})`;
  const results = (await conn.query(
    // the lock session is idle in its transaction for the whole run: no idle or transaction timeout may end it;
    // it runs no migration SQL, only ours, on the system schemas' path: the key's `||` is pg_catalog's whatever a
    // database-wide search_path puts first (adapters/pg/safe-path.ts)
    `BEGIN; SET LOCAL idle_in_transaction_session_timeout = 0; SET LOCAL search_path = pg_catalog, pg_temp;
     SELECT pg_catalog.set_config('transaction_timeout', '0', true) WHERE pg_catalog.current_setting('server_version_num')::int >= 170000;
     SELECT pg_catalog.pg_try_advisory_xact_lock(${LOCK_CLASS_ID}, k.key) AS locked, pg_catalog.pg_backend_pid() AS pid, k.key,
            (SELECT oid FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()) AS database,
            -- this transaction's virtual id (every transaction holds a lock on its own): with the pid, names this very transaction
            (SELECT virtualtransaction FROM pg_catalog.pg_locks WHERE locktype = 'virtualxid' AND mode = 'ExclusiveLock' AND granted
                AND pid = pg_catalog.pg_backend_pid() LIMIT 1) AS vxid
       FROM (SELECT ${key} AS key) k`,
  )) as unknown as pg.QueryResult[] | pg.QueryResult;
  const last = Array.isArray(results) ? results[results.length - 1]! : results;
  const row = last.rows[0] as { locked: boolean; pid: number; key: number; database: number | string; vxid: string | null };
  if (!row.locked) {
    await conn.query('ROLLBACK');
    return undefined;
  }
  return new HeldLock(conn, row.pid, checkSql(row.pid, row.vxid, Number(row.database), Number(row.key)));
}

/** The lock row, by its holder's pid and transaction (a recycled pid in a new session is not us). */
function checkSql(pid: number, vxid: string | null, database: number, key: number): string {
  const eq = 'OPERATOR(pg_catalog.=)';
  const oid = (n: number) => `'${n}'::pg_catalog.oid`;
  return `SELECT CAST(CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_locks WHERE locktype ${eq} 'advisory' AND granted AND pid ${eq} ${pid}
    ${vxid ? `AND virtualtransaction ${eq} ${quoteLiteral(vxid)}` : ''}
    AND database ${eq} ${oid(database)} AND classid ${eq} ${oid(LOCK_CLASS_ID)} AND objid ${eq} ${oid(key >>> 0)} AND objsubid ${eq} 2)
    THEN '1' ELSE '${LOCK_LOST_MARKER}' END AS pg_catalog.int4) AS flotilla_lock_held`;
}

/** A string literal that means the same whatever standard_conforming_strings says (as libpq's PQescapeLiteral). */
export function quoteLiteral(s: string): string {
  const body = `'${s.replace(/'/g, "''").replace(/\\/g, '\\\\')}'`;
  return s.includes('\\') ? `E${body}` : body;
}

/** The session-level form runners before the lock session took (and still conflicts with ours): for tests and tools. */
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
