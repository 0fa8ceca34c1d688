/** Temporary migration directories written from a {name: sql} map. */
import { mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function migrationDir(files: Record<string, string>): { dir: string; write(name: string, sql: string): void; remove(name: string): void; cleanup(): void } {
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
