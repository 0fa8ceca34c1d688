import { describe, expect, it } from 'vitest';
import type { MaintenanceWindow } from '../../src/core/tenants.js';
import { delayUntilWindow, isInsideWindow, nextWindowStart, windowEnd } from '../../src/core/windows.js';

const at = (iso: string) => new Date(iso);
const MINUTE = 60_000;

// Sundays 02:00-04:00 UTC.
const sundayNight: MaintenanceWindow = { cron: '0 2 * * SUN', durationMinutes: 120, tz: 'UTC' };

describe('a UTC window', () => {
  it('is open from its start (inclusive) to its end (exclusive)', () => {
    expect(isInsideWindow(sundayNight, at('2024-06-02T01:59:59.999Z'))).toBe(false);
    expect(isInsideWindow(sundayNight, at('2024-06-02T02:00:00.000Z'))).toBe(true);
    expect(isInsideWindow(sundayNight, at('2024-06-02T02:00:00.500Z'))).toBe(true);
    expect(isInsideWindow(sundayNight, at('2024-06-02T03:59:59.999Z'))).toBe(true);
    expect(isInsideWindow(sundayNight, at('2024-06-02T04:00:00.000Z'))).toBe(false);
    expect(isInsideWindow(sundayNight, at('2024-06-05T12:00:00.000Z'))).toBe(false);
  });

  it('inside: next start is now, the delay is 0, and the end is start + duration', () => {
    const now = at('2024-06-02T03:15:00Z');
    expect(nextWindowStart(sundayNight, now)).toEqual(now);
    expect(nextWindowStart(sundayNight, now)).not.toBe(now); // a copy: callers may mutate it
    expect(delayUntilWindow(sundayNight, now)).toBe(0);
    expect(windowEnd(sundayNight, now)).toEqual(at('2024-06-02T04:00:00Z'));
  });

  it('at the exact start second, the window is the one starting now', () => {
    const now = at('2024-06-02T02:00:00Z');
    expect(windowEnd(sundayNight, now)).toEqual(at('2024-06-02T04:00:00Z'));
    expect(delayUntilWindow(sundayNight, now)).toBe(0);
  });

  it('outside: next start is the next occurrence and the delay counts down to it', () => {
    const now = at('2024-06-05T12:00:00Z'); // Wednesday
    expect(nextWindowStart(sundayNight, now)).toEqual(at('2024-06-09T02:00:00Z'));
    expect(delayUntilWindow(sundayNight, now)).toBe(at('2024-06-09T02:00:00Z').getTime() - now.getTime());
    expect(windowEnd(sundayNight, now)).toBeUndefined();
  });

  it('just after a window closes, waits for the following week', () => {
    const now = at('2024-06-02T04:00:00Z');
    expect(nextWindowStart(sundayNight, now)).toEqual(at('2024-06-09T02:00:00Z'));
    expect(delayUntilWindow(sundayNight, at('2024-06-02T01:59:00Z'))).toBe(MINUTE);
  });

  it('with overlapping windows, the most recent start decides the end', () => {
    const everyHalfHour: MaintenanceWindow = { cron: '*/30 * * * *', durationMinutes: 45, tz: 'UTC' };
    const now = at('2024-06-02T10:40:00Z');
    expect(isInsideWindow(everyHalfHour, now)).toBe(true);
    expect(windowEnd(everyHalfHour, now)).toEqual(at('2024-06-02T11:15:00Z'));
  });

  it('handles a window that spans midnight', () => {
    const lateNight: MaintenanceWindow = { cron: '30 23 * * *', durationMinutes: 90, tz: 'UTC' };
    expect(isInsideWindow(lateNight, at('2024-06-03T00:30:00Z'))).toBe(true);
    expect(windowEnd(lateNight, at('2024-06-03T00:30:00Z'))).toEqual(at('2024-06-03T01:00:00Z'));
    expect(isInsideWindow(lateNight, at('2024-06-03T01:00:00Z'))).toBe(false);
  });
});

describe('a Europe/Paris window across daylight-saving changes', () => {
  // Sundays 03:00 Paris time for one hour. Clocks go forward on 2024-03-31 (CET+1 → CEST+2)
  // and back on 2024-10-27, so the same wall-clock time moves by an hour in UTC.
  const paris: MaintenanceWindow = { cron: '0 3 * * SUN', durationMinutes: 60, tz: 'Europe/Paris' };

  it('follows the wall clock when clocks go forward', () => {
    // Before the change: 03:00 CET = 02:00Z.
    expect(nextWindowStart(paris, at('2024-03-20T00:00:00Z'))).toEqual(at('2024-03-24T02:00:00Z'));
    // After: 03:00 CEST = 01:00Z.
    expect(nextWindowStart(paris, at('2024-03-25T00:00:00Z'))).toEqual(at('2024-03-31T01:00:00Z'));
    expect(isInsideWindow(paris, at('2024-03-31T01:30:00Z'))).toBe(true);
    expect(windowEnd(paris, at('2024-03-31T01:30:00Z'))).toEqual(at('2024-03-31T02:00:00Z'));
    // 02:30Z is 04:30 CEST: closed, although it would be 03:30 under last week's offset.
    expect(isInsideWindow(paris, at('2024-03-31T02:30:00Z'))).toBe(false);
    expect(delayUntilWindow(paris, at('2024-03-31T00:30:00Z'))).toBe(30 * MINUTE);
  });

  it('follows the wall clock when clocks go back', () => {
    expect(nextWindowStart(paris, at('2024-10-21T00:00:00Z'))).toEqual(at('2024-10-27T02:00:00Z'));
    // 01:30Z on 2024-10-27 is 02:30 CET: before the window (03:00 CEST would have been 01:00Z).
    expect(isInsideWindow(paris, at('2024-10-27T01:30:00Z'))).toBe(false);
    expect(isInsideWindow(paris, at('2024-10-27T02:30:00Z'))).toBe(true);
    expect(windowEnd(paris, at('2024-10-27T02:30:00Z'))).toEqual(at('2024-10-27T03:00:00Z'));
  });

  it('counts the duration in real minutes when the window spans the change', () => {
    // 01:00 CET = 00:00Z; three real hours later it is 03:00Z (05:00 CEST on the wall clock).
    const spanning: MaintenanceWindow = { cron: '0 1 31 3 *', durationMinutes: 180, tz: 'Europe/Paris' };
    expect(windowEnd(spanning, at('2024-03-31T02:30:00Z'))).toEqual(at('2024-03-31T03:00:00Z'));
    expect(isInsideWindow(spanning, at('2024-03-31T03:00:00Z'))).toBe(false);
  });
});
