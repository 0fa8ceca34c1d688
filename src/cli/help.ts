/**
 * What `--help` says beyond commander's defaults: the validation switches
 * described, the global options shown on every subcommand's help, and an
 * example for every command. Adding a command? Give it an example here
 * (test/unit/cli-terminal.test.ts checks that every command has one).
 */
import type { Command, Help } from 'commander';
import type { ValidationOptions } from '../core/validation.js';

/** Help text of each validation switch; `shown` is the form that changes the guide's default. */
export const VALIDATION_SWITCHES: Record<keyof ValidationOptions, { on: string; off: string; shown: 'on' | 'off' }> = {
  allowTableCreation: { on: 'validation: new tables may appear (default)', off: 'validation: a file may not create tables', shown: 'off' },
  allowColumnAddition: { on: 'validation: new columns may appear (default)', off: 'validation: a file may not add columns', shown: 'off' },
  allowRowChanges: { on: 'validation: row counts of existing tables may change', off: 'validation: row counts must not change (default)', shown: 'on' },
  allowConstraintModification: {
    on: 'validation: constraints of existing tables may change',
    off: 'validation: constraints must not change (default)',
    shown: 'on',
  },
  allowTableDrop: { on: 'validation: existing tables may be dropped', off: 'validation: no table may be dropped (default)', shown: 'on' },
  allowColumnDrop: { on: 'validation: columns may be dropped', off: 'validation: no column may be dropped (default)', shown: 'on' },
  allowColumnModification: {
    on: 'validation: column types and nullability may change',
    off: 'validation: columns must keep their type (default)',
    shown: 'on',
  },
  allowIndexDrop: { on: 'validation: indexes may be dropped', off: 'validation: no index may be dropped (default)', shown: 'on' },
  allowNotValidConstraints: {
    on: 'validation: a constraint may stay NOT VALID (VALIDATE it in a later file)',
    off: 'validation: NOT VALID constraints are refused (default)',
    shown: 'on',
  },
  allowOtherSessions: {
    on: 'validation: the file may write through another session (dblink...): not validated, not rolled back',
    off: 'validation: refused where such writes are possible (default)',
    shown: 'on',
  },
};

/** One or more example lines per command path ('' is the program itself). */
export const EXAMPLES: Record<string, string[]> = {
  '': [
    'flotilla init && flotilla new create_users_table',
    'DATABASE_URL=postgres://app@localhost:5432/app flotilla pending',
    'flotilla rollout --tenants tenants.yaml --all --canary canary --wave-size 25% --wait',
  ],
  status: ['flotilla status --database-url postgres://app@localhost:5432/app', 'flotilla status --schema tenant_acme --json'],
  list: ['flotilla list --dir db/migrations', 'flotilla list --json'],
  pending: ['flotilla pending --dry-run', 'flotilla pending --allow-row-changes --lock-timeout 2s'],
  run: ['flotilla run 003_create_audit_log_table.sql', 'flotilla run 003_create_audit_log_table.sql --dry-run'],
  new: ['flotilla new add_users_phone          # creates migrations/NNN_add_users_phone.sql', 'flotilla new "add users phone"'],
  init: ['mkdir app-db && cd app-db && flotilla init'],
  completion: ['eval "$(flotilla completion bash)"     # in ~/.bashrc', 'eval "$(flotilla completion zsh)"      # in ~/.zshrc'],
  rollout: [
    'flotilla rollout --tenants tenants.yaml --all --wait',
    'flotilla rollout --tenants tenants.yaml --tag eu --canary canary --wave-size 25% --max-failures 2 --wait',
  ],
  'rollout status': ['flotilla rollout status 3f2a9c1e --json'],
  'rollout retry': ['flotilla rollout retry 3f2a9c1e --wait', 'flotilla rollout retry 3f2a9c1e --refresh'],
  'rollout cancel': ['flotilla rollout cancel 3f2a9c1e'],
  'rollout resume': ['flotilla rollout resume 3f2a9c1e --wait'],
  rollouts: ['flotilla rollouts --limit 5 --json'],
  worker: ['CONTROL_DATABASE_URL=postgres://flotilla@control/flotilla REDIS_URL=redis://queue:6379 flotilla worker --concurrency 4'],
  schedule: ['flotilla schedule --name sunday --cron "0 2 * * SUN" --tz Europe/Paris --tag eu'],
  'schedule list': ['flotilla schedule list --json'],
  'schedule remove': ['flotilla schedule remove sunday'],
  dashboard: ['flotilla dashboard --port 8080', 'FLOTILLA_DASHBOARD_TOKEN=$(openssl rand -hex 32) flotilla dashboard --host 0.0.0.0 --port 8080'],
  lint: ['flotilla lint --dir migrations', 'flotilla lint --database-url postgres://app@localhost:5432/app --json'],
  plan: ['flotilla plan --tenants tenants.yaml', 'flotilla plan --tenants tenants.yaml --tag eu --json'],
  'rollouts prune': ['flotilla rollouts prune --older-than 30d --dry-run', 'flotilla rollouts prune --older-than 90d'],
  'rollout revert': ['flotilla rollout revert 3f2a9c1e --canary 1 --wait', 'flotilla rollout revert 3f2a9c1e --dry-run'],
  down: ['flotilla down                 # reverts the last applied migration', 'flotilla down --to 004 --dry-run'],
  baseline: ['flotilla baseline --up-to 005', 'flotilla baseline --up-to 005 --tenants tenants.yaml --all'],
  drift: ['flotilla drift --tenants tenants.yaml', 'flotilla drift --tenants tenants.yaml --tag eu --json'],
};

export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Every command's help shows the program's options under "Global Options"
 * (not a parent command's own options: those belong to the parent), and its
 * examples at the end.
 */
export function describeCommands(program: Command): void {
  const walk = (cmd: Command) => {
    cmd.configureHelp({
      showGlobalOptions: true,
      visibleGlobalOptions: (c: Command) => (c === program ? [] : program.options.filter((o) => !o.hidden && o.long !== '--version')),
    } as Partial<Help>);
    const examples = EXAMPLES[commandPath(cmd)];
    if (examples?.length) cmd.addHelpText('after', `\nExample${examples.length > 1 ? 's' : ''}:\n${examples.map((e) => `  $ ${e}`).join('\n')}\n`);
    for (const sub of cmd.commands) walk(sub);
  };
  walk(program);
}
