#!/usr/bin/env node
/**
 * flotilla: argv -> command -> exit code.
 *   0 success · 1 a migration or its validation failed · 2 bad input or
 *   configuration (nothing changed) · 3 could not reach the database or get the
 *   lock in time (nothing changed; try again)
 */
import { Command, CommanderError, Option } from 'commander';
import { loadConfig, type Config, type RawSettings } from '../config.js';
import { VALIDATION_OPTION_NAMES } from '../core/validation.js';
import { createLogger } from '../logger.js';
import { listCommand, pendingCommand, runCommand, statusCommand, type CommandContext } from './commands/single.js';
import { processOutput, reportError } from './output.js';
import { registerFleetCommands } from './commands/fleet.js';

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

export function buildProgram(run: (action: (ctx: CommandContext) => Promise<number>, cmd: Command) => Promise<void>): Command {
  const program = new Command('flotilla')
    .description('Apply NNN_description.sql migrations to one PostgreSQL database, or to a whole fleet.')
    .version('0.1.0')
    .option('--dir <path>', 'migrations directory (env MIGRATIONS_DIR)', undefined)
    .option('--database-url <url>', 'database to migrate (env DATABASE_URL)')
    .option('--schema <name>', 'search_path and tracking-table schema (schema-per-tenant)')
    .option('--tracking-table <name>', 'tracking table name (default migrations)')
    .option('--lock-timeout <duration>', 'lock_timeout for migration statements (default 10s)')
    .option('--statement-timeout <duration>', 'statement_timeout for migration statements (default 1h)')
    .option('--lock-wait-timeout <duration>', 'how long to wait for another runner (default 5min)')
    .option('--no-validate', 'skip snapshot validation')
    .option('--single-transaction', 'apply consecutive pending files in one transaction: all of them or none (each still validated)')
    .option('--config <file>', 'JSON config file (default ./flotilla.config.json if present)')
    .option('--log-level <level>', 'log level on stderr (default warn)')
    .option('--json', 'machine-readable output on stdout')
    .showHelpAfterError();
  for (const name of VALIDATION_OPTION_NAMES) {
    program.addOption(new Option(`--${kebab(name)}`, `validation: ${name}=true`).hideHelp());
    program.addOption(new Option(`--no-${kebab(name)}`, `validation: ${name}=false`).hideHelp());
  }

  program.command('status').description('show applied and pending migrations').action((_o, cmd) => run(statusCommand, cmd));
  program.command('list').description('list the migrations in the directory (no database needed)').action((_o, cmd) => run(listCommand, cmd));
  program
    .command('pending')
    .description('apply every pending migration, in order')
    .option('--dry-run', 'apply and validate in one transaction, then roll back')
    .action((o, cmd) => run((ctx) => pendingCommand(ctx, { dryRun: o.dryRun }), cmd));
  program
    .command('run <name>')
    .description('apply one migration by file name')
    .option('--dry-run', 'apply and validate, then roll back')
    .action((name: string, o, cmd) => run((ctx) => runCommand(ctx, name, { dryRun: o.dryRun }), cmd));
  registerFleetCommands(program, run);
  return program;
}

/** Global flags (commander) -> raw settings for loadConfig. */
export function flagsOf(g: Record<string, any>): RawSettings {
  const validation: Record<string, boolean> = {};
  for (const name of VALIDATION_OPTION_NAMES) if (typeof g[name] === 'boolean') validation[name] = g[name];
  return {
    dir: g.dir,
    databaseUrl: g.databaseUrl,
    schema: g.schema,
    trackingTable: g.trackingTable,
    lockTimeout: g.lockTimeout,
    statementTimeout: g.statementTimeout,
    lockWaitTimeout: g.lockWaitTimeout,
    validate: g.validate === false ? false : undefined,
    singleTransaction: g.singleTransaction === true ? true : undefined,
    validation: Object.keys(validation).length ? validation : undefined,
    logLevel: g.logLevel,
  };
}

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const json = argv.includes('--json');
  const program = buildProgram(async (action, cmd) => {
    const g = cmd.optsWithGlobals();
    const out = processOutput(!!g.json);
    try {
      const config: Config = loadConfig({ flags: flagsOf(g), env: process.env, configFile: g.config });
      const logger = createLogger({ level: config.logLevel });
      exitCode = await action({ config, out, logger });
    } catch (e) {
      exitCode = reportError(out, e);
    }
  });
  program.exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      if (json) process.stdout.write(`${JSON.stringify({ error: { code: 'usage', kind: 'input', message: e.message } })}\n`);
      return 2;
    }
    return reportError(processOutput(json), e);
  }
  return exitCode;
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`✗ ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
