/**
 * The migration lock, held on a lock session of its own: a second connection
 * to the target that runs no migration SQL, so nothing a migration does to
 * its session can release it (adapters/pg/lock.ts). The engine checks it is
 * still held in the same round trip as each COMMIT, and before each statement
 * of a non-transactional file.
 */
import { LockLostError, LockTimeoutError } from '../core/errors.js';
import type { Clock, Random } from '../core/ports.js';
import type { Part } from '../adapters/pg/batch.js';
import type { Queryable } from '../adapters/pg/connection.js';
import type { LedgerLocation } from '../adapters/pg/ledger.js';
import { isLockLostError, lockHolder, tryAcquire, type HeldLock, type LockConnection, type LockSessions } from '../adapters/pg/lock.js';
import { assertSessionsKept } from '../adapters/pg/pooler.js';
import type { Emit } from './types.js';

export class LockSession {
  /** the migration lock while it is held */
  private held: HeldLock | undefined;
  constructor(
    private readonly db: Queryable,
    private readonly lockSessions: LockSessions,
    private readonly settings: { readonly lockWaitTimeoutMs: number },
    private readonly emit: Emit,
    private readonly clock: Clock,
    private readonly random: Random,
  ) {}

  /**
   * Open the lock session and take the advisory lock on it, polling (see
   * adapters/pg/lock.ts for why not blocking). A pooler that does not keep
   * sessions is refused first (adapters/pg/pooler.ts).
   */
  async acquire(ledger: LedgerLocation): Promise<number> {
    const started = this.clock.now();
    const where = `${ledger.schema}.${ledger.table}`;
    const conn = await this.lockSessions.open();
    try {
      await assertSessionsKept(this.db, conn, this.lockSessions.target);
      let held = await tryAcquire(conn, ledger);
      let waitedMs = 0;
      if (!held) {
        const holder = await lockHolder(conn, ledger).catch(() => undefined);
        if (this.settings.lockWaitTimeoutMs <= 0) throw new LockTimeoutError(where, 0, holder);
        this.emit({ type: 'lock-wait', holder });
        let delay = 50;
        while (!held) {
          const waited = this.clock.now() - started;
          if (waited >= this.settings.lockWaitTimeoutMs) throw new LockTimeoutError(where, Math.round(waited), holder);
          await this.clock.sleep(Math.min(delay, this.settings.lockWaitTimeoutMs - waited) * (0.75 + this.random() * 0.5));
          delay = Math.min(delay * 2, 1000);
          held = await tryAcquire(conn, ledger);
        }
        waitedMs = Math.round(this.clock.now() - started);
        this.emit({ type: 'lock-acquired', waitedMs });
      }
      this.held = held;
      return waitedMs;
    } catch (e) {
      // a lock that was busy left the session clean (rolled back): a cache may keep it
      await this.lockSessions.release(conn, e instanceof LockTimeoutError).catch(() => {});
      throw e;
    }
  }

  /** The lock session while the lock is held (engine/lock-wait.ts watches the migration from it). */
  get connection(): LockConnection | undefined {
    return this.held?.conn;
  }

  async release(): Promise<void> {
    const held = this.held;
    this.held = undefined;
    if (!held) return;
    // a connection about to be closed needs no ROLLBACK: the lock ends with its session (before the close completes)
    const clean = await held.release(!this.lockSessions.closes);
    await this.lockSessions.release(held.conn, clean).catch(() => {});
  }

  /**
   * COMMIT the open transaction in one round trip with the check that the lock
   * session still holds the lock: when it does not, the check fails, the
   * COMMIT is skipped and the caller rolls back.
   */
  async commit(migration: string): Promise<void> {
    const commit = this.commitPart(migration);
    try {
      await this.db.query(commit.text);
    } catch (e) {
      throw isLockLostError(e) ? this.lost(migration, true) : e;
    }
  }

  /**
   * The check and the COMMIT as the first part of a batch (engine/apply.ts):
   * when the lock is gone, the check fails and nothing after it runs
   * (isLockLostError). Throws the LockLostError at once when the client already
   * saw the lock session end.
   */
  commitPart(migration: string): Part {
    const held = this.heldLock(migration, true);
    return { text: `${held.checkSql};\nCOMMIT`, statements: 2 };
  }

  /** Outside a transaction (non-transactional files): is the lock still ours? A round trip of its own. */
  async assertHeld(migration: string): Promise<void> {
    const held = this.heldLock(migration, false);
    try {
      await this.db.query(held.checkSql);
    } catch (e) {
      throw isLockLostError(e) ? this.lost(migration, false) : e;
    }
  }

  private heldLock(migration: string, transactional: boolean): HeldLock {
    const held = this.held;
    if (!held) throw new Error('Migrator: commit without the migration lock');
    if (held.lost) throw this.lost(migration, transactional);
    return held;
  }

  lost(migration: string, transactional: boolean): LockLostError {
    return new LockLostError(this.lockSessions.target, migration, this.held?.pid, transactional);
  }
}
