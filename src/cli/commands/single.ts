/**
 * The guide's single-database commands: status, list, pending, run <name>.
 * Each is a function returning data plus a thin printer, so scripts (--json)
 * and people see the same facts.
 */
import { hostname, userInfo } from 'node:os';
import type pg from 'pg';
import { engineSettings, requireDatabaseUrl, type Config } from '../../config.js';
import { loadMigrationDir } from '../../adapters/fs-source.js';
import type { MigrationSet } from '../../core/migration-set.js';
import { MigrationFailedError, ValidationFailedError, EXIT_CODES, type FlotillaError } from '../../core/errors.js';
import type { EngineEvent, MigrateReport, Migrator, MigratorPorts, StatusReport } from '../../migrator.js';
import type { Logger } from '../../logger.js';
import type { Output } from '../output.js';
import { openParseCache } from '../parse-cache.js';

export interface CommandContext {
  config: Config;
  out: Output;
  logger: Logger;
}

export function cliIdentity(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {}
  return `cli ${user}@${hostname()}`;
}

/**
 * The migration set and the migration session, read and opened at the same
 * time (the parser starts while pg loads and connects); a problem with the
 * files is reported before one with the database, as if done in turn. The
 * lock session is a second connection, opened only to migrate. pg and the
 * engine load here, so `list` never loads them.
 */
async function withSetAndDatabase<T>(
  ctx: CommandContext,
  fn: (set: MigrationSet, client: pg.Client, ports: MigratorPorts, engine: { Migrator: typeof Migrator }) => Promise<T>,
  read: (dir: string) => Promise<MigrationSet> = loadMigrationDir,
): Promise<T> {
  const opened = openDatabase(ctx);
  const [set, db] = await Promise.allSettled([read(ctx.config.dir), opened]);
  if (set.status === 'rejected') {
    if (db.status === 'fulfilled') await db.value.client.end().catch(() => {});
    throw set.reason;
  }
  if (db.status === 'rejected') throw db.reason;
  const { client, ports, engine } = db.value;
  try {
    return await fn(set.value, client, ports, engine);
  } finally {
    await client.end().catch(() => {});
  }
}

async function openDatabase(ctx: CommandContext): Promise<{ client: pg.Client; ports: MigratorPorts; engine: { Migrator: typeof Migrator } }> {
  const url = requireDatabaseUrl(ctx.config);
  const [{ connect, CLI_URL_SOURCE }, { connectLockSessions }, engine] = await Promise.all([
    import('../../adapters/pg/connection.js'),
    import('../../adapters/pg/lock.js'),
    import('../../migrator.js'),
  ]);
  const client = await connect(url, { applicationName: 'flotilla-cli', urlSource: CLI_URL_SOURCE });
  return { client, ports: { lockSessions: connectLockSessions(url, { applicationName: 'flotilla-cli lock' }) }, engine };
}

/**
 * The set as `list` and `status` read it: with the parse trees of files that
 * parsed before (cli/parse-cache.ts), since they change nothing and only print.
 * Commands that run SQL read the folder with loadMigrationDir, parsing every file.
 */
async function loadForDisplay(dir: string): Promise<MigrationSet> {
  const cache = openParseCache(dir);
  const set = await loadMigrationDir(dir, cache);
  cache.save();
  return set;
}

export async function listCommand(ctx: CommandContext): Promise<number> {
  const set = await loadForDisplay(ctx.config.dir);
  if (ctx.out.json) {
    ctx.out.data({
      dir: ctx.config.dir,
      checksum: set.checksum,
      migrations: set.migrations.map((m) => ({
        name: m.name,
        version: m.version,
        checksum: m.checksum,
        transactional: m.transactional,
        statements: m.statements.length,
        ...downOf(set, m.version),
      })),
    });
    return 0;
  }
  const { line } = ctx.out;
  line('Available Migrations');
  line('====================');
  line();
  for (const m of set.migrations) {
    const down = set.downs?.find((d) => d.version === m.version);
    line(`  ${m.name}${m.transactional ? '' : '  (runs outside a transaction)'}${down ? `  (down: ${down.name})` : ''}`);
  }
  line();
  line(`Total: ${set.migrations.length} migrations`);
  return 0;
}

/** `{ down: name }` when the migration has a down file (a key only then: the guide's list keeps its shape). */
function downOf(set: MigrationSet, version: bigint): { down?: string } {
  const d = set.downs?.find((x) => x.version === version);
  return d ? { down: d.name } : {};
}

export async function statusCommand(ctx: CommandContext): Promise<number> {
  const report = await withSetAndDatabase(
    ctx,
    (set, c, ports, { Migrator }) => new Migrator(c, engineSettings(ctx.config, cliIdentity()), undefined, ports).status(set),
    loadForDisplay,
  );
  if (ctx.out.json) ctx.out.data(report);
  else printStatus(ctx.out, report);
  return 0;
}

export function printStatus(out: Output, r: StatusReport): void {
  const { line } = out;
  line('Migration Status');
  line('================');
  line();
  line('Applied:');
  for (const a of r.applied) line(`  ✓ ${a.name}${r.baseline.includes(a.name) ? ' (baseline: recorded, not run)' : ''}`);
  if (!r.applied.length) line('  (none)');
  line();
  line('Pending:');
  for (const p of r.pending) line(`  ○ ${p}`);
  if (!r.pending.length) line('  (none)');
  if (r.changed.length) {
    line();
    line('Changed since applied (refused until restored):');
    for (const c of r.changed) line(`  ✗ ${c.name}`);
  }
  if (r.renamed.length) {
    line();
    line('Renamed since applied (same version, not applied again):');
    for (const m of r.renamed) line(`  ~ ${m.from} → ${m.to}`);
  }
  if (r.missing.length) {
    line();
    line('Applied but missing from the directory:');
    for (const m of r.missing) line(`  ! ${m.name}`);
  }
  line();
  line(`Total: ${r.applied.length} applied, ${r.pending.length} pending`);
}

export async function pendingCommand(ctx: CommandContext, opts: { dryRun?: boolean } = {}): Promise<number> {
  return applyCommand(ctx, { dryRun: opts.dryRun });
}

export async function runCommand(ctx: CommandContext, name: string, opts: { dryRun?: boolean } = {}): Promise<number> {
  return applyCommand(ctx, { only: name, dryRun: opts.dryRun });
}

async function applyCommand(ctx: CommandContext, req: { only?: string; dryRun?: boolean }): Promise<number> {
  const print = ctx.out.json ? (e: EngineEvent) => logEvent(ctx.logger, e) : humanPrinter(ctx, !!req.dryRun);
  const report = await withSetAndDatabase(ctx, (set, c, ports, { Migrator }) =>
    new Migrator(c, engineSettings(ctx.config, cliIdentity()), print, ports).migrate(set, req),
  );
  if (ctx.out.json) {
    ctx.out.data(report);
  } else if (!(req.only && report.alreadyApplied.length)) {
    ctx.out.line();
    const failed = report.failed ? 1 : 0;
    ctx.out.line(
      report.dryRun
        ? `${DRY_RUN}${failed ? '✗' : '✓'} Completed: ${report.applied.length} would apply, ${failed} failed (everything was rolled back)`
        : `${failed ? '✗' : '✓'} Completed: ${report.applied.length} applied, ${failed} failed`,
    );
  }
  return exitCodeOf(report);
}

export function exitCodeOf(report: MigrateReport): number {
  return report.failed ? EXIT_CODES[report.failed.error.kind] : 0;
}

function logEvent(logger: Logger, e: EngineEvent): void {
  if (e.type === 'migration-failed') logger.error({ migration: e.name, err: e.error.toJSON() }, 'migration failed');
  else if (e.type === 'warning') logger.warn(e.message);
  else logger.info({ event: e }, e.type);
}

/** Every line of a dry run starts with this: nothing it prints happened for good. */
export const DRY_RUN = '[dry run: nothing kept] ';

function humanPrinter(ctx: CommandContext, dryRun: boolean): (e: EngineEvent) => void {
  const mark = (text = '') => (dryRun && text ? `${DRY_RUN}${text}` : text);
  const line = (text?: string) => ctx.out.line(mark(text));
  let started = false;
  return (e) => {
    if (dryRun && !started) {
      started = true;
      line('each file runs and is validated, then everything is rolled back');
    }
    switch (e.type) {
      case 'lock-wait':
        line(`… Waiting for the migration lock${e.holder ? ` (held by ${e.holder})` : ''}`);
        break;
      case 'lock-acquired':
        line(`… Got the migration lock after ${e.waitedMs} ms`);
        break;
      case 'found-pending':
        line(`Found ${e.names.length} pending migrations`);
        break;
      case 'schema-created':
        line(`+ Created schema ${e.schema} (it did not exist)`);
        break;
      case 'already-applied':
        line(`⊘ Migration already applied: ${e.name}`);
        break;
      case 'migration-start':
        line();
        line(`→ Running migration: ${e.name}`);
        break;
      case 'migration-done':
        line(dryRun ? `✓ Migration ran and passed validation (not kept): ${e.name}` : `✓ Migration completed: ${e.name}`);
        break;
      case 'migration-failed':
        for (const l of failureLines(e.name, e.error)) line(l);
        break;
      case 'warning':
        ctx.out.error(mark(`⚠ ${e.message}`));
        break;
    }
  };
}

export function failureLines(name: string, error: FlotillaError): string[] {
  if (error instanceof ValidationFailedError) {
    return ['✗ Migration validation failed:', ...error.issues.map((i) => `  - ${i}`), `  ${name} was rolled back; nothing from it was applied.`];
  }
  const lines = [`✗ Migration failed: ${name}`];
  if (error instanceof MigrationFailedError) {
    if (error.statement) lines.push(`  statement ${error.statement.index + 1} (line ${error.statement.line}): ${error.statement.text.split('\n')[0]}`);
    lines.push(`  ERROR${error.pg.code ? ` ${error.pg.code}` : ''}: ${error.pg.message}`);
    if (error.pg.detail) lines.push(`  DETAIL: ${error.pg.detail}`);
    if (error.pg.hint) lines.push(`  HINT: ${error.pg.hint}`);
  } else {
    lines.push(`  ${error.message}`);
  }
  lines.push(`  ${error.hint}`);
  return lines;
}
