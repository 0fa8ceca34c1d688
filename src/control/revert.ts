/**
 * What `rollout revert` reads of the rollout it reverts: each tenant's frozen
 * target (URL template, schema, window), state and applied files, with the
 * registry's tags (for --canary <tag>).
 */
import type pg from 'pg';
import type { Tenant } from '../core/tenants.js';
import { T } from './schema.js';

export interface RevertTarget {
  tenant: Tenant;
  state: string;
  applied: string[];
}

export async function revertTargets(db: Pick<pg.Pool, 'query'>, rolloutId: string): Promise<RevertTarget[]> {
  const r = await db.query(
    `SELECT rt.tenant_id, rt.database_url, rt.schema, rt.maintenance_window, rt.state, rt.applied, coalesce(t.tags, '{}') AS tags
       FROM ${T('rollout_tenants')} rt LEFT JOIN ${T('tenants')} t ON t.id = rt.tenant_id
      WHERE rt.rollout_id = $1 ORDER BY rt.position`,
    [rolloutId],
  );
  return r.rows.map((x) => ({
    tenant: { id: x.tenant_id, databaseUrl: x.database_url, schema: x.schema ?? undefined, tags: x.tags, window: x.maintenance_window ?? undefined },
    state: x.state,
    applied: x.applied ?? [],
  }));
}
