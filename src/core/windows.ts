/**
 * Maintenance windows: may a tenant be migrated at `now`, and if not, when?
 *
 * Pure: `now` is always a parameter. Occurrences come from cron-parser evaluated in the
 * window's IANA time zone, so "02:00 Europe/Paris" stays 02:00 on the wall clock across
 * daylight-saving changes, while durations are real elapsed minutes. A window is open from an
 * occurrence of its cron expression for `durationMinutes`; when windows overlap, the most
 * recent occurrence decides.
 */
import { cronOccurrences } from './cron.js';
import type { MaintenanceWindow } from './tenants.js';

const MINUTE_MS = 60_000;
const SECOND_MS = 1_000;

function occurrencesAround(w: MaintenanceWindow, at: Date) {
  return cronOccurrences(w.cron, at, w.tz);
}

/** Most recent occurrence at or before `now`. */
function latestStart(w: MaintenanceWindow, now: Date): Date {
  // cron-parser's prev() skips an occurrence in the current second, so a window starting
  // exactly at `now` would be missed: probe that second with next() from just before it.
  const second = Math.floor(now.getTime() / SECOND_MS) * SECOND_MS;
  const atThisSecond = occurrencesAround(w, new Date(second - 1))
    .next()
    .toDate();
  if (atThisSecond.getTime() === second) return atThisSecond;
  return occurrencesAround(w, now).prev().toDate();
}

/** Start of the window `now` is in, if any. */
function currentStart(w: MaintenanceWindow, now: Date): Date | undefined {
  const start = latestStart(w, now);
  return now.getTime() - start.getTime() < w.durationMinutes * MINUTE_MS ? start : undefined;
}

/** True if the latest occurrence at or before `now` began less than `durationMinutes` ago. */
export function isInsideWindow(w: MaintenanceWindow, now: Date): boolean {
  return currentStart(w, now) !== undefined;
}

/** `now` when inside a window (a copy), otherwise the next occurrence. */
export function nextWindowStart(w: MaintenanceWindow, now: Date): Date {
  if (isInsideWindow(w, now)) return new Date(now.getTime());
  return occurrencesAround(w, now).next().toDate();
}

/** End of the window `now` is in; undefined when outside. */
export function windowEnd(w: MaintenanceWindow, now: Date): Date | undefined {
  const start = currentStart(w, now);
  return start === undefined ? undefined : new Date(start.getTime() + w.durationMinutes * MINUTE_MS);
}

/** Milliseconds until the next window opens; 0 when inside one. */
export function delayUntilWindow(w: MaintenanceWindow, now: Date): number {
  return Math.max(0, nextWindowStart(w, now).getTime() - now.getTime());
}
