/**
 * Reads a migrations directory into plain {name, sql} pairs (the core decides
 * what is a migration). Sub-folders and hidden files are ignored.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MigrationsDirError } from '../core/errors.js';
import { buildMigrationSet, type MigrationFile, type MigrationSet } from '../core/migration-set.js';

export async function readMigrationFiles(dir: string): Promise<MigrationFile[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e: any) {
    const reason = e?.code === 'ENOENT' ? 'no such directory' : e?.code === 'ENOTDIR' ? 'not a directory' : String(e?.message ?? e);
    throw new MigrationsDirError(dir, reason);
  }
  const files = entries.filter((e) => e.isFile() && !e.name.startsWith('.')).map((e) => e.name).sort();
  return Promise.all(files.map(async (name) => ({ name, sql: await readFile(join(dir, name), 'utf8') })));
}

export async function loadMigrationDir(dir: string): Promise<MigrationSet> {
  return buildMigrationSet(await readMigrationFiles(dir));
}
