/**
 * `flotilla down [--to <NNN>]` on one database: revert applied migrations with
 * their down files (NNN_description.down.sql), newest first. Without --to,
 * only the last applied migration (like golang-migrate's `down 1`: reverting
 * everything is never the default); `--to NNN` reverts every applied migration
 * numbered above NNN (NNN stays applied; `--to 0` reverts all). A missing down
 * file is refused, naming every one, before anything runs (exit 2). Each down
 * file is validated and committed like an up file, by the same engine, and its
 * commit removes the migration's tracking row.
 */
import { loadMigrationDir } from '../../adapters/fs-source.js';
import { connect } from '../../adapters/pg/connection.js';
import { connectLockSessions } from '../../adapters/pg/lock.js';
import { engineSettings, requireDatabaseUrl } from '../../config.js';
import { ConfigError } from '../../core/errors.js';
import { pairsOf, type RevertSelect } from '../../core/revert.js';
import { Migrator, type EngineEvent, type MigrateReport } from '../../migrator.js';
import type { Output } from '../output.js';
import type { Flags } from '../requests.js';
import { cliIdentity, exitCodeOf, failureLines, type CommandContext } from './single.js';

export function parseDown(o: Flags): RevertSelect {
  if (o.to === undefined) return { last: true };
  const m = /^(\d+)(?:_[A-Za-z0-9][A-Za-z0-9_-]*\.sql)?$/.exec(String(o.to).trim());
  if (!m) throw new ConfigError([`--to: "${o.to}" is not a migration number (e.g. 003, or 0 to revert everything)`]);
  return { to: BigInt(m[1]!) };
}

export async function downCommand(
  ctx: CommandContext,
  select: RevertSelect,
  emit: (e: EngineEvent) => void = () => {},
  dryRun = false,
): Promise<MigrateReport> {
  const set = await loadMigrationDir(ctx.config.dir);
  const url = requireDatabaseUrl(ctx.config);
  const client = await connect(url, { applicationName: 'flotilla-cli' });
  try {
    const lockSessions = connectLockSessions(url, { applicationName: 'flotilla-cli lock' });
    return await new Migrator(client, engineSettings(ctx.config, cliIdentity()), emit, { lockSessions }).revert(pairsOf(set), { select, dryRun });
  } finally {
    await client.end().catch(() => {});
  }
}

function printer(out: Output): (e: EngineEvent) => void {
  return (e) => {
    if (e.type === 'found-pending') out.line(e.names.length ? `Reverting ${e.names.length} migration${e.names.length === 1 ? '' : 's'}` : 'Nothing to revert');
    else if (e.type === 'migration-start') out.line(`→ Reverting with: ${e.name}`);
    else if (e.type === 'migration-done') out.line(`✓ Reverted: ${e.name}`);
    else if (e.type === 'migration-failed') for (const l of failureLines(e.name, e.error)) out.line(l);
    else if (e.type === 'lock-wait') out.line(`… Waiting for the migration lock${e.holder ? ` (held by ${e.holder})` : ''}`);
    else if (e.type === 'warning') out.error(`⚠ ${e.message}`);
  };
}

export async function down(ctx: CommandContext, o: Flags): Promise<number> {
  const select = parseDown(o);
  const report = await downCommand(ctx, select, ctx.out.json ? () => {} : printer(ctx.out), !!o.dryRun);
  if (ctx.out.json) ctx.out.data({ ...report, reverted: report.applied });
  else for (const w of report.dryRun ? report.warnings : []) ctx.out.error(`⚠ ${w}`);
  if (!ctx.out.json && report.pending.length)
    ctx.out.line(
      `${report.failed ? '✗' : '✓'} Completed: ${report.applied.length} reverted, ${report.failed ? 1 : 0} failed${report.dryRun ? ' (dry run: everything rolled back)' : ''}`,
    );
  return exitCodeOf(report);
}
