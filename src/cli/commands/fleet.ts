/**
 * Fleet commands: rollout (create, status, retry, cancel, resume), rollouts,
 * worker, schedule. Registration only: each command's module (BullMQ, ioredis,
 * the control store) loads only when it runs, so `flotilla status` starts fast.
 * Settings beyond the engine's come from the environment: REDIS_URL,
 * CONTROL_DATABASE_URL (default DATABASE_URL), FLOTILLA_QUEUE_PREFIX (config.ts).
 */
import { applyWorkerHeapFlags } from '../heap.js';
import type { Command } from 'commander';
import type { CommandContext } from './single.js';

type Run = (action: (ctx: CommandContext) => Promise<number>, cmd: Command) => Promise<void>;

export function registerFleetCommands(program: Command, run: Run): void {
  const rollout = program
    .command('rollout')
    .description('migrate a fleet: freeze the set, enqueue per-tenant jobs, waves (see `rollout status|retry|cancel|resume`)')
    .option('--tenants <file>', 'tenants file (YAML or JSON)')
    .option('--tenants-query <sql>', 'read tenants (id, database_url, schema, tags, window) from the control database')
    .option('--tag <tag...>', 'only tenants with these tags')
    .option('--only <ids>', 'only these tenant ids (comma-separated)')
    .option('--all', 'every tenant of the file, query or registry (required when neither --only nor --tag is given)')
    .option('--canary <n|tag>', 'first wave: n tenants or those tagged; the rest waits for its success')
    .option('--wave-size <n|%>', 'tenants per wave after the canary')
    .option('--max-failures <n|%>', 'halt when more tenants than this failed (default 0)')
    .option('--concurrency <n>', 'tenants migrating at once across all workers')
    .option('--per-server <n>', 'tenants migrating at once per Postgres server (host:port)')
    .option('--max-lock-wait <duration>', "halt when a wave's 95th percentile of lock waits on tenants' tables passes this (e.g. 2s)")
    .option('--dry-run', 'apply and validate each tenant in a transaction, then roll back')
    .option('--wait', 'show progress and wait for the end (exit 0 only if every tenant succeeded)')
    .option('--accept-risk <rule...>', 'acknowledge error-level lint findings of these rules (recorded with FLOTILLA_ACTOR or the OS user)')
    .option('--order-by <order>', 'size: small tenants first, the largest last (the canary comes from the small ones)')
    .option(
      '--notify <url...>',
      "POST a JSON event (Slack-compatible) when the rollout halts, fails, succeeds or is cancelled; repeatable; '${VAR}' resolved by the worker that sends",
    )
    .option('--skip-drifted', "leave out tenants whose schema differs from their version group's majority (see `flotilla drift`)")
    .action((o, cmd) => run(async (ctx) => (await import('./rollout-create.js')).rolloutCreate(ctx, o), cmd));
  rollout
    .command('status <id>')
    .description('per-tenant state of a rollout (text: the first 50 tenants, --json: all of them, unless --limit says otherwise)')
    .option('--limit <n>', 'list at most n tenants (0: all)')
    .option('--offset <n>', 'skip the first n tenants (in rollout order)')
    .option('--state <states>', 'only tenants in these states (comma-separated: failed,running)')
    .action((id: string, o, cmd) => run(async (ctx) => (await import('./rollout-status.js')).rolloutStatus(ctx, id, o), cmd));
  rollout
    .command('retry <id>')
    .description('re-enqueue the failed and cancelled tenants of a rollout')
    .option('--wait', 'wait for the end (exit 0 only if every tenant succeeded)')
    .option('--refresh', 'run the migration files on disk instead of the frozen set (refused when a tenant already applied a file that changed)')
    .action((id: string, o, cmd) => run(async (ctx) => (await import('./rollout-retry.js')).rolloutRetry(ctx, id, o), cmd));
  rollout
    .command('cancel <id>')
    .description('stop a rollout: tenants not started are cancelled, running ones finish')
    .action((id: string, _o, cmd) => run(async (ctx) => (await import('./rollout-cancel.js')).rolloutCancel(ctx, id), cmd));
  rollout
    .command('resume <id>')
    .description('rebuild the queue from the control database (after Redis lost its data); safe any time')
    .option('--wait', 'then wait for the end (exit 0 only if every tenant succeeded)')
    .action((id: string, o, cmd) => run(async (ctx) => (await import('./rollout-resume.js')).rolloutResume(ctx, id, o), cmd));

  rollout
    .command('revert <id>')
    .description("a new rollout running the down files of that rollout's files on the tenants that applied them")
    .option('--canary <n|tag>', 'first wave: n tenants or those tagged; the rest waits for its success')
    .option('--wave-size <n|%>', 'tenants per wave after the canary')
    .option('--max-failures <n|%>', 'halt when more tenants than this failed (default 0)')
    .option('--concurrency <n>', 'tenants reverting at once across all workers')
    .option('--per-server <n>', 'tenants reverting at once per Postgres server (host:port)')
    .option('--dry-run', 'run and validate the down files on each tenant in a transaction, then roll back')
    .option('--wait', 'show progress and wait for the end (exit 0 only if every tenant succeeded)')
    .action((id: string, o, cmd) => run(async (ctx) => (await import('./rollout-revert.js')).rolloutRevert(ctx, id, o), cmd));

  const rollouts = program
    .command('rollouts')
    .description('list recent rollouts (see `rollouts prune`)')
    .option('--limit <n>', 'how many', '20')
    .action((o, cmd) => run(async (ctx) => (await import('./rollouts.js')).rolloutsList(ctx, o), cmd));
  rollouts
    .command('prune')
    .description('remove the history of rollouts that finished long ago (never a running one)')
    .option('--older-than <age>', 'finished more than this long ago: 30d, 2w, 12h')
    .option('--dry-run', 'say what would be removed, remove nothing')
    .action((o, cmd) => run(async (ctx) => (await import('./rollouts.js')).rolloutsPrune(ctx, o), cmd));

  program
    .command('dashboard')
    .description('serve a live web page of the rollouts; retry, cancel and resume with FLOTILLA_DASHBOARD_TOKEN (SIGTERM stops)')
    .option('--port <n>', 'port to listen on (0: any free port)', '8080')
    .option('--host <address>', 'address to listen on (0.0.0.0: every interface)', '127.0.0.1')
    .action((o, cmd) => run(async (ctx) => (await import('./dashboard.js')).dashboardRun(ctx, o), cmd));

  program
    .command('worker')
    .description('run a worker: take tenant jobs from Redis and migrate them (SIGTERM drains)')
    .option('--concurrency <n>', 'tenants at once in this process', '2')
    .option('--drain-timeout <duration>', 'on SIGTERM, how long running jobs may finish', '30s')
    .option('--metrics-port <port>', 'serve Prometheus metrics on this port (GET /metrics), e.g. 9464')
    .option('--metrics-host <host>', 'address the metrics server listens on (default 0.0.0.0)')
    .action((o, cmd) =>
      run(async (ctx) => {
        // before BullMQ, pg and the rest load: their loading alone would grow the young generation (cli/heap.ts)
        applyWorkerHeapFlags();
        return (await import('./worker.js')).workerRun(ctx, o);
      }, cmd),
    );

  const schedule = program
    .command('schedule')
    .description('register a recurring maintenance-window batch (cron + time zone) that starts a rollout')
    .option('--name <name>', 'schedule name')
    .option('--cron <expr>', 'cron expression, e.g. "0 2 * * SUN"')
    .option('--tz <zone>', 'IANA time zone', 'UTC')
    .option('--tenants <file>', 'register these tenants first (YAML or JSON)')
    .option('--tag <tag...>', 'only tenants with these tags')
    .option('--all', 'every tenant of the registry when the schedule fires (required without --tag)')
    .option('--max-failures <n|%>', 'per rollout')
    .option('--concurrency <n>', 'per rollout')
    .option('--per-server <n>', 'per rollout')
    .option('--accept-risk <rule...>', 'acknowledge error-level lint findings of these rules (recorded with FLOTILLA_ACTOR or the OS user)')
    .option('--notify <url...>', 'per rollout: POST a JSON event when it halts, fails, succeeds or is cancelled (see rollout --notify)')
    .action((o, cmd) => run(async (ctx) => (await import('./schedule.js')).scheduleAdd(ctx, o), cmd));
  schedule
    .command('list')
    .description('list schedules')
    .action((_o, cmd) => run(async (ctx) => (await import('./schedule.js')).scheduleList(ctx), cmd));
  schedule
    .command('remove <name>')
    .description('remove a schedule')
    .action((name: string, _o, cmd) => run(async (ctx) => (await import('./schedule.js')).scheduleRemove(ctx, name), cmd));
}
