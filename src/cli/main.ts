#!/usr/bin/env node
/**
 * flotilla: argv -> command -> exit code.
 *   0 success · 1 a migration or its validation failed · 2 bad input or
 *   configuration (nothing changed) · 3 could not reach the database or get the
 *   lock in time (nothing changed; try again)
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { loadConfig, type Config, type RawSettings } from '../config.js';
import { VALIDATION_OPTION_NAMES } from '../core/validation.js';
import { createLogger, type Logger } from '../logger.js';
import type { CommandContext } from './commands/single.js';
import { processOutput, reportError } from './output.js';
import { registerFleetCommands } from './commands/fleet.js';
import { registerSafetyCommands } from './commands/safety.js';
import { describeCommands, VALIDATION_SWITCHES } from './help.js';
import type { Flags } from './requests.js';

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
    .showHelpAfterError()
    // set before any subcommand exists: commander copies these settings into each new subcommand
    .exitOverride()
    .configureOutput({ writeErr: (s) => void process.stderr.write(s) });
  for (const name of VALIDATION_OPTION_NAMES) {
    // shown in their own group (help.ts): the form that changes the default; both forms work
    const [on, off] = [new Option(`--${kebab(name)}`, VALIDATION_SWITCHES[name].on), new Option(`--no-${kebab(name)}`, VALIDATION_SWITCHES[name].off)];
    program.addOption((VALIDATION_SWITCHES[name].shown === 'on' ? on : on.hideHelp()).helpGroup('Validation switches (global):'));
    program.addOption((VALIDATION_SWITCHES[name].shown === 'off' ? off : off.hideHelp()).helpGroup('Validation switches (global):'));
  }

  // Each command's module loads only when it runs: `flotilla list` must not pay for pg, the
  // engine or BullMQ, and `flotilla worker` never loads the SQL parser (docs/performance.md).
  const single = () => import('./commands/single.js');
  program
    .command('status')
    .description('show applied and pending migrations')
    .action((_o, cmd) => run(async (ctx) => (await single()).statusCommand(ctx), cmd));
  program
    .command('list')
    .description('list the migrations in the directory (no database needed)')
    .action((_o, cmd) => run(async (ctx) => (await single()).listCommand(ctx), cmd));
  program
    .command('pending')
    .description('apply every pending migration, in order')
    .option('--dry-run', 'apply and validate in one transaction, then roll back: nothing is kept')
    .action((o, cmd) => run(async (ctx) => (await single()).pendingCommand(ctx, { dryRun: o.dryRun }), cmd));
  program
    .command('run <name>')
    .description('apply one migration by file name')
    .option('--dry-run', 'apply and validate, then roll back: nothing is kept')
    .action((name: string, o, cmd) => run(async (ctx) => (await single()).runCommand(ctx, name, { dryRun: o.dryRun }), cmd));
  program
    .command('new <description>')
    .description('create the next NNN_description.sql in the migrations directory, from a short template')
    .action((description: string, _o, cmd) => run(async (ctx) => (await import('./commands/new.js')).newCommand(ctx, description), cmd));
  program
    .command('init')
    .description('create migrations/, flotilla.config.json and tenants.example.yaml (never overwrites)')
    .action((_o, cmd) => run(async (ctx) => (await import('./commands/init.js')).initCommand(ctx), cmd));
  program
    .command('completion <shell>')
    .description('print a shell completion script (bash or zsh), e.g. eval "$(flotilla completion bash)"')
    .action((shell: string, _o, cmd) => run(async (ctx) => (await import('./commands/completion.js')).completionCommand(ctx, shell, cmd.parent!), cmd));
  registerFleetCommands(program, run);
  registerSafetyCommands(program, run);
  strictOptions(program);
  describeCommands(program);
  return program;
}

/**
 * The CLI contract for every command, whoever adds it: an unknown option is a
 * usage error (exit 2) wherever it appears, and an option belongs to the
 * command it is declared on. Options are positional (commander's
 * `enablePositionalOptions`): a command reads its own options before its
 * subcommand, and the subcommand reads what follows. The program's options are
 * global: each subcommand run gets a hidden copy, so `flotilla status --json` and
 * `flotilla --json status` both work. A parent command's own options
 * (`rollout --wait`) cannot reach its subcommands: `rollout resume <id> --wait`
 * is resume's own --wait, `rollout status <id> --wait` is an unknown option,
 * and `rollout --wait status <id>` is refused rather than silently ignored.
 */
export function strictOptions(program: Command): void {
  // the copies are made for the commands a run goes through, when it goes through them
  // (preSubcommand): some 30 global options on every command would cost each start-up ~10 ms
  const withGlobals = new WeakSet<Command>();
  const addGlobals = (cmd: Command) => {
    if (withGlobals.has(cmd)) return;
    withGlobals.add(cmd);
    for (const o of program.options) {
      // --version is the program's alone (a copy would be accepted and ignored)
      if (o.long === '--version' || cmd.options.some((x) => x.long === o.long)) continue;
      const copy = new Option(o.flags, o.description).hideHelp();
      if (o.defaultValue !== undefined && !o.negate) copy.default(o.defaultValue, o.defaultValueDescription);
      onlyOnce(copy);
      cmd.addOption(copy);
    }
  };
  const walk = (cmd: Command) => {
    cmd.exitOverride();
    cmd.allowUnknownOption(false);
    if (cmd.commands.length) {
      cmd.enablePositionalOptions();
      cmd.hook('preSubcommand', (_self, sub) => addGlobals(sub));
    }
    for (const o of cmd.options) onlyOnce(o);
    for (const sub of cmd.commands) walk(sub);
  };
  walk(program);
  program.hook('preAction', (_self, action) => {
    for (let parent = action.parent; parent && parent !== program; parent = parent.parent) {
      for (const o of parent.options) {
        if (program.options.some((x) => x.long === o.long)) continue;
        if (parent.getOptionValueSource(o.attributeName()) !== 'cli') continue;
        action.error(
          `error: option '${o.long ?? o.flags}' belongs to \`${commandPath(parent)}\`, not to \`${commandPath(action)}\`${
            action.options.some((x) => x.long === o.long) ? `; put it after ${action.name()}` : ''
          }`,
          { exitCode: 2, code: 'commander.misplacedOption' },
        );
      }
    }
  });
}

/**
 * An option that takes one value, given twice (`--only a --only b`,
 * `--tenants a.yaml --tenants b.yaml`), is a usage error: commander would keep
 * the last one silently. Lists are comma-separated, or variadic (`--tag`).
 */
function onlyOnce(o: Option): void {
  if (o.variadic || !(o.required || o.optional)) return;
  const parse = o.parseArg;
  o.argParser((value: string, previous: unknown) => {
    if (previous !== undefined && previous !== o.defaultValue) throw new InvalidArgumentError('given more than once; give it once');
    return parse ? parse(value, previous) : value;
  });
}

/**
 * Option values for a command and its ancestors (the global options may be
 * given before or after the subcommand): what the user gave, the nearest
 * command first; defaults only where nobody gave a value.
 */
export function mergedOptions(cmd: Command): Flags {
  const chain: Command[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) chain.push(c);
  const out: Flags = {};
  const given = new Set<string>();
  for (const c of chain) {
    for (const [k, v] of Object.entries(c.opts())) {
      const source = c.getOptionValueSource(k);
      const explicit = source !== undefined && source !== 'default' && source !== 'implied';
      if (explicit && !given.has(k)) {
        out[k] = v;
        given.add(k);
      } else if (!given.has(k) && !(k in out)) out[k] = v;
    }
  }
  return out;
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Global flags (commander) -> raw settings for loadConfig. */
export function flagsOf(g: Flags): RawSettings {
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
    const g = mergedOptions(cmd);
    const out = processOutput(!!g.json);
    try {
      const config: Config = loadConfig({ flags: flagsOf(g), env: process.env, configFile: g.config });
      // made on first use: most commands never log, and pino is not free to load
      let logger: Logger | undefined;
      exitCode = await action({
        config,
        out,
        get logger() {
          logger ??= createLogger({ level: config.logLevel });
          return logger;
        },
      });
    } catch (e) {
      exitCode = reportError(out, e);
    }
  });
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

/**
 * A reader that went away (`flotilla pending | head -1`) must not change what
 * the command does nor its exit code: writes after that are dropped, the work
 * goes on to its end, and the exit code is the command's own. (Exiting at the
 * first failed write would stop a run halfway and report 0.)
 */
export function ignoreClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') return;
      throw e;
    });
  }
}

/** Run only as the entry point (the bin, `node dist/cli/main.js`), not when a test imports buildProgram. */
function isEntryPoint(): boolean {
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // The SQL parser is 1.7 MB of WASM that a command uses for milliseconds. V8's optimizing tier
  // would compile it on background threads for a few hundred ms of CPU, and the process waits for
  // that at exit: without it `flotilla list` takes half the time (docs/performance.md).
  setFlagsFromString('--liftoff-only');
  ignoreClosedPipe();
  main(process.argv).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`✗ ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
