/**
 * Phase 2 of a chaos run: the rollout itself (`flotilla rollout --wait` as a
 * user runs it) with the chaos events around it (events.ts), then what its
 * first pass ended with. Chaos that did not happen while the rollout ran is a
 * violation: such a run proves nothing.
 */
import { sleep, type ChaosRun } from './context.js';
import { RolloutWatch, chaosTick, holdLocks } from './events.js';
import type { ChaosSetup } from './setup.js';

export interface FirstPass {
  watch: RolloutWatch;
  /** tenant counts by state, as `rollout --wait` printed them */
  counts: Record<string, number>;
}

/** Returns undefined when the run was stopped meanwhile. */
export async function driveRollout(run: ChaosRun, setup: ChaosSetup): Promise<FirstPass | undefined> {
  const { o, figures, dir, env } = run;
  let onRolloutStarted: (id: string) => void = () => {};
  const rolloutStartedAt = new Promise<string>((resolve) => (onRolloutStarted = resolve));
  await holdLocks(run, setup, rolloutStartedAt);

  const rolloutStarted = performance.now();
  const producer = run.runCli(
    ['rollout', '--dir', dir, '--tenants', setup.tenantsFile, '--all', '--max-failures', '100%', '--lock-timeout', o.lockTimeout, '--wait', '--json'],
    env,
    o.timeoutMs,
  );
  const producerState = { done: false };
  void producer.then(() => (producerState.done = true));
  let rolloutId: string | undefined;
  while (!rolloutId && !producerState.done && !run.aborted) {
    rolloutId = (await setup.control.query(`SELECT id FROM flotilla.rollouts ORDER BY created_at DESC LIMIT 1`).catch(() => ({ rows: [] as { id: string }[] })))
      .rows[0]?.id;
    if (!rolloutId) await sleep(100, run.stop.signal);
  }
  if (!rolloutId) {
    const p = await producer;
    throw new Error(`the rollout was not created: exit ${p.code}: ${p.stderr.slice(-1000)}`);
  }
  figures.rolloutId = rolloutId;
  onRolloutStarted(rolloutId);
  run.log(`rollout ${rolloutId} started`);

  const watch = new RolloutWatch(run, setup, rolloutId, producerState);
  while (!producerState.done && !run.aborted) {
    await chaosTick(watch);
    await sleep(250, run.stop.signal);
  }
  if (run.aborted) return undefined;
  const first = await producer;
  figures.seconds.rollout = (performance.now() - rolloutStarted) / 1000;
  // `rollout --wait` rode the outages out, saying so once each
  figures.waitOutageNotices = (first.stderr.match(/control database unreachable/g) ?? []).length;
  if (figures.controlOutages.length && figures.waitOutageNotices === 0)
    run.violations.push(`control: rollout --wait never said the control database was unreachable: ${first.stderr.slice(-600)}`);
  if (figures.waitOutageNotices > figures.controlOutages.length)
    run.violations.push(
      `control: rollout --wait said ${figures.waitOutageNotices} times that the control database was unreachable (${figures.controlOutages.length} outages)`,
    );
  let view: { state: string; counts: Record<string, number> } | undefined;
  try {
    view = JSON.parse(first.stdout);
  } catch {
    throw new Error(`flotilla rollout --wait: exit ${first.code}, no JSON: ${first.stdout.slice(-500)} ${first.stderr.slice(-1000)}`);
  }
  figures.firstPass = {
    state: view!.state,
    succeeded: view!.counts.succeeded ?? 0,
    failed: view!.counts.failed ?? 0,
    cancelled: view!.counts.cancelled ?? 0,
    seconds: Math.round(figures.seconds.rollout * 10) / 10,
  };
  run.log(
    `rollout --wait returned (exit ${first.code}): ${view!.state}, ${figures.firstPass.succeeded} succeeded, ${figures.firstPass.failed} failed, ${figures.firstPass.cancelled} cancelled`,
  );

  // chaos that did not happen while the rollout ran is a run that proves nothing
  const missed = [
    watch.refusalsFired < o.refusalWindowsMs.length ? `${o.refusalWindowsMs.length - watch.refusalsFired} refusal windows` : '',
    watch.outagesFired < o.controlOutages ? `${o.controlOutages - watch.outagesFired} control-database outages` : '',
    watch.restartsFired < o.redisRestarts ? 'the Redis restart' : '',
    watch.flushesFired < o.flushes ? 'the FLUSHALL' : '',
    o.cliRunners > 0 && !watch.cliFired ? 'the concurrent CLI runs' : '',
    o.killEveryMs > 0 && o.maxKills > 0 && figures.kills === 0 ? 'the worker kills' : '',
  ].filter(Boolean);
  if (missed.length) run.violations.push(`chaos: ${missed.join(', ')} did not happen during the rollout (it finished first)`);

  // wait for the windows to close, the CLI runs and resumes to finish
  await Promise.all(run.tasks);
  if (run.aborted) return undefined;
  return { watch, counts: view!.counts };
}
