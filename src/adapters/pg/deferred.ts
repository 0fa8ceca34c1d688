/**
 * Deferred triggers and the validator. A DEFERRABLE INITIALLY DEFERRED
 * constraint trigger (or one the file deferred with SET CONSTRAINTS) fires at
 * COMMIT, after the validator's after-snapshot: a trigger deleting rows there
 * would go unseen. `SET CONSTRAINTS ALL IMMEDIATE` fires every pending event
 * now, so the after-snapshot sees their effects (and a deferred foreign key the
 * file left violated fails that file, by name).
 *
 * It also leaves every constraint immediate for the rest of the transaction.
 * When other files follow in the same transaction (--single-transaction, dry
 * runs), the INITIALLY DEFERRED ones are set back to DEFERRED by name, so the
 * next file starts with the defaults it would have in a transaction of its own.
 * (SET CONSTRAINTS by name applies to every constraint of that name in the
 * schema: a same-named INITIALLY IMMEDIATE DEFERRABLE one is deferred too.)
 */
import { quoteIdent, type Queryable } from './connection.js';
import { catalogQualified } from './catalog-names.js';

export async function restoreInitiallyDeferred(db: Queryable): Promise<void> {
  const set = setDeferredSql((await db.query<{ schema: string; name: string }>(INITIALLY_DEFERRED_SQL)).rows);
  if (set) await db.query(set);
}

/** The INITIALLY DEFERRED constraints (schema, name): for a batch, whose next one starts with setDeferredSql(rows). */
export const INITIALLY_DEFERRED_SQL =
  catalogQualified(`SELECT DISTINCT n.nspname AS schema, k.conname AS name FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
      WHERE k.condeferrable AND k.condeferred AND has_schema_privilege(n.oid, 'USAGE') ORDER BY 1, 2`);

/** SET CONSTRAINTS ... DEFERRED for those rows, or undefined when there are none. */
export function setDeferredSql(rows: { schema: string; name: string }[]): string | undefined {
  if (rows.length === 0) return undefined;
  return `SET CONSTRAINTS ${rows.map((c) => `${quoteIdent(c.schema)}.${quoteIdent(c.name)}`).join(', ')} DEFERRED`;
}
