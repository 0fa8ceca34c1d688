/**
 * Reads a migrations directory into plain {name, sql} pairs, one per entry
 * named like a migration (`*.sql`, not hidden; the core then checks the
 * names). Other files and sub-folders are ignored and never read (a data file
 * beside the migrations may be large). What is named like a migration must be
 * a file we can read: a symlink is followed; a directory, a dangling symlink
 * or a FIFO is refused by name, never skipped while the run reports success.
 * Bytes are decoded strictly here (core/file-bytes.ts), and every problem of
 * every file is reported at once.
 */
import type { Dirent } from 'node:fs';
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidEncodingError, MigrationTooLargeError, MigrationsDirError, NotAMigrationFileError } from '../core/errors.js';
import { decodeMigrationBytes, MAX_MIGRATION_BYTES, type EncodingProblem } from '../core/file-bytes.js';
import { isMigrationCandidate } from '../core/filename.js';
import { buildMigrationSet, type MigrationFile, type MigrationSet, type ParseTrees } from '../core/migration-set.js';

export async function readMigrationFiles(dir: string): Promise<MigrationFile[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e: any) {
    const reason = e?.code === 'ENOENT' ? 'no such directory' : e?.code === 'ENOTDIR' ? 'not a directory' : String(e?.message ?? e);
    throw new MigrationsDirError(dir, reason);
  }
  const names = entries
    .filter((e) => isMigrationCandidate(e.name))
    .map((e) => e.name)
    .sort();
  const notFiles: { file: string; what: string }[] = [];
  const problems: EncodingProblem[] = [];
  const files: MigrationFile[] = [];
  for (const name of names) {
    const path = join(dir, name);
    let size: number;
    try {
      const s = await stat(path); // follows symlinks
      if (!s.isFile()) {
        notFiles.push({ file: name, what: s.isDirectory() ? 'a directory' : 'not a regular file' });
        continue;
      }
      size = s.size;
    } catch (e: any) {
      notFiles.push({ file: name, what: e?.code === 'ENOENT' ? await missing(path) : `cannot stat: ${e?.code ?? e?.message ?? e}` });
      continue;
    }
    if (size > MAX_MIGRATION_BYTES) throw new MigrationTooLargeError(name, size, MAX_MIGRATION_BYTES);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (e: any) {
      notFiles.push({ file: name, what: `cannot read: ${e?.code ?? e?.message ?? e}` });
      continue;
    }
    const decoded = decodeMigrationBytes(name, bytes);
    if ('problem' in decoded) problems.push(decoded.problem);
    else files.push({ name, sql: decoded.sql });
  }
  if (notFiles.length) throw new NotAMigrationFileError(notFiles);
  if (problems.length) throw new InvalidEncodingError(problems);
  return files;
}

/**
 * Listed but not found: a symlink to nothing, or a name whose bytes are not
 * UTF-8 (Node lists it with U+FFFD, a name nothing on disk has).
 */
async function missing(path: string): Promise<string> {
  try {
    await lstat(path);
    return 'a symlink to nothing';
  } catch {
    return 'its name is not valid UTF-8: rename the file';
  }
}

export async function loadMigrationDir(dir: string, trees?: ParseTrees): Promise<MigrationSet> {
  return buildMigrationSet(await readMigrationFiles(dir), trees);
}
