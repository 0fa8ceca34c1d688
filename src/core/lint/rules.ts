/**
 * The lint rules' catalogue: for each rule, its id, its severity, the lock
 * the statement takes and what that costs, why it hurts on a live table, and
 * the safer pattern. Data only: the checks themselves are in check.ts, and
 * the lock each rule claims is verified against a real Postgres (pg_locks) by
 * test/integration/lint-plan-locks.test.ts, so this table cannot drift from
 * what the server does.
 */

export type Severity = 'error' | 'warning';

/** Table-level lock modes, weakest to strongest (Postgres docs, "Table-Level Locks"). */
export type LockMode =
  | 'ACCESS SHARE'
  | 'ROW SHARE'
  | 'ROW EXCLUSIVE'
  | 'SHARE UPDATE EXCLUSIVE'
  | 'SHARE'
  | 'SHARE ROW EXCLUSIVE'
  | 'EXCLUSIVE'
  | 'ACCESS EXCLUSIVE';

/**
 * What the statement does while it holds the lock, which decides how long it
 * holds it: `rewrite` copies the table and rebuilds its indexes, `scan` reads
 * every row, `index-build` sorts the table into an index, `rows` writes every
 * row, `brief` is a catalog change (fast once the lock is granted, but it
 * queues behind long transactions and everything queues behind it).
 */
export type Cost = 'rewrite' | 'scan' | 'index-build' | 'rows' | 'brief' | 'fails';

export interface RuleInfo {
  id: RuleId;
  severity: Severity;
  title: string;
  /** the lock on the target table; null when the hazard is not a lock (the statement fails) */
  lock: LockMode | null;
  cost: Cost;
  why: string;
  safer: string;
}

export const RULE_IDS = [
  'create-index-not-concurrently',
  'drop-index-not-concurrently',
  'add-column-volatile-default',
  'add-column-serial',
  'add-column-generated-stored',
  'set-not-null',
  'alter-column-type',
  'add-foreign-key',
  'add-check-constraint',
  'add-unique-constraint',
  'drop-column',
  'drop-table',
  'rename-column',
  'rename-table',
  'vacuum-full',
  'cluster',
  'reindex-not-concurrently',
  'enum-value-used-in-transaction',
  'data-change-without-where',
] as const;

export type RuleId = (typeof RULE_IDS)[number];

export function isRuleId(s: string): s is RuleId {
  return (RULE_IDS as readonly string[]).includes(s);
}

const R = (id: RuleId, severity: Severity, title: string, lock: LockMode | null, cost: Cost, why: string, safer: string): RuleInfo => ({
  id,
  severity,
  title,
  lock,
  cost,
  why,
  safer,
});

export const RULES: Readonly<Record<RuleId, RuleInfo>> = Object.freeze({
  'create-index-not-concurrently': R(
    'create-index-not-concurrently',
    'error',
    'CREATE INDEX without CONCURRENTLY on an existing table',
    'SHARE',
    'index-build',
    'blocks every INSERT, UPDATE and DELETE on the table while the whole index is built',
    'CREATE INDEX CONCURRENTLY in a file of its own (it runs outside a transaction); on failure DROP INDEX CONCURRENTLY the invalid index and retry',
  ),
  'drop-index-not-concurrently': R(
    'drop-index-not-concurrently',
    'warning',
    'DROP INDEX without CONCURRENTLY',
    'ACCESS EXCLUSIVE',
    'brief',
    "waits for every running query on the index's table, and blocks all reads and writes queued behind it",
    'DROP INDEX CONCURRENTLY in a file of its own (it runs outside a transaction)',
  ),
  'add-column-volatile-default': R(
    'add-column-volatile-default',
    'error',
    'ADD COLUMN with a volatile default',
    'ACCESS EXCLUSIVE',
    'rewrite',
    'a volatile default (random(), gen_random_uuid(), clock_timestamp(), nextval(), a user function) is computed for every row: the table and its indexes are rewritten while all reads and writes wait',
    'add the column without a default (or with a constant one), set the default with ALTER COLUMN ... SET DEFAULT, then backfill existing rows in batches',
  ),
  'add-column-serial': R(
    'add-column-serial',
    'error',
    'adding a serial or identity column to an existing table',
    'ACCESS EXCLUSIVE',
    'rewrite',
    'every existing row gets a value from the sequence: the table and its indexes are rewritten while all reads and writes wait',
    'add a plain nullable bigint column, attach a sequence default with ALTER COLUMN ... SET DEFAULT nextval(...), backfill in batches, then add the constraint NOT VALID and validate it',
  ),
  'add-column-generated-stored': R(
    'add-column-generated-stored',
    'error',
    'adding a stored generated column to an existing table',
    'ACCESS EXCLUSIVE',
    'rewrite',
    'the expression is computed and stored for every row: the table and its indexes are rewritten while all reads and writes wait',
    'add a plain column, fill it with a trigger for new rows and a batched backfill for old ones (or compute it in a view)',
  ),
  'set-not-null': R(
    'set-not-null',
    'error',
    'SET NOT NULL without a validated CHECK constraint',
    'ACCESS EXCLUSIVE',
    'scan',
    'Postgres reads every row to prove there is no NULL, holding a lock that blocks all reads and writes',
    'ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c (in a later file); then SET NOT NULL uses the constraint and skips the scan; DROP CONSTRAINT c',
  ),
  'alter-column-type': R(
    'alter-column-type',
    'error',
    'ALTER COLUMN TYPE that rewrites the table',
    'ACCESS EXCLUSIVE',
    'rewrite',
    'unless the old type converts to the new one without change (varchar(n) to text or to a longer varchar), the table and all its indexes are rewritten while all reads and writes wait',
    'add a new column of the new type, write both from the application, backfill in batches, then switch reads and drop the old column',
  ),
  'add-foreign-key': R(
    'add-foreign-key',
    'error',
    'ADD FOREIGN KEY without NOT VALID',
    'SHARE ROW EXCLUSIVE',
    'scan',
    'every row is checked against the referenced table while writes to both tables are blocked',
    'ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID (instant), then VALIDATE CONSTRAINT in a later file (it takes only SHARE UPDATE EXCLUSIVE: reads and writes go on)',
  ),
  'add-check-constraint': R(
    'add-check-constraint',
    'error',
    'ADD CHECK without NOT VALID',
    'ACCESS EXCLUSIVE',
    'scan',
    'every row is checked while all reads and writes wait',
    'ADD CONSTRAINT ... CHECK (...) NOT VALID (instant), then VALIDATE CONSTRAINT in a later file (it takes only SHARE UPDATE EXCLUSIVE)',
  ),
  'add-unique-constraint': R(
    'add-unique-constraint',
    'error',
    'ADD UNIQUE or PRIMARY KEY without USING INDEX',
    'ACCESS EXCLUSIVE',
    'index-build',
    'the unique index is built while the table is locked against all reads and writes (a primary key also checks every row for NULL)',
    'CREATE UNIQUE INDEX CONCURRENTLY in its own file, then ADD CONSTRAINT ... UNIQUE USING INDEX (or PRIMARY KEY USING INDEX), which is instant',
  ),
  'drop-column': R(
    'drop-column',
    'error',
    'DROP COLUMN',
    'ACCESS EXCLUSIVE',
    'brief',
    'the data is gone for good, and application code still reading or writing the column fails during the rollout (old and new code run side by side across the fleet)',
    'stop using the column in the application first (deploy), then drop it in a later migration; keep a backup of the data if it may be needed',
  ),
  'drop-table': R(
    'drop-table',
    'error',
    'DROP TABLE',
    'ACCESS EXCLUSIVE',
    'brief',
    'the data is gone for good, and application code still using the table fails during the rollout',
    'stop using the table in the application first (deploy), then drop it in a later migration (or rename it away and drop it a release later)',
  ),
  'rename-column': R(
    'rename-column',
    'error',
    'RENAME of a column',
    'ACCESS EXCLUSIVE',
    'brief',
    'application code using the old name fails as soon as the file commits, while old and new code run side by side across the fleet',
    'add a new column, write both, backfill, switch reads, then drop the old column (or expose the old name through a view during the transition)',
  ),
  'rename-table': R(
    'rename-table',
    'error',
    'RENAME of a table',
    'ACCESS EXCLUSIVE',
    'brief',
    'application code using the old name fails as soon as the file commits, while old and new code run side by side across the fleet',
    'create the new table and keep the old name working (e.g. rename, then CREATE VIEW old_name AS SELECT * FROM new_name) until no code uses it',
  ),
  'vacuum-full': R(
    'vacuum-full',
    'error',
    'VACUUM FULL',
    'ACCESS EXCLUSIVE',
    'rewrite',
    'the table and its indexes are rewritten while all reads and writes wait',
    'plain VACUUM (no lock against reads and writes), or pg_repack / pg_squeeze to reclaim space online',
  ),
  cluster: R(
    'cluster',
    'error',
    'CLUSTER',
    'ACCESS EXCLUSIVE',
    'rewrite',
    'the table and its indexes are rewritten in index order while all reads and writes wait',
    'pg_repack --order-by to reorder online, or leave physical order alone',
  ),
  'reindex-not-concurrently': R(
    'reindex-not-concurrently',
    'error',
    'REINDEX without CONCURRENTLY',
    'SHARE',
    'index-build',
    'blocks every INSERT, UPDATE and DELETE on the table while its indexes are rebuilt (and queries that would use a rebuilt index wait on its ACCESS EXCLUSIVE lock)',
    'REINDEX ... CONCURRENTLY in a file of its own (it runs outside a transaction)',
  ),
  'enum-value-used-in-transaction': R(
    'enum-value-used-in-transaction',
    'error',
    'ALTER TYPE ... ADD VALUE with a later use in the same transaction',
    null,
    'fails',
    'Postgres refuses to use an enum value added in the same transaction ("unsafe use of new value"): the file fails and rolls back on every tenant',
    'add the value in a file of its own and use it in a later file (each file commits on its own unless --single-transaction)',
  ),
  'data-change-without-where': R(
    'data-change-without-where',
    'error',
    'UPDATE or DELETE without WHERE',
    'ROW EXCLUSIVE',
    'rows',
    'every row of the table is written and row-locked in one transaction: concurrent writers to any row wait for the whole file, and the table bloats',
    'add a WHERE clause; for a backfill, update in batches by key range outside the schema migration',
  ),
});
