/**
 * Writes through another session cannot be validated or rolled back.
 *
 * The validator compares two snapshots taken inside the file's REPEATABLE READ
 * transaction. A write made by another session is invisible to both: dblink
 * commits it at once (a rollback cannot undo it either), postgres_fdw commits
 * its remote transaction with ours, after the after-snapshot. What could open
 * such a session: dblink or pg_background, a foreign data wrapper that can
 * write (anything but file_fdw), an untrusted procedural language (plpython3u,
 * plperlu, pltclu can connect anywhere). Function bodies are text and dynamic
 * SQL hides names, so the rule is about reach, not names: when one of these is
 * installed (or created by the file) and the file can run user code (the row
 * scope is "every table": core/effects.ts, adapters/pg/row-scope.ts), the file
 * is refused before it runs unless its header says
 * `-- flotilla:validate allowOtherSessions=true`.
 */
import { changesAnyRows, type RowEffects } from '../../core/effects.js';
import { ValidationFailedError } from '../../core/errors.js';
import type { Queryable } from './connection.js';
import { validationScope, type RowScopeCache } from './row-scope.js';
import { catalogQualified } from './catalog-names.js';

/** Extensions and languages that open sessions (or run code that can), by the name CREATE EXTENSION / LANGUAGE uses. */
export const OTHER_SESSION_EXTENSIONS = ['dblink', 'pg_background', 'plpython3u', 'plpythonu', 'plpython2u', 'plperlu', 'pltclu'];

const ROUTES_SQL = catalogQualified(`
SELECT array(
  SELECT 'extension ' || e.extname FROM pg_extension e WHERE e.extname = ANY($1::text[])
  UNION SELECT 'foreign data wrapper ' || w.fdwname FROM pg_foreign_data_wrapper w
   WHERE w.fdwhandler = 0 OR w.fdwhandler::regproc::text NOT IN ('file_fdw_handler', 'public.file_fdw_handler')
  UNION SELECT 'untrusted language ' || l.lanname FROM pg_language l WHERE l.lanispl AND NOT l.lanpltrusted
  ORDER BY 1) AS routes`);

export interface OtherSessionsCache extends RowScopeCache {
  /** what is installed that can open another session (unset after a file that may install one) */
  otherSessions?: string[];
}

/** What could write through another session when this file runs ([] = nothing). */
export async function otherSessionRoutes(db: Queryable, fx: RowEffects, cache: OtherSessionsCache = {}): Promise<string[]> {
  const anything = changesAnyRows(fx);
  let installed = anything ? undefined : cache.otherSessions;
  if (!installed) {
    installed = (await db.query<{ routes: string[] }>(ROUTES_SQL, [OTHER_SESSION_EXTENSIONS])).rows[0]!.routes;
    // a file that can run anything may install one (CREATE EXTENSION, CREATE LANGUAGE, CREATE FOREIGN DATA WRAPPER)
    if (anything) delete cache.otherSessions;
    else cache.otherSessions = installed;
  }
  const created = (fx.extensions ?? []).filter((e) => OTHER_SESSION_EXTENSIONS.includes(e)).map((e) => `extension ${e} (created by the file)`);
  const routes = [...created, ...installed];
  if (routes.length === 0) return [];
  if (anything || created.length) return routes;
  // user code named by the file (a function, a foreign table, a trigger...) means the scope is every table
  return (await validationScope(db, fx, cache)).count === undefined ? routes : [];
}

/** Refuses a file that could write through another session, before it runs. */
export async function refuseOtherSessions(db: Queryable, name: string, fx: RowEffects, cache: OtherSessionsCache = {}): Promise<void> {
  const routes = await otherSessionRoutes(db, fx, cache);
  if (routes.length === 0) return;
  throw new ValidationFailedError(
    name,
    [
      `it can run code that writes through another session (${routes.join(', ')} installed), which validation cannot see and a rollback cannot undo; if that is intended, allow it explicitly with the header -- flotilla:validate allowOtherSessions=true`,
    ],
    'Nothing was changed. If this file is meant to write through another session, allow it explicitly in the file header: ' +
      '-- flotilla:validate allowOtherSessions=true (those writes are then neither validated nor rolled back)',
  );
}
