/**
 * When the target refuses the engine: its own queries (tracking table, lock,
 * snapshots) and a migration's statements. Asks the session what explains the
 * refusal (role, database, standby, read-only default) and builds the typed
 * error the CLI prints and the worker records, with the kind that decides exit
 * code and retries (adapters/pg/sqlstate.ts has the rules). Anything that is not
 * the target's rules or state passes through unchanged: it is a defect.
 */
import { FlotillaError, MigrationFailedError, TargetRefusedError } from '../../core/errors.js';
import type { Migration } from '../../core/migration-set.js';
import type { Queryable } from './connection.js';
import { explainPgError, SQLSTATE, type TargetFacts } from './sqlstate.js';

/** Role, database and recovery state, asked only for the errors whose advice depends on them. */
async function targetFacts(db: Queryable, code: string | undefined, doing: string): Promise<TargetFacts> {
  if (code !== SQLSTATE.insufficientPrivilege && code !== SQLSTATE.readOnlySqlTransaction) return { doing };
  try {
    // every name qualified: this runs after a failure, outside any transaction, on whatever path the database sets
    const r = await db.query<{ role: string; db: string; standby: boolean; ro: string }>(
      `SELECT CURRENT_USER AS role, pg_catalog.current_database() AS db, pg_catalog.pg_is_in_recovery() AS standby,
              pg_catalog.current_setting('default_transaction_read_only') AS ro`,
    );
    const row = r.rows[0]!;
    return { doing, role: row.role, database: row.db, standby: row.standby, readOnlyDefault: row.ro === 'on' };
  } catch {
    return { doing };
  }
}

/**
 * An error raised on the engine's own queries: a TargetRefusedError when it is
 * the target's rules or state, else the error itself. Call it outside any open
 * transaction (the session is asked about itself).
 */
export async function explainRefusal(db: Queryable, e: unknown, doing: string): Promise<unknown> {
  if (e instanceof FlotillaError) return e;
  const err = e as { code?: string; message?: string; detail?: string; hint?: string };
  const facts = await targetFacts(db, err?.code, doing);
  const x = explainPgError(e, facts);
  if (!x) return e;
  const on = facts.database && !x.summary.includes(facts.database) ? ` (database ${facts.database})` : '';
  const message = err.message ?? String(e);
  return new TargetRefusedError(x.reason, `${x.summary}${on}: ${message}`, x.hint, x.kind, { code: err.code, message, detail: err.detail, hint: err.hint });
}

/**
 * A migration's failure, explained when the cause is the target's rules or
 * state (after the rollback, so the session can still be asked about itself):
 * a missing privilege or a read-only database is the operator's to fix (exit 2),
 * a standby may be promoted (3), a file that terminates its own session fails
 * for good (1: a retry would do it again).
 */
export async function explainMigrationFailure(db: Queryable, files: Migration[], error: FlotillaError): Promise<FlotillaError> {
  if (!(error instanceof MigrationFailedError) || !error.pg.code) return error;
  const { code } = error.pg;
  const rebuild = (kind: typeof error.kind, hint: string) =>
    new MigrationFailedError(error.migration, error.statement, error.pg, error.transactional, kind, { hint: hint.replace(/^Nothing was changed\. /, '') });
  if ((code === SQLSTATE.adminShutdown || code === SQLSTATE.crashShutdown) && files.some(terminatesBackends)) {
    return rebuild(
      'migration',
      'The file calls pg_terminate_backend: if it included its own session (pg_backend_pid()), it ended itself and a retry would do the same. Exclude it (... AND pid <> pg_backend_pid()) and run again.',
    );
  }
  if (code !== SQLSTATE.insufficientPrivilege && code !== SQLSTATE.readOnlySqlTransaction && code !== SQLSTATE.adminShutdown) return error;
  const x = explainPgError({ code, message: error.pg.message }, await targetFacts(db, code, `running ${error.migration}`));
  if (!x) return error;
  const why = `${x.summary.charAt(0).toUpperCase()}${x.summary.slice(1)}. `;
  // outside a transaction, earlier statements stayed applied: not "nothing changed", keep the kind
  return rebuild(error.transactional ? x.kind : error.kind, why + x.hint);
}

/** Does the file call pg_terminate_backend (the parse tree says, not the text)? */
function terminatesBackends(m: Migration): boolean {
  return m.statements.some((s) => JSON.stringify(s.node).includes('"pg_terminate_backend"'));
}
