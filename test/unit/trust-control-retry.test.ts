/**
 * The control database's retry rule (src/control/pool.ts) and the applied-by
 * reading (src/core/rollout-applied.ts), without a database: which failures
 * are waited out, that an outage is announced once each way, and that a call
 * gives up after its budget with a transient error (exit 3).
 */
import { describe, expect, it } from 'vitest';
import { ControlRetrier, ControlUnavailableError, isControlTransient } from '../../src/control/pool.js';
import { appliedByRollout, rolloutAppliedBy, rolloutOfAppliedBy } from '../../src/core/rollout-applied.js';
import { EXIT_CODES } from '../../src/core/errors.js';

const err = (code: string, message = code) => Object.assign(new Error(message), { code });
const notAccepting = err('55000', 'database "ctl" is not currently accepting connections');
const refused = err('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432');

describe('control database retry', () => {
  it('waits out "not now" always, network errors once the database was reached, never bad input', () => {
    for (const e of [notAccepting, err('57P01'), err('57P03'), err('53300')]) expect(isControlTransient(e, false), e.message).toBe(true);
    expect(isControlTransient(refused, false)).toBe(false); // a wrong port fails at once
    expect(isControlTransient(refused, true)).toBe(true);
    expect(isControlTransient(new Error('Connection terminated unexpectedly'), true)).toBe(true);
    for (const e of [err('28P01'), err('3D000'), err('42601'), err('23505'), err('55000', 'other prerequisite')])
      expect(isControlTransient(e, true), e.code).toBe(false);
  });

  it('an outage is announced once and its end once, however many calls wait on it', async () => {
    const notices: string[] = [];
    const r = new ControlRetrier('postgres://u@127.0.0.1:5432/ctl', {
      retryForMs: 5000,
      baseDelayMs: 5,
      maxDelayMs: 20,
      down: (reason) => notices.push(`down ${reason}`),
      up: () => notices.push('up'),
    });
    await r.run(async () => 1);
    let failures = 6;
    const flaky = async () => {
      if (failures-- > 0) throw refused;
      return 'ok';
    };
    expect(await Promise.all([r.run(flaky), r.run(flaky), r.run(async () => 'x')])).toEqual(['ok', 'ok', 'x']);
    expect(notices.filter((n) => n.startsWith('down'))).toHaveLength(1);
    expect(notices[0]).toMatch(/ECONNREFUSED/);
    expect(notices.filter((n) => n === 'up')).toHaveLength(1);
  });

  it('gives up after its budget with a transient error naming the database, and never retries what is not transient', async () => {
    const r = new ControlRetrier('postgres://u:secret@db.example:5432/ctl', { retryForMs: 100, baseDelayMs: 10 });
    const started = Date.now();
    const e = await r.run(async () => Promise.reject(notAccepting)).catch((x) => x);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(e).toBeInstanceOf(ControlUnavailableError);
    expect(EXIT_CODES[(e as ControlUnavailableError).kind]).toBe(3);
    expect((e as Error).message).toMatch(/db\.example:5432.*not currently accepting connections.*still failing/);
    expect((e as Error).message).not.toContain('secret');
    let calls = 0;
    const bad = await r
      .run(async () => {
        calls++;
        throw err('42601', 'syntax error');
      })
      .catch((x) => x);
    expect(calls).toBe(1);
    expect((bad as Error).message).toBe('syntax error');
    // an error that already used up a budget is not retried again by an outer call
    let outer = 0;
    await r
      .run(async () => {
        outer++;
        throw e;
      })
      .catch(() => {});
    expect(outer).toBe(1);
  });
});

describe('applied by a rollout, from the tracking table', () => {
  it('reads the rollout out of applied_by; other runners and rollouts are not ours; the set order is kept', () => {
    expect(rolloutAppliedBy('host-1-ab', 'r1')).toBe('worker host-1-ab (rollout r1)');
    expect(rolloutOfAppliedBy('worker host-1-ab (rollout r1)')).toBe('r1');
    expect(rolloutOfAppliedBy('worker host-1-ab')).toBeUndefined();
    expect(rolloutOfAppliedBy('cli me@host')).toBeUndefined();
    const rows = [
      { name: '003_c.sql', appliedBy: 'worker w2 (rollout r1)' },
      { name: '001_a.sql', appliedBy: 'worker w1 (rollout r1)' },
      { name: '002_b.sql', appliedBy: 'cli me@host' },
      { name: '004_d.sql', appliedBy: 'worker w1 (rollout r2)' },
      { name: '000_old.sql', appliedBy: 'worker w1 (rollout r1)' },
    ];
    expect(appliedByRollout(['001_a.sql', '002_b.sql', '003_c.sql', '004_d.sql'], rows, 'r1')).toEqual(['001_a.sql', '003_c.sql']);
  });
});
