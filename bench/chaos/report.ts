/** The figures of a chaos run as printed at its end (and in the CI test's failure message). */
import type { ChaosReport } from './options.js';

const s1 = (x: number) => `${x.toFixed(1)} s`;

/** The figures as printed at the end of a run. */
export function formatChaosReport(r: ChaosReport): string {
  const f = r.figures;
  const v = f.verify;
  const lines = [
    `Chaos run: ${f.tenants} tenants (${f.databaseTenants} databases, ${f.schemaTenants} schemas on a shared database), ${f.migrations} migrations, ${f.workers} workers x ${f.concurrency}, seed ${r.options.seed}`,
    `  worker kills       ${f.kills} SIGKILL (${f.killsMidMigration} with a tenant transaction open); ${f.workerProcessesStarted} worker processes started${f.workersFailedToStart ? `, ${f.workersFailedToStart} refused to start (Redis down)` : ''}${f.externalStops ? `, ${f.externalStops} stopped by a SIGTERM from outside the run` : ''}`,
    `  redis restarts     ${f.redisRestarts.length}${f.redisRestarts.map((x) => ` (at ${x.atProgress}, down ${x.downMs} ms)`).join('')}`,
    `  redis flushes      ${f.flushes.length}${f.flushes.map((x) => ` (at ${x.atProgress}); resumes: ${x.resumes.map((y) => `exit ${y.code}, ${y.recreated ?? '?'} jobs re-created`).join('; ')}`).join('')}`,
    `  control outages    ${f.controlOutages.length}${f.controlOutages.map((x) => ` (at ${x.atProgress}, ${x.ms / 1000} s, ${x.backendsTerminated} backends terminated)`).join('')}; rollout --wait said so ${f.waitOutageNotices} time${f.waitOutageNotices === 1 ? '' : 's'}`,
    `  refused conns      ${f.refusals.length} windows: ${f.refusals.map((x) => `${x.tenant} ${x.ms / 1000} s (${x.failedAttempts} failed attempts)`).join(', ') || '-'}`,
    `  lock holds         ${f.lockHolds.length}: ${f.lockHolds.map((x) => `${x.tenant} ${x.table} ${x.ms / 1000} s (${x.lockTimeouts} lock timeouts)`).join(', ') || '-'}`,
    `  concurrent CLI     ${f.cliRuns.length} \`flotilla pending\` runs: ${f.cliRuns.map((x) => `${x.tenant} exit ${x.code} applied ${x.applied}`).join(', ') || '-'}`,
    `  rollout            ${f.rolloutId ?? '-'}: first pass ${f.firstPass ? `${f.firstPass.state} in ${s1(f.firstPass.seconds)} (${f.firstPass.succeeded} succeeded, ${f.firstPass.failed} failed, ${f.firstPass.cancelled} cancelled)` : '-'}`,
    `  rollout retry      ${f.tenantsNeedingRetry} tenants needed \`rollout retry\` (${f.retryRounds} rounds, ${s1(f.seconds.retry)}); final state ${v?.finalRolloutState ?? '-'}`,
    v
      ? `  attempts           ${v.claims} claims for ${f.tenants} tenants; ${v.tenantsClaimedMoreThanOnce} tenants claimed more than once (max ${v.maxClaims}); rows ${Object.entries(
          v.attemptRows,
        )
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}`
      : '  attempts           -',
    v
      ? `  attempt errors     ${
          Object.entries(v.attemptErrors)
            .map(([k, n]) => `${k} ${n}`)
            .join(', ') || 'none'
        }`
      : '',
    v
      ? `  databases          ${v.tenantsChecked} tenants checked, ${v.trackingRows} tracking rows (${v.appliedByWorkers} by workers, ${v.appliedByCli} by the CLI; ${v.unrecordedApplies} committed by a worker killed before it recorded them)`
      : '',
    `  redis at the end   ${
      Object.entries(f.redisLeft)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || '-'
    }`,
    `  duration           total ${s1(f.seconds.total)} (setup ${s1(f.seconds.setup)}, rollout ${s1(f.seconds.rollout)}, retry ${s1(f.seconds.retry)}, verification ${s1(f.seconds.verify)})${f.timedOut ? ' TIMED OUT' : ''}`,
    `  violations         ${r.violations.length ? r.violations.length : 'none'}`,
    ...r.violations.map((x) => `    - ${x}`),
  ];
  return lines.filter(Boolean).join('\n');
}
