/**
 * The chaos run in a small configuration (npm run chaos runs the big one):
 * 10 tenants (2 of them schemas), 2 worker processes, one worker SIGKILLed,
 * one Redis restart, one FLUSHALL + `rollout resume`, one tenant refusing
 * connections, the control database refusing connections for 8 s, one tenant holding a lock the migrations need, two
 * `flotilla pending` runs beside the workers. The verdict comes from the
 * databases themselves (bench/chaos/verify.ts): zero violations.
 * Own database prefix and own redis-server on a free port: safe beside the other files.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { runChaos } from '../../bench/chaos/run.js';
import { formatChaosReport } from '../../bench/chaos/run.js';
import { CLI } from '../helpers/cli.js';
import { adminUrl } from '../helpers/db.js';

describe('chaos run (CI configuration)', () => {
  it('10 tenants through a kill, a Redis restart, a flush + resume, a refusal window, a control-database outage and a lock hold: zero violations', async () => {
    const lines: string[] = [];
    const report = await runChaos({
      adminUrl: adminUrl(),
      prefix: `flotilla_chaosci${randomBytes(3).toString('hex')}`,
      cli: CLI,
      tenants: 10,
      schemaTenants: 2,
      workers: 2,
      concurrency: 2,
      killEveryMs: 3000,
      maxKills: 1,
      redisRestarts: 1,
      flushes: 1,
      refusalWindowsMs: [5000],
      controlOutages: 1,
      controlOutageMs: 8000,
      lockHolds: 1,
      lockHoldMs: 5000,
      cliRunners: 2,
      timeoutMs: 130_000,
      log: (line) => lines.push(line),
    });
    const text = `${lines.join('\n')}\n\n${formatChaosReport(report)}`;
    console.log(text);
    expect(report.violations, text).toEqual([]);
    const f = report.figures;
    // the chaos did happen, during the rollout
    expect(f.kills, text).toBe(1);
    expect(f.redisRestarts, text).toHaveLength(1);
    expect(f.flushes, text).toHaveLength(1);
    expect(
      f.flushes[0]!.resumes.map((r) => r.code),
      text,
    ).toEqual([0, 0]);
    expect(f.refusals, text).toHaveLength(1);
    expect(f.controlOutages, text).toHaveLength(1);
    expect(f.waitOutageNotices, text).toBe(1);
    expect(f.lockHolds, text).toHaveLength(1);
    expect(f.lockHolds[0]!.lockTimeouts, text).toBeGreaterThanOrEqual(1);
    expect(
      f.cliRuns.map((r) => r.code),
      text,
    ).toEqual([0, 0]);
    // and every tenant ended at the final version, checked from the databases
    expect(f.verify?.tenantsChecked, text).toBe(10);
    expect(f.verify?.trackingRows, text).toBe(10 * f.migrations);
    expect(f.verify?.finalRolloutState, text).toBe('succeeded');
  }, 180_000);
});
