/**
 * Cron expressions and time zones: the one place that reads them. A maintenance window's cron
 * (tenants file) and a schedule's (`flotilla schedule`) obey the same rules, checked here once;
 * windows.ts computes occurrences through `cronOccurrences`. Pure: the reference date is fixed.
 */
import { CronExpressionParser } from 'cron-parser';
import { quoteInput as quote } from './redact.js';

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** The occurrences of `expr` in `tz` around `at` (cron-parser's iterator). */
export function cronOccurrences(expr: string, at: Date, tz: string) {
  return CronExpressionParser.parse(expr, { currentDate: at, tz });
}

// cron-parser's "H" picks a random minute unless seeded: each worker would see a different window.
const HASHED_FIELD = /(^|[\s,/(])H($|[\s,/(])/;

/** What is wrong with a cron expression evaluated in `tz` (a valid zone), or undefined. */
export function cronProblem(expr: string, tz = 'UTC'): string | undefined {
  if (expr.trim() === '') return 'cron expression is empty';
  if (HASHED_FIELD.test(expr)) return `cron expression ${quote(expr)} uses "H", which is random per process; write the minute and hour`;
  try {
    // A fixed reference date keeps this pure; next() also catches expressions that never fire.
    cronOccurrences(expr, new Date(0), tz).next();
    return undefined;
  } catch (err) {
    return `invalid cron expression ${quote(expr)}${tz === 'UTC' ? '' : ` in ${quote(tz)}`}: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/**
 * Problems of a schedule's cron expression and time zone (the same rules as a maintenance
 * window's, evaluated in that zone), so `flotilla schedule` refuses them before saving anything.
 */
export function scheduleProblems(cron: unknown, tz: unknown): string[] {
  const problems: string[] = [];
  const zoneOk = typeof tz === 'string' && tz.trim() !== '' && isTimeZone(tz);
  if (!zoneOk) problems.push(`--tz: unknown time zone ${quote(tz ?? '')}; use an IANA name such as Europe/Paris or UTC`);
  if (typeof cron !== 'string' || cron.trim() === '') problems.push('--cron: required, e.g. "0 2 * * SUN"');
  else {
    const p = cronProblem(cron, zoneOk ? (tz as string) : 'UTC');
    if (p) problems.push(`--cron: ${p}`);
  }
  return problems;
}
