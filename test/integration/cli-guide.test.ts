import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, dropAllTestDatabases } from '../helpers/db.js';
import { runCli } from '../helpers/cli.js';

afterAll(dropAllTestDatabases);

describe("the guide's commands on the guide's examples", () => {
  it('status, pending, status again, already-applied: line for line', async () => {
    const db = await createTestDatabase('guide');
    const env = { DATABASE_URL: db.url };
    const before = await runCli(['status'], { env });
    expect(before.code).toBe(0);
    expect(before.stdout).toContain('Migration Status\n================\n\nApplied:\n');
    expect(before.stdout).toContain('  ○ 001_create_users_table.sql\n');
    expect(before.stdout).toContain('Total: 0 applied, 8 pending');

    const run = await runCli(['pending'], { env });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(
      run.stdout.startsWith(
        'Found 8 pending migrations\n\n→ Running migration: 001_create_users_table.sql\n✓ Migration completed: 001_create_users_table.sql\n',
      ),
    ).toBe(true);
    expect(run.stdout.trimEnd().endsWith('✓ Completed: 8 applied, 0 failed')).toBe(true);

    const after = await runCli(['status'], { env });
    expect(after.stdout).toContain('  ✓ 008_add_users_notification_preference.sql\n');
    expect(after.stdout).toContain('Total: 8 applied, 0 pending');

    const again = await runCli(['run', '001_create_users_table.sql'], { env });
    expect(again.code).toBe(0);
    expect(again.stdout.trim()).toBe('⊘ Migration already applied: 001_create_users_table.sql');

    const rows = await db.query('SELECT name, checksum, duration_ms, applied_by FROM migrations ORDER BY name');
    expect(rows.rowCount).toBe(8);
    expect(rows.rows[0].checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(rows.rows[0].applied_by).toMatch(/^cli /);
  });
});
