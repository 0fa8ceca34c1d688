/** The rollout's dispatch rules (src/core/dispatch.ts), one rule at a time, no database. */
import { describe, expect, it } from 'vitest';
import { assess, choose, windowStillFull, DISPATCH_WINDOW, type Candidate, type DispatchRollout, type TenantGroup } from '../../src/core/dispatch.js';

const NOW = new Date('2024-06-05T12:00:00Z'); // a Wednesday

function rollout(over: Partial<DispatchRollout> = {}, options: Partial<DispatchRollout['options']> = {}): DispatchRollout {
  return {
    state: 'running',
    currentWave: 0,
    waveCount: 1,
    finished: false,
    options: { canary: false, maxFailures: 0, concurrency: null, perServer: null, ...options },
    ...over,
  };
}
const g = (wave: number, state: TenantGroup['state'], n: number, extra: Partial<TenantGroup> = {}): TenantGroup => ({
  wave,
  state,
  n,
  dispatched: false,
  server: 'db-1:5432',
  ...extra,
});
const cand = (id: string, extra: Partial<Candidate> = {}): Candidate => ({ tenantId: id, server: 'db-1:5432', generation: 1, window: null, ...extra });

describe('assess: halting and finishing', () => {
  it('a failed canary halts the rollout, whatever --max-failures says', () => {
    const a = assess(rollout({ waveCount: 2 }, { canary: true, maxFailures: 10 }), [g(0, 'failed', 1), g(1, 'pending', 5)]);
    expect(a).toEqual({ kind: 'halt', reason: 'a canary tenant failed', finishedNow: true });
  });

  it('a failure outside the canary wave counts against --max-failures only', () => {
    const r = rollout({ waveCount: 2, currentWave: 1 }, { canary: true, maxFailures: 1 });
    expect(assess(r, [g(0, 'succeeded', 1), g(1, 'failed', 1), g(1, 'pending', 3)]).kind).toBe('fill');
    expect(assess(r, [g(0, 'succeeded', 1), g(1, 'failed', 2), g(1, 'pending', 3)])).toEqual({
      kind: 'halt',
      reason: '2 tenants failed (--max-failures 1)',
      finishedNow: true,
    });
  });

  it('a halt while tenants still run does not end the rollout yet', () => {
    const a = assess(rollout({}, { maxFailures: 0 }), [g(0, 'failed', 1), g(0, 'running', 2), g(0, 'pending', 2)]);
    expect(a).toEqual({ kind: 'halt', reason: '1 tenants failed (--max-failures 0)', finishedNow: false });
  });

  it('nothing open: succeeded, or failed when a tenant failed within the allowance', () => {
    expect(assess(rollout(), [g(0, 'succeeded', 3)])).toEqual({ kind: 'finish', state: 'succeeded' });
    expect(assess(rollout({}, { maxFailures: 5 }), [g(0, 'succeeded', 3), g(0, 'failed', 1)])).toEqual({ kind: 'finish', state: 'failed' });
  });

  it('a scheduled tenant keeps the rollout open', () => {
    expect(assess(rollout(), [g(0, 'succeeded', 3), g(0, 'scheduled', 1, { dispatched: true })]).kind).toBe('fill');
  });

  it('a halted or cancelled rollout is marked finished once nothing runs, once', () => {
    expect(assess(rollout({ state: 'halted' }), [g(0, 'running', 1)])).toEqual({ kind: 'stopped', markFinished: false });
    expect(assess(rollout({ state: 'cancelled' }), [g(0, 'cancelled', 4)])).toEqual({ kind: 'stopped', markFinished: true });
    expect(assess(rollout({ state: 'halted', finished: true }), [g(0, 'failed', 1)])).toEqual({ kind: 'stopped', markFinished: false });
  });
});

describe('assess: the failure budget', () => {
  it('without a canary, a failure in the first wave counts against --max-failures only', () => {
    const r = rollout({ waveCount: 2 }, { canary: false, maxFailures: 1 });
    expect(assess(r, [g(0, 'failed', 1), g(1, 'pending', 3)])).toMatchObject({ kind: 'fill', wave: 1 });
  });

  it('halting wins over finishing the wave: nothing more is handed out', () => {
    const a = assess(rollout({ waveCount: 2 }, { maxFailures: 0 }), [g(0, 'failed', 1), g(0, 'succeeded', 3), g(1, 'pending', 3)]);
    expect(a.kind).toBe('halt');
  });
});

describe('assess: waves', () => {
  it('stays on a wave while it has open tenants', () => {
    const a = assess(rollout({ waveCount: 3 }), [g(0, 'running', 1, { dispatched: true }), g(1, 'pending', 4), g(2, 'pending', 4)]);
    expect(a).toMatchObject({ kind: 'fill', wave: 0 });
  });

  it('advances past every finished wave, never past the last', () => {
    const r = rollout({ waveCount: 3 });
    expect(assess(r, [g(0, 'succeeded', 1), g(1, 'succeeded', 4), g(2, 'pending', 4)])).toMatchObject({ kind: 'fill', wave: 2 });
    expect(assess(r, [g(0, 'succeeded', 1), g(1, 'pending', 4), g(2, 'pending', 4)])).toMatchObject({ kind: 'fill', wave: 1 });
  });
});

describe('assess: the window', () => {
  it('--concurrency bounds tenants in flight (running, or handed to the queue)', () => {
    const r = rollout({}, { concurrency: 3 });
    expect(assess(r, [g(0, 'running', 2), g(0, 'pending', 1, { dispatched: true }), g(0, 'pending', 5)])).toEqual({
      kind: 'full',
      wave: 0,
      inFlight: 3,
      waiting: 5,
    });
    expect(assess(r, [g(0, 'running', 1), g(0, 'pending', 5)])).toMatchObject({ kind: 'fill', slots: 2, inFlight: 1, waiting: 5 });
  });

  it('without --concurrency the dispatch window is the bound', () => {
    expect(assess(rollout(), [g(0, 'pending', 10)])).toMatchObject({ kind: 'fill', slots: DISPATCH_WINDOW });
  });

  it('a full window still advances the wave', () => {
    const r = rollout({ waveCount: 2 }, { concurrency: 1 });
    expect(assess(r, [g(0, 'succeeded', 1), g(1, 'running', 1), g(1, 'pending', 2)])).toEqual({ kind: 'full', wave: 1, inFlight: 1, waiting: 2 });
  });

  it('reads more candidates than free slots: windows and --per-server skip some', () => {
    expect(assess(rollout({}, { concurrency: 5 }), [g(0, 'pending', 10)])).toMatchObject({ slots: 5, candidateLimit: 205 });
    expect(assess(rollout({}, { concurrency: 5, perServer: 1 }), [g(0, 'pending', 10)])).toMatchObject({ slots: 5, candidateLimit: 1005 });
  });

  it('counts what runs per server for --per-server', () => {
    const a = assess(rollout({}, { perServer: 1 }), [g(0, 'running', 1, { server: 'a:1' }), g(0, 'pending', 3, { server: 'b:1' })]);
    expect(a.kind === 'fill' && [...a.perServer]).toEqual([['a:1', 1]]);
  });
});

describe('choose', () => {
  const fill = (r: DispatchRollout, groups: TenantGroup[]) => {
    const a = assess(r, groups);
    if (a.kind !== 'fill') throw new Error(`expected fill, got ${a.kind}`);
    return a;
  };

  it('takes candidates in order up to the free slots', () => {
    const r = rollout({}, { concurrency: 2 });
    const c = choose(r, fill(r, [g(0, 'pending', 3)]), [cand('a'), cand('b'), cand('c')], NOW);
    expect(c.ready.map((x) => x.tenantId)).toEqual(['a', 'b']);
    expect(c).toMatchObject({ inFlight: 2, waiting: 1, scheduled: [] });
  });

  it('--per-server skips a busy server and fills from the next one', () => {
    const r = rollout({}, { perServer: 1 });
    const groups = [g(0, 'running', 1, { server: 'a:1' }), g(0, 'pending', 3)];
    const c = choose(
      r,
      fill(r, groups),
      [cand('a2', { server: 'a:1' }), cand('b1', { server: 'b:1' }), cand('b2', { server: 'b:1' }), cand('c1', { server: 'c:1' })],
      NOW,
    );
    expect(c.ready.map((x) => x.tenantId)).toEqual(['b1', 'c1']);
  });

  it('a tenant outside its window waits as a delayed job and takes no slot', () => {
    const r = rollout({}, { concurrency: 1 });
    const sunday = { cron: '0 2 * * SUN', durationMinutes: 120, tz: 'UTC' };
    const c = choose(r, fill(r, [g(0, 'pending', 2)]), [cand('late', { window: sunday }), cand('now')], NOW);
    expect(c.ready.map((x) => x.tenantId)).toEqual(['now']);
    expect(c.scheduled).toHaveLength(1);
    expect(c.scheduled[0]!.at).toEqual(new Date('2024-06-09T02:00:00Z'));
    expect(c.scheduled[0]!.delayMs).toBe(new Date('2024-06-09T02:00:00Z').getTime() - NOW.getTime());
    expect(c.waiting).toBe(0);
  });

  it('--per-server counts the tenants handed out by this same dispatch', () => {
    const r = rollout({}, { perServer: 2 });
    const c = choose(r, fill(r, [g(0, 'pending', 4)]), [cand('a1'), cand('a2'), cand('a3'), cand('b1', { server: 'b:1' })], NOW);
    expect(c.ready.map((x) => x.tenantId)).toEqual(['a1', 'a2', 'b1']);
    expect(c).toMatchObject({ inFlight: 3, waiting: 1 });
  });

  it('a tenant outside its window is scheduled even when no slot is left', () => {
    const r = rollout({}, { concurrency: 1 });
    const sunday = { cron: '0 2 * * SUN', durationMinutes: 120, tz: 'UTC' };
    const c = choose(r, fill(r, [g(0, 'pending', 3)]), [cand('now'), cand('next'), cand('late', { window: sunday })], NOW);
    expect(c.ready.map((x) => x.tenantId)).toEqual(['now']);
    expect(c.scheduled.map((x) => x.candidate.tenantId)).toEqual(['late']);
    expect(c.waiting).toBe(1);
  });

  it('lists every job to enqueue in rollout order, delayed ones with their delay', () => {
    const r = rollout();
    const sunday = { cron: '0 2 * * SUN', durationMinutes: 120, tz: 'UTC' };
    const c = choose(r, fill(r, [g(0, 'pending', 3)]), [cand('a'), cand('late', { window: sunday }), cand('b')], NOW);
    expect(c.jobs.map((j) => [j.candidate.tenantId, j.delayMs])).toEqual([
      ['a', 0],
      ['late', new Date('2024-06-09T02:00:00Z').getTime() - NOW.getTime()],
      ['b', 0],
    ]);
  });

  it('a tenant inside its window goes now', () => {
    const r = rollout();
    const wednesdayNoon = { cron: '0 12 * * WED', durationMinutes: 60, tz: 'UTC' };
    const c = choose(r, fill(r, [g(0, 'pending', 1)]), [cand('x', { window: wednesdayNoon })], NOW);
    expect(c.ready.map((x) => x.tenantId)).toEqual(['x']);
  });
});

describe('windowStillFull: a finished tenant may skip the full dispatch', () => {
  const opts = { canary: false, maxFailures: 0, concurrency: 8, perServer: null };
  it('skips while three-quarters of the window is in flight, or nothing waits', () => {
    expect(windowStillFull('running', opts, 7, 10)).toBe(true);
    expect(windowStillFull('running', opts, 6, 10)).toBe(false);
    expect(windowStillFull('running', opts, 1, 0)).toBe(true);
  });
  it('never skips for --per-server, a stopped rollout or an empty window', () => {
    expect(windowStillFull('running', { ...opts, perServer: 1 }, 7, 10)).toBe(false);
    expect(windowStillFull('halted', opts, 7, 10)).toBe(false);
    expect(windowStillFull('running', opts, 0, 10)).toBe(false);
  });
});
