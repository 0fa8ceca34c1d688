/**
 * Typed errors. Every error Flotilla raises on purpose is a FlotillaError: it
 * has a stable `code`, the data needed to act on it, a `hint` saying what to do
 * next, and a `kind` that decides the CLI exit code and whether a worker retries.
 *
 *   kind        exit  worker
 *   input       2     fail at once (bad file, bad config, edited migration)
 *   migration   1     fail at once (SQL error, validation failure)
 *   transient   3     retry with backoff (unreachable DB, lock busy, 40001, ...)
 */
export type ErrorKind = 'input' | 'migration' | 'transient';

export const EXIT_CODES: Record<ErrorKind, number> = { migration: 1, input: 2, transient: 3 };

export abstract class FlotillaError extends Error {
  abstract readonly code: string;
  abstract readonly kind: ErrorKind;
  readonly hint: string;
  constructor(message: string, hint: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.hint = hint;
  }
  /** Plain data for --json output, job results and the control database. */
  toJSON(): Record<string, unknown> {
    return { code: this.code, kind: this.kind, message: this.message, hint: this.hint };
  }
}

/** A migration file name that does not follow NNN_description.sql. */
export class InvalidFileNameError extends FlotillaError {
  readonly code = 'invalid_file_name';
  readonly kind = 'input';
  constructor(readonly files: string[]) {
    super(
      `migration file name${files.length > 1 ? 's' : ''} not of the form NNN_description.sql: ${files.join(', ')}`,
      'Rename the file(s) to NNN_description.sql (digits, underscore, lowercase words), e.g. 009_add_orders.sql.',
    );
  }
}

export class DuplicateVersionError extends FlotillaError {
  readonly code = 'duplicate_version';
  readonly kind = 'input';
  constructor(
    readonly version: string,
    readonly files: string[],
  ) {
    super(`migration number ${version} is used by more than one file: ${files.join(', ')}`, 'Give each migration its own number; renumber the newer file.');
  }
}

export class EmptyMigrationError extends FlotillaError {
  readonly code = 'empty_migration';
  readonly kind = 'input';
  constructor(readonly file: string) {
    super(`migration ${file} is empty (no SQL statement)`, 'Add the SQL to the file or delete it.');
  }
}

export class SqlParseError extends FlotillaError {
  readonly code = 'sql_syntax';
  readonly kind = 'input';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly detail: string,
  ) {
    super(`${file}:${line}: SQL syntax error: ${detail}`, 'Fix the SQL at that line; nothing was run. (psql meta-commands such as \\set or \\i are not SQL.)');
  }
}

/** A file that mixes CREATE INDEX CONCURRENTLY & co. with transactional statements. */
export class MixedTransactionModeError extends FlotillaError {
  readonly code = 'mixed_transaction_mode';
  readonly kind = 'input';
  constructor(
    readonly file: string,
    readonly nonTransactional: { line: number; kind: string }[],
  ) {
    const first = nonTransactional[0];
    super(
      `${file} mixes statements that cannot run in a transaction (${first?.kind} at line ${first?.line}) with transactional ones`,
      'Move the non-transactional statements (CREATE INDEX CONCURRENTLY, VACUUM, ...) into a migration file of their own, without BEGIN/COMMIT.',
    );
  }
}

/** A file that controls transactions in a way the engine cannot honour (ROLLBACK, PREPARE TRANSACTION, ...). */
export class UnsupportedStatementError extends FlotillaError {
  readonly code = 'unsupported_statement';
  readonly kind = 'input';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly statement: string,
    reason?: string,
  ) {
    super(
      `${file}:${line}: ${statement} is not allowed in a migration${(reason ?? STATEMENT_REASONS[statement]) ? ` (${reason ?? STATEMENT_REASONS[statement]})` : ''}`,
      STATEMENT_HINTS[statement] ?? 'Flotilla owns the transaction: keep BEGIN/COMMIT or remove them, but do not ROLLBACK or PREPARE TRANSACTION.',
    );
  }
}

/** Migration files whose bytes are not UTF-8 text Postgres can run (core/file-bytes.ts). */
export class InvalidEncodingError extends FlotillaError {
  readonly code = 'invalid_encoding';
  readonly kind = 'input';
  constructor(readonly problems: { file: string; line: number; byteOffset: number; reason: string }[]) {
    super(
      `migration file${problems.length > 1 ? 's' : ''} not valid UTF-8: ${problems.map((p) => `${p.file}:${p.line}: ${p.reason} (byte offset ${p.byteOffset})`).join('; ')}`,
      'Migration files must be UTF-8, as psql requires; nothing was run. Re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 <file>), then run again.',
    );
  }
}

/** A migration file too large for the SQL parser (core/file-bytes.ts MAX_MIGRATION_BYTES). */
export class MigrationTooLargeError extends FlotillaError {
  readonly code = 'migration_too_large';
  readonly kind = 'input';
  constructor(
    readonly file: string,
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(
      `migration ${file} is ${mib(bytes)} MiB (${bytes} bytes); migration files may be at most ${mib(limit)} MiB, the most the SQL parser handles safely`,
      'Split it into several migration files, or load bulk data with COPY (psql \\copy) outside the migrations; nothing was run.',
    );
  }
}

/** The SQL parser gave up on a statement's size or nesting (not a syntax error). */
export class ParserLimitError extends FlotillaError {
  readonly code = 'parser_limit';
  readonly kind = 'input';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly detail: string,
  ) {
    super(
      `${file}:${line}: a statement too large or too deeply nested for the SQL parser (${detail})`,
      'Split the statement (or the file) into smaller ones; nothing was run.',
    );
  }
}

/** Something named like a migration that is not a readable regular file: a directory, a dangling symlink, a FIFO, ... */
export class NotAMigrationFileError extends FlotillaError {
  readonly code = 'not_a_file';
  readonly kind = 'input';
  constructor(readonly entries: { file: string; what: string }[]) {
    super(
      `named like a migration but not a readable file: ${entries.map((e) => `${e.file} (${e.what})`).join(', ')}`,
      'Replace it with a regular .sql file (a symlink must point to one), or rename it so it does not end in .sql; nothing was run.',
    );
  }
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1).replace(/\.0$/, '');
}

const STATEMENT_REASONS: Record<string, string> = {
  'COPY FROM STDIN':
    'it waits for rows sent by the client, as psql does with the lines after it; a migration runner sends none, and the data lines are not SQL',
};

const STATEMENT_HINTS: Record<string, string> = {
  'COPY FROM STDIN':
    "Nothing was run. Put the rows in the file as INSERT ... VALUES (pg_dump --inserts writes them so), or COPY from a file the server can read (COPY t FROM '/path').",
};

export class MigrationsDirError extends FlotillaError {
  readonly code = 'migrations_dir';
  readonly kind = 'input';
  constructor(
    readonly dir: string,
    reason: string,
  ) {
    super(`cannot read migrations directory ${dir}: ${reason}`, 'Pass --dir <path> or set MIGRATIONS_DIR to the folder holding NNN_description.sql files.');
  }
}

export class UnknownMigrationError extends FlotillaError {
  readonly code = 'unknown_migration';
  readonly kind = 'input';
  constructor(readonly migration: string) {
    super(`no migration named ${migration} in the migrations directory`, 'Run `flotilla list` to see the available names.');
  }
}

/** An applied migration whose file changed since (Flyway's "validate" failure). */
export class ChangedMigrationError extends FlotillaError {
  readonly code = 'changed_migration';
  readonly kind = 'input';
  constructor(readonly migrations: { name: string; applied: string; current: string; recordedAs?: string }[]) {
    super(
      `applied migration${migrations.length > 1 ? 's' : ''} changed since applied: ${migrations.map((m) => (m.recordedAs ? `${m.name} (recorded as ${m.recordedAs})` : m.name)).join(', ')}`,
      "Restore the applied file(s) and put the change in a new migration. If the edit is intended (e.g. a comment), update the recorded checksum: UPDATE migrations SET checksum = '<new>' WHERE name = '<name>'.",
    );
  }
}

export class ConfigError extends FlotillaError {
  readonly code = 'config';
  readonly kind = 'input';
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`, 'Fix the setting(s) named above; nothing was changed.');
  }
}

/** The database (or Redis) cannot be reached or refused us. Transient: a retry may succeed. */
export class ConnectionError extends FlotillaError {
  readonly code = 'connection';
  readonly kind: ErrorKind;
  constructor(
    readonly target: string,
    readonly cause_: string,
    hint: string,
    kind: ErrorKind = 'transient',
    readonly sqlState?: string,
    readonly service: 'PostgreSQL' | 'Redis' = 'PostgreSQL',
  ) {
    super(`cannot connect to ${service} at ${target}: ${cause_}`, hint);
    this.kind = kind;
  }
}

export class LockTimeoutError extends FlotillaError {
  readonly code = 'lock_busy';
  readonly kind = 'transient';
  constructor(
    readonly target: string,
    readonly waitedMs: number,
    readonly holder?: string,
  ) {
    super(
      `another runner holds the migration lock on ${target}${holder ? ` (${holder})` : ''}; gave up after ${waitedMs} ms`,
      "Wait for the other runner to finish, or raise --lock-wait-timeout. Find it with: SELECT pid, application_name, state FROM pg_stat_activity JOIN pg_locks USING (pid) WHERE locktype = 'advisory'.",
    );
  }
}

/**
 * A job stopped before it finished because its worker is shutting down (the
 * drain's signal): whatever committed stays committed and recorded, the rest
 * is for another attempt. Transient: the job is retried, never failed for it.
 */
export class InterruptedError extends FlotillaError {
  readonly code = 'interrupted';
  readonly kind = 'transient';
  constructor() {
    super(
      'interrupted: the worker is shutting down',
      'Nothing to do: another attempt (on this worker once it is back, or another one) continues where this one stopped.',
    );
  }
}

/**
 * The lock session stopped holding the migration lock before a COMMIT (it was
 * terminated, its connection dropped, or a server timeout ended it): the file
 * is rolled back (a non-transactional file stops before its next statement).
 */
export class LockLostError extends FlotillaError {
  readonly code = 'lock_lost';
  readonly kind = 'transient';
  constructor(
    readonly target: string,
    readonly migration: string,
    readonly lockPid: number | undefined,
    readonly transactional: boolean,
  ) {
    super(
      `lost the migration lock on ${target} while applying ${migration} (the lock session${lockPid ? `, backend pid ${lockPid},` : ''} ended or no longer holds it): ${
        transactional ? 'rolled back, nothing from this file was applied' : 'stopped; statements before this point stay applied, the file is not recorded'
      }`,
      'Run again. If it happens every time, look for what ends that session: the migration itself (pg_terminate_backend), an operator or a watchdog terminating idle-in-transaction sessions, a firewall or proxy closing idle connections.',
    );
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), migration: this.migration, transactional: this.transactional };
  }
}

/** The URL reaches PostgreSQL through a pooler that does not keep a session per connection (PgBouncer pool_mode=transaction/statement). */
export class SessionPoolerError extends FlotillaError {
  readonly code = 'session_pooler';
  readonly kind = 'input';
  constructor(
    readonly target: string,
    readonly evidence: string,
  ) {
    super(
      `${target} is behind a connection pooler that does not keep one server session per connection (${evidence}); Flotilla refuses it: its migration lock and session settings need a real session`,
      'Use a direct connection URL to PostgreSQL for migrations (or a PgBouncer pool with pool_mode = session); nothing was changed. See docs/operations.md, "Connection poolers".',
    );
  }
}

/** Postgres rejected a statement of a migration. */
export class MigrationFailedError extends FlotillaError {
  readonly code = 'migration_failed';
  readonly kind: ErrorKind;
  constructor(
    readonly migration: string,
    readonly statement: { index: number; line: number; text: string } | undefined,
    readonly pg: PgErrorFields,
    readonly transactional: boolean,
    kind: ErrorKind,
    /** what to do, when the cause is known (a missing privilege, a read-only target...); the rollback sentence is kept */
    cause?: { hint: string },
  ) {
    const at = statement ? ` at statement ${statement.index + 1} (line ${statement.line})` : '';
    super(
      `${migration} failed${at}: ${pg.code ? `ERROR ${pg.code}: ` : ''}${pg.message}`,
      (transactional
        ? `The migration was rolled back; nothing from this file was applied. ${cause ? '' : 'Fix the statement and run again.'}`
        : `This file runs outside a transaction: statements before the failing one stay applied. ${cause ? '' : 'Make them idempotent (IF NOT EXISTS) and run again.'}`) +
        (cause?.hint ?? ''),
    );
    this.kind = kind;
  }
  override toJSON(): Record<string, unknown> {
    // `number` is the one people see ("statement 2"), counted like `list --json` counts; `index` is the same, 0-based
    const statement = this.statement && { number: this.statement.index + 1, ...this.statement };
    return { ...super.toJSON(), migration: this.migration, statement, pg: this.pg, transactional: this.transactional };
  }
}

export class ValidationFailedError extends FlotillaError {
  readonly code = 'validation_failed';
  readonly kind = 'migration';
  constructor(
    readonly migration: string,
    readonly issues: string[],
    hint = 'The migration was rolled back. If the change is intended, allow it in the file header, e.g. -- flotilla:validate allowRowChanges=true',
  ) {
    super(`${migration} failed validation: ${issues.join('; ')}`, hint);
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), migration: this.migration, issues: this.issues };
  }
}

/** Postgres error fields kept on typed errors (never the connection string). */
export interface PgErrorFields {
  code?: string;
  message: string;
  detail?: string;
  hint?: string;
  where?: string;
}

/**
 * The tracking table named by --tracking-table exists but is not one Flotilla
 * or the guide's runner wrote (TypeORM's, Laravel's, Knex's, ...). It is never
 * altered nor read as a list of applied migrations.
 */
export class ForeignTrackingTableError extends FlotillaError {
  readonly code = 'foreign_tracking_table';
  readonly kind = 'input';
  constructor(
    readonly table: string,
    readonly columns: string[],
    readonly tool: string | undefined,
    readonly reason?: string,
  ) {
    super(
      `table ${table} exists but is not a Flotilla tracking table${tool ? ` (it looks like ${tool}'s)` : ''}: ${reason ? `${reason}; ` : ''}columns ${columns.length ? columns.join(', ') : '(none)'}`,
      'Flotilla left it untouched. Keep Flotilla\'s applied migrations in a table of their own: pass --tracking-table flotilla_migrations (or set FLOTILLA_TRACKING_TABLE, or "trackingTable" in flotilla.config.json).' +
        (['name', 'checksum', 'applied_at', 'duration_ms', 'applied_by'].every((c) => columns.includes(c))
          ? " If it is Flotilla's own table and a column was added to it by hand, drop that column."
          : ''),
    );
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), table: this.table, columns: this.columns, tool: this.tool ?? null, reason: this.reason ?? null };
  }
}

/** --schema Acme when only acme exists: Postgres would make a twin schema "Acme" beside it. */
export class SchemaCaseError extends FlotillaError {
  readonly code = 'schema_case';
  readonly kind = 'input';
  constructor(
    readonly schema: string,
    readonly existing: string[],
  ) {
    super(
      `schema "${schema}" does not exist, but ${existing.map((e) => `"${e}"`).join(' and ')} does: the names differ only by case`,
      `Nothing was created. Pass --schema ${existing[0]} (the schema's exact name; Postgres folds unquoted names to lower case, so CREATE SCHEMA ${schema} made ${schema.toLowerCase()}). Flotilla does not create a second schema whose name differs only by case.`,
    );
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), schema: this.schema, existing: this.existing };
  }
}

/** --tracking-table Migrations when only migrations exists in the schema: Postgres would make a twin table beside it. */
export class TrackingTableCaseError extends FlotillaError {
  readonly code = 'tracking_table_case';
  readonly kind = 'input';
  constructor(
    readonly schema: string,
    readonly table: string,
    readonly existing: string[],
  ) {
    super(
      `tracking table ${schema}.${table} does not exist, but ${existing.map((e) => `${schema}.${e}`).join(' and ')} does: the names differ only by case`,
      `Nothing was created. Pass --tracking-table ${existing[0]} (the table's exact name; Postgres folds unquoted names to lower case). Flotilla does not create a second tracking table whose name differs only by case.`,
    );
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), schema: this.schema, table: this.table, existing: this.existing };
  }
}

/** No --schema, the current schema has no tracking table, and several other schemas have one. */
export class AmbiguousLedgerError extends FlotillaError {
  readonly code = 'ambiguous_tracking_table';
  readonly kind = 'input';
  constructor(
    readonly table: string,
    readonly schemas: string[],
    readonly current: string | null,
    /** the search path itself reaches several (the current schema's and others'), rather than none */
    readonly onPath = false,
  ) {
    super(
      onPath
        ? `the search path reaches a tracking table ${table} in ${schemas.length} schemas (${schemas.join(', ')}): the current schema's (${current}) would be used, and what the others record applied again`
        : `${schemas.length === 1 ? `schema ${schemas[0]} holds` : `${schemas.length} schemas hold`} a tracking table ${table} (${schemas.join(', ')}), off the search path, and the current schema (${current ?? 'none: search_path names no existing schema'}) holds none`,
      `Nothing was changed. Say which one is this target's: pass --schema ${onPath ? schemas.join(' or --schema ') : schemas[0]} (or set FLOTILLA_SCHEMA, or "schema" in flotilla.config.json).`,
    );
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), table: this.table, schemas: this.schemas, current: this.current };
  }
}

/** Without --schema, another runner created the tracking table in another schema while this one was starting. */
export class LedgerMovedError extends FlotillaError {
  readonly code = 'tracking_table_created_elsewhere';
  readonly kind = 'transient';
  constructor(
    readonly table: string,
    readonly intended: string,
    readonly existing: string,
  ) {
    super(
      `another runner created the tracking table ${existing}.${table} while this one was about to create ${intended}.${table}`,
      `Nothing was changed. Run again: this runner will then use ${existing}.${table} (or pass --schema to choose).`,
    );
  }
}

/**
 * The target database refused Flotilla's own work because of its rules or its
 * state (no privilege, read-only, a standby, the session terminated...). Built
 * by adapters/pg/sqlstate.ts from the SQLSTATE; `kind` says whether a retry can help.
 */
export class TargetRefusedError extends FlotillaError {
  readonly code = 'target_refused';
  readonly kind: ErrorKind;
  constructor(
    readonly reason: TargetRefusal,
    message: string,
    hint: string,
    kind: ErrorKind,
    readonly pg?: PgErrorFields,
  ) {
    super(message, hint);
    this.kind = kind;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), reason: this.reason, pg: this.pg };
  }
}

export type TargetRefusal = 'privilege' | 'read_only' | 'standby' | 'terminated' | 'connection' | 'busy' | 'resources' | 'canceled' | 'refused';

export function isFlotillaError(e: unknown): e is FlotillaError {
  return e instanceof FlotillaError;
}

// --- tenants: the registry file or query, and which tenants a command selects

export class TenantsFileError extends FlotillaError {
  readonly code = 'invalid_tenants';
  readonly kind = 'input';
  readonly source: string;
  readonly problems: string[];
  constructor(source: string, problems: string[], origin: 'file' | 'query' = 'file') {
    const count = `${problems.length} problem${problems.length === 1 ? '' : 's'}`;
    const what = origin === 'file' ? `tenants file ${source}` : `tenants from ${source}`;
    super([`Invalid ${what}: ${count}`, ...problems.map((p) => `  ${p}`)].join('\n'), 'Fix the entries above and run the command again; nothing was changed.');
    this.source = source;
    this.problems = problems;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), source: this.source, problems: this.problems };
  }
}

export class MissingEnvVarError extends FlotillaError {
  readonly code = 'missing_env_var';
  readonly kind = 'input';
  readonly variable: string;
  readonly tenantId: string | undefined;
  constructor(variable: string, tenantId?: string, empty = false) {
    const neededBy = tenantId === undefined ? '' : ` (needed by tenant ${JSON.stringify(tenantId)})`;
    super(
      // an empty value would leave libpq to fill in defaults: another host or database than the one meant
      `environment variable ${variable} is ${empty ? 'set but empty' : 'not set'}${neededBy}`,
      `Set ${variable} in the environment of this process (its value is substituted into the database URL) and run the command again.`,
    );
    this.variable = variable;
    this.tenantId = tenantId;
  }
}

export class TenantSelectionError extends FlotillaError {
  readonly code = 'unknown_tenant';
  readonly kind = 'input';
  readonly unknownIds: string[];
  constructor(unknownIds: string[]) {
    super(
      `unknown tenant id${unknownIds.length === 1 ? '' : 's'}: ${unknownIds.map((id) => JSON.stringify(id)).join(', ')}`,
      'Check the ids against the tenants registry (a typo would otherwise silently select nothing).',
    );
    this.unknownIds = unknownIds;
  }
}

/** Selection flags that are empty, missing or contradictory: exit 2, nothing created. */
export class SelectorError extends FlotillaError {
  readonly code = 'invalid_selector';
  readonly kind = 'input';
  constructor(readonly problems: string[]) {
    super(
      problems.length === 1 ? problems[0]! : [`invalid tenant selection: ${problems.length} problems`, ...problems.map((p) => `  ${p}`)].join('\n'),
      'Select tenants explicitly: --only <ids>, --tag <tag> or --all (every tenant of the file, query or registry). Nothing was changed.',
    );
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), problems: this.problems };
  }
}

/** A well-formed selection that matches no tenant: refused, never "nothing to do" by accident. */
export class EmptySelectionError extends FlotillaError {
  readonly code = 'no_tenant_selected';
  readonly kind = 'input';
  constructor(readonly description: string) {
    super(`no tenant matches ${description}`, 'Check the tags and ids against the tenants (`--all` selects every tenant). Nothing was changed.');
  }
}

// --- rollouts

export class RolloutNotFoundError extends FlotillaError {
  readonly code = 'rollout_not_found';
  readonly kind = 'input';
  constructor(readonly rolloutId: string) {
    super(`no rollout with id ${rolloutId}`, 'List rollouts with `flotilla rollouts`.');
  }
}

/** A tenant id that is not part of the rollout (the dashboard's tenant page). */
export class TenantNotInRolloutError extends FlotillaError {
  readonly code = 'tenant_not_in_rollout';
  readonly kind = 'input';
  constructor(
    readonly rolloutId: string,
    readonly tenantId: string,
  ) {
    super(`rollout ${rolloutId} has no tenant ${tenantId}`, `See the rollout's tenants with \`flotilla rollout status ${rolloutId}\`.`);
  }
}

export class RefreshRefusedError extends FlotillaError {
  readonly code = 'refresh_refused';
  readonly kind = 'input';
  constructor(
    readonly rolloutId: string,
    readonly blockers: { tenantId: string; reason: string }[],
  ) {
    const shown = blockers.slice(0, 10).map((b) => `  ${b.tenantId}: ${b.reason}`);
    if (blockers.length > 10) shown.push(`  ... and ${blockers.length - 10} more`);
    super(
      [
        `cannot refresh the migration set of rollout ${rolloutId}: ${blockers.length} tenant${blockers.length === 1 ? '' : 's'} already ran the frozen files`,
        ...shown,
      ].join('\n'),
      'A file a tenant has applied must not change under it: restore the frozen files and retry without --refresh, or add a new migration file and start a new rollout. Nothing was changed.',
    );
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), rolloutId: this.rolloutId, blockers: this.blockers };
  }
}

/**
 * A command run with one FLOTILLA_QUEUE_PREFIX on a rollout created with another: fleets sharing a
 * control database are kept apart by their prefix, so acting on it would enqueue into a queue its
 * workers never read (or hand it to another fleet's workers). Nothing was changed.
 */
export class QueuePrefixMismatchError extends FlotillaError {
  readonly code = 'queue_prefix_mismatch';
  readonly kind = 'input';
  constructor(
    readonly rolloutId: string,
    readonly rolloutPrefix: string,
    readonly prefix: string,
  ) {
    super(
      `rollout ${rolloutId} belongs to queue prefix ${rolloutPrefix}, not ${prefix} (FLOTILLA_QUEUE_PREFIX): nothing was changed`,
      `Run the command again with FLOTILLA_QUEUE_PREFIX=${rolloutPrefix}, the prefix of the fleet that runs this rollout.`,
    );
  }
}

/** The control database stayed unreachable for the whole retry budget of control/pool.ts (already retried: never again). */
export class ControlUnavailableError extends ConnectionError {}

/** A rollout or schedule of a set with error-level lint findings nobody acknowledged (core/lint). */
export class UnacknowledgedRiskError extends FlotillaError {
  readonly code = 'unacknowledged_risk';
  readonly kind = 'input';
  constructor(readonly findings: { file: string; line: number; rule: string; lock: string | null; table: string | null; message: string }[]) {
    const rules = [...new Set(findings.map((f) => f.rule))];
    super(
      `the migration set has ${findings.length} error-level lint finding${findings.length === 1 ? '' : 's'} nobody acknowledged: ${findings
        .slice(0, 10)
        .map((f) => `${f.file}:${f.line} ${f.rule} (${f.lock ? `${f.lock}${f.table ? ` on ${f.table}` : ''}` : 'fails'}: ${f.message})`)
        .join('; ')}${findings.length > 10 ? `; and ${findings.length - 10} more (flotilla lint lists them all)` : ''}`,
      `Nothing was started. See them with \`flotilla lint\` and rewrite the statements the safer way, or acknowledge them: ${rules
        .map((r) => `--accept-risk ${r}`)
        .join(' ')} (recorded with your name: FLOTILLA_ACTOR, else the OS user), or a "-- flotilla:allow <rule-id>" line at the top of the file.`,
    );
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), findings: this.findings };
  }
}

/** A command's argument cannot be used as given (a bad description, a name that clashes): nothing was changed. */
export class BadArgumentError extends FlotillaError {
  readonly code = 'bad_argument';
  readonly kind = 'input';
  constructor(
    readonly argument: string,
    message: string,
    hint: string,
  ) {
    super(message, hint);
  }
}

// --- baseline, down files and revert

/** NNN_x.down.sql with no NNN_*.sql beside it. */
export class DownWithoutUpError extends FlotillaError {
  readonly code = 'down_without_up';
  readonly kind = 'input';
  constructor(readonly files: string[]) {
    super(
      `down file${files.length > 1 ? 's' : ''} without an up migration of the same number: ${files.join(', ')}`,
      'A down file NNN_description.down.sql reverts the migration NNN_description.sql beside it: add the up file, or fix the number, or delete the down file.',
    );
  }
}

/** Versions to revert that have no down file (or no file at all): nothing was run. */
export class MissingDownError extends FlotillaError {
  readonly code = 'missing_down';
  readonly kind = 'input';
  constructor(readonly migrations: string[]) {
    super(
      `no down file for ${migrations.join(', ')}: nothing was reverted`,
      'Write NNN_description.down.sql beside each of these migrations (it must undo the up file), then run again.',
    );
  }
}

/** A revert that would leave migrations applied on top of the ones it reverts. */
export class RevertBlockedError extends FlotillaError {
  readonly code = 'revert_blocked';
  readonly kind = 'migration';
  constructor(
    readonly reverting: string[],
    readonly above: string[],
  ) {
    super(
      `cannot revert ${reverting.join(', ')}: ${above.join(', ')} ${above.length > 1 ? 'were' : 'was'} applied after ${reverting.length > 1 ? 'them' : 'it'} and would stay applied on top`,
      'Revert the later migrations first (flotilla down --to <NNN>, or revert the rollout that applied them); nothing was reverted on this database.',
    );
  }
}

/** `baseline` refused: nothing was recorded. */
export class BaselineRefusedError extends FlotillaError {
  readonly code = 'baseline_refused';
  readonly kind = 'input';
  constructor(readonly problems: string[]) {
    super(`baseline refused: ${problems.join('; ')}`, 'Nothing was recorded. Fix what is named above (or pick another --up-to) and run again.');
  }
}

/** `rollout revert` refused before anything was created. */
export class RevertRefusedError extends FlotillaError {
  readonly code = 'revert_refused';
  readonly kind = 'input';
  constructor(
    readonly rolloutId: string,
    readonly problems: string[],
  ) {
    super(
      `cannot revert rollout ${rolloutId}: ${problems.join('; ')}`,
      'Nothing was created. Fix what is named above and run `flotilla rollout revert` again.',
    );
  }
}
