/** The --max-lock-wait rule (core/dispatch.ts): a wave's 95th percentile of lock waits, no database. */
import { describe, expect, it } from 'vitest';
import { assess, formatMs, lockWaitP95Over, type DispatchRollout, type TenantGroup } from '../../src/core/dispatch.js';
import { countsToGroups } from '../../src/control/dispatch.js';

function rollout(options: Partial<DispatchRollout['options']> = {}, over: Partial<DispatchRollout> = {}): DispatchRollout {
  return {
    state: 'running',
    currentWave: 0,
    waveCount: 2,
    finished: false,
    options: { canary: false, maxFailures: 0, concurrency: null, perServer: null, ...options },
    ...over,
  };
}
const g = (wave: number, state: TenantGroup['state'], n: number): TenantGroup => ({ wave, state, n, dispatched: state === 'running', server: '' });

/** The nearest-rank 95th percentile of `waits`, the way Postgres' percentile_disc(0.95) picks it. */
function p95(waits: number[]): number {
  const sorted = [...waits].sort((a, b) => a - b);
  return sorted[Math.ceil(0.95 * sorted.length) - 1]!;
}

describe('lockWaitP95Over', () => {
  it('agrees with the nearest-rank percentile of every split of n tenants into fast and slow, n = 1..200', () => {
    for (let n = 1; n <= 200; n++) {
      for (let over = 0; over <= n; over++) {
        const waits = [...Array(n - over).fill(10), ...Array(over).fill(5000)];
        expect(lockWaitP95Over(n, over), `${over} of ${n}`).toBe(p95(waits) > 1000);
      }
    }
  });

  it('is certain before the wave ends: the slow tenants decide it whatever the others will wait', () => {
    expect(lockWaitP95Over(20, 1)).toBe(false);
    expect(lockWaitP95Over(20, 2)).toBe(true);
    expect(lockWaitP95Over(100, 5)).toBe(false);
    expect(lockWaitP95Over(100, 6)).toBe(true);
    expect(lockWaitP95Over(1, 1)).toBe(true);
    expect(lockWaitP95Over(0, 0)).toBe(false);
  });
});

describe('assess with --max-lock-wait', () => {
  const limit = { maxLockWaitMs: 2000 };
  it('halts on the wave whose percentile is over the limit, and says which', () => {
    const groups = [g(0, 'succeeded', 18), g(0, 'running', 2), g(1, 'pending', 20)];
    expect(assess(rollout(limit), groups, new Map([[0, 2]]))).toEqual({
      kind: 'halt',
      reason: 'wave 1: the 95th percentile of lock waits is over 2 s (2 of 20 tenants waited longer; --max-lock-wait)',
      finishedNow: false,
    });
    expect(assess(rollout(limit), groups, new Map([[0, 1]])).kind).toBe('fill');
  });

  it('leaves cancelled tenants out of the wave, and does nothing without a limit', () => {
    // 21 tenants of which one cancelled: 20 measured-or-to-measure, 2 slow is over
    const groups = [g(0, 'succeeded', 19), g(0, 'cancelled', 1), g(0, 'running', 1), g(1, 'pending', 5)];
    expect(assess(rollout(limit), groups, new Map([[0, 2]])).kind).toBe('halt');
    expect(assess(rollout(), groups, new Map([[0, 20]])).kind).toBe('fill');
  });

  it('a finished rollout finishes, a halted one stays stopped', () => {
    expect(assess(rollout(limit, { waveCount: 1 }), [g(0, 'succeeded', 3)], new Map([[0, 3]]))).toEqual({ kind: 'finish', state: 'succeeded' });
    expect(assess(rollout(limit, { state: 'halted' }), [g(0, 'running', 1)], new Map([[0, 3]])).kind).toBe('stopped');
  });
});

describe('countsToGroups', () => {
  it('the counters as the groups the rules read; in flight left out when read by server', () => {
    const w = { wave: 1, waiting: 3, queued: 2, scheduled: 1, running: 4, succeeded: 5, failed: 0, cancelled: 1, lock_slow: 0, released: 9 };
    expect(countsToGroups([w], true)).toEqual([
      { wave: 1, state: 'pending', dispatched: false, server: '', n: 3 },
      { wave: 1, state: 'scheduled', dispatched: true, server: '', n: 1 },
      { wave: 1, state: 'succeeded', dispatched: false, server: '', n: 5 },
      { wave: 1, state: 'cancelled', dispatched: false, server: '', n: 1 },
      { wave: 1, state: 'pending', dispatched: true, server: '', n: 2 },
      { wave: 1, state: 'running', dispatched: false, server: '', n: 4 },
    ]);
    expect(countsToGroups([w], false).some((x) => x.state === 'running' || (x.state === 'pending' && x.dispatched))).toBe(false);
  });
});

describe('formatMs', () => {
  it('reads as a person would write it', () => {
    expect([formatMs(750), formatMs(2000), formatMs(1500), formatMs(90_000)]).toEqual(['750 ms', '2 s', '1.5 s', '1.5 min']);
  });
});
