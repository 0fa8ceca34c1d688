/**
 * `flotilla schedule` rows in the control database: a cron, its time zone, a
 * frozen migration set and a tenant selection. The control database is their
 * truth; Redis only holds the job schedulers that fire them
 * (producer/schedule.ts restores those from here).
 */
import type { Queryable } from '../adapters/pg/connection.js';
import type { RolloutOptions } from '../core/rollout-plan.js';
import type { TenantSelection } from '../core/tenants.js';
import { T } from './schema.js';

export interface Schedule {
  name: string;
  cron: string;
  tz: string;
  setChecksum: string;
  selection: TenantSelection;
  options: RolloutOptions;
}

export type ScheduleSummary = Pick<Schedule, 'name' | 'cron' | 'tz' | 'setChecksum'>;

/** Create or replace a schedule (its set must already be saved: migration_sets is referenced). */
export async function saveSchedule(db: Queryable, s: Omit<Schedule, 'selection'> & { selection: unknown }): Promise<void> {
  await db.query(
    `INSERT INTO ${T('schedules')} (name, cron, tz, set_checksum, selection, options) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (name) DO UPDATE SET cron = EXCLUDED.cron, tz = EXCLUDED.tz, set_checksum = EXCLUDED.set_checksum, selection = EXCLUDED.selection, options = EXCLUDED.options`,
    [s.name, s.cron, s.tz, s.setChecksum, JSON.stringify(s.selection), JSON.stringify(s.options)],
  );
}

export async function getSchedule(db: Queryable, name: string): Promise<Schedule | undefined> {
  const r = await db.query(`SELECT * FROM ${T('schedules')} WHERE name = $1`, [name]);
  const x = r.rows[0];
  return x ? { name: x.name, cron: x.cron, tz: x.tz, setChecksum: x.set_checksum, selection: x.selection, options: x.options } : undefined;
}

export async function listSchedules(db: Queryable): Promise<ScheduleSummary[]> {
  const r = await db.query(`SELECT name, cron, tz, set_checksum FROM ${T('schedules')} ORDER BY name`);
  return r.rows.map((x) => ({ name: x.name, cron: x.cron, tz: x.tz, setChecksum: x.set_checksum }));
}

/** False when there was no such schedule. */
export async function deleteSchedule(db: Queryable, name: string): Promise<boolean> {
  const r = await db.query(`DELETE FROM ${T('schedules')} WHERE name = $1`, [name]);
  return (r.rowCount ?? 0) > 0;
}
