/**
 * Issue 9, section "Targets and selectors": control migration
 * 004_frozen_targets.sql on a control database that already holds rollouts
 * (created before targets were frozen): their tenants get the registry's
 * target of that time, and from then on claim() reads the frozen target,
 * whatever the registry says.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { Migrator } from '../../src/migrator.js';
import { trustedMigrationSet } from '../../src/core/migration-set.js';
import { CONTROL_MIGRATIONS, CONTROL_SCHEMA, CONTROL_TRACKING_TABLE } from '../../src/control/schema.js';
import { ControlStore } from '../../src/control/store.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('ctl');
});

afterAll(async () => {
  await db?.drop();
});

describe('control migration 004_frozen_targets', () => {
  it('backfills the targets of existing rollouts from the registry; claim then ignores later registry changes', async () => {
    const before = CONTROL_MIGRATIONS.filter((m) => m.name < '004');
    const c = await db.client();
    try {
      const report = await new Migrator(c, { schema: CONTROL_SCHEMA, trackingTable: CONTROL_TRACKING_TABLE, validate: false, appliedBy: 'test' }).migrate(
        trustedMigrationSet(before),
      );
      expect(report.failed).toBeUndefined();
      await c.query(`
        INSERT INTO flotilla.tenants (id, database_url, schema, tags, maintenance_window)
          VALUES ('old-a', 'postgres://app:\${A_PW}@prod/a', 'tenant_a', '{}', '{"cron":"0 2 * * *","durationMinutes":60,"tz":"UTC"}'),
                 ('old-b', 'postgres://prod/b', NULL, '{}', NULL);
        INSERT INTO flotilla.migration_sets (checksum, files) VALUES ('abc', '[]');
        INSERT INTO flotilla.rollouts (id, set_checksum, state, options, wave_count) VALUES ('r-old', 'abc', 'running', '{"dryRun":false}', 1);
        INSERT INTO flotilla.rollout_tenants (rollout_id, tenant_id, position, wave, server) VALUES ('r-old', 'old-a', 0, 0, 'prod:5432'), ('r-old', 'old-b', 1, 0, 'prod:5432');
      `);
    } finally {
      await c.end();
    }
    const store = new ControlStore(db.url);
    try {
      await store.migrate();
      const rows = (await db.query(`SELECT tenant_id, database_url, schema, maintenance_window FROM flotilla.rollout_tenants ORDER BY position`)).rows;
      expect(rows).toEqual([
        {
          tenant_id: 'old-a',
          database_url: 'postgres://app:${A_PW}@prod/a',
          schema: 'tenant_a',
          maintenance_window: { cron: '0 2 * * *', durationMinutes: 60, tz: 'UTC' },
        },
        { tenant_id: 'old-b', database_url: 'postgres://prod/b', schema: null, maintenance_window: null },
      ]);
      // a later rollout (or tenants file) re-registers the tenant elsewhere
      await store.upsertTenants([{ id: 'old-b', databaseUrl: 'postgres://staging/b', schema: 'x', tags: [] }]);
      const claim = await store.claim('r-old', 'old-b', 0, 'w');
      expect(claim?.tenant).toMatchObject({ id: 'old-b', databaseUrl: 'postgres://prod/b', schema: undefined });
      const targets = await store.frozenTargets('r-old');
      expect(targets.find((t) => t.tenantId === 'old-b')).toEqual({
        tenantId: 'old-b',
        frozen: { databaseUrl: 'postgres://prod/b', schema: undefined },
        registry: { databaseUrl: 'postgres://staging/b', schema: 'x' },
      });
    } finally {
      await store.close();
    }
  });
});
