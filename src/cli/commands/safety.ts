/**
 * Safety before a rollout: `lint` (the pending files' lock hazards) and `plan`
 * (the same, joined with each tenant's real table sizes). Registration only:
 * each command's module loads when it runs.
 */
import type { Command } from 'commander';
import type { CommandContext } from './single.js';

type Run = (action: (ctx: CommandContext) => Promise<number>, cmd: Command) => Promise<void>;

export function registerSafetyCommands(program: Command, run: Run): void {
  program
    .command('lint')
    .description('check the pending files (all files without --database-url) for statements that lock or rewrite live tables; exit 1 on an error-level finding')
    .action((_o, cmd) => run(async (ctx) => (await import('./lint.js')).lint(ctx), cmd));
  program
    .command('plan')
    .description("each tenant's lint findings with its real table sizes, largest first (read-only)")
    .option('--tenants <file>', 'tenants file (YAML or JSON)')
    .option('--tag <tag...>', 'only tenants with these tags')
    .option('--only <ids>', 'only these tenant ids (comma-separated)')
    .option('--all', 'every tenant of the file (the default for plan)')
    .option('--concurrency <n>', 'tenants read at once', '8')
    .action((o, cmd) => run(async (ctx) => (await import('./plan.js')).planRun(ctx, o), cmd));
}
