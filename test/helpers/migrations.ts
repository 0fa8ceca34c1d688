/** Temporary migration directories written from a {name: sql} map. */
import { mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function migrationDir(files: Record<string, string>): {
  dir: string;
  write(name: string, sql: string): void;
  remove(name: string): void;
  cleanup(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-mig-'));
  mkdirSync(dir, { recursive: true });
  for (const [name, sql] of Object.entries(files)) writeFileSync(join(dir, name), sql);
  return {
    dir,
    write: (name, sql) => writeFileSync(join(dir, name), sql),
    remove: (name) => rmSync(join(dir, name)),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The repo's 8 guide migrations, by file name. */
export const GUIDE_MIGRATIONS = [
  '001_create_users_table.sql',
  '002_create_contracts_table.sql',
  '003_create_audit_log_table.sql',
  '004_create_invoices_table.sql',
  '005_create_products_table.sql',
  '006_add_products_status.sql',
  '007_create_user_roles_table.sql',
  '008_add_users_notification_preference.sql',
];
