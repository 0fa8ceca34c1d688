/**
 * `flotilla new <description>`: the next NNN_description.sql in the migrations
 * directory, from a short template in the guide's style. The name is worked
 * out from the files already there (pure: nextMigrationName); a bad
 * description or a clash is refused (exit 2) and nothing is written; an
 * existing file is never overwritten, even by a race.
 */
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BadArgumentError, MigrationsDirError } from '../../core/errors.js';
import { isMigrationCandidate, parseFileName } from '../../core/filename.js';
import type { CommandContext } from './single.js';

const MAX_DESCRIPTION = 100;

/** The file name `new` would create, or the reason it refuses (thrown as BadArgumentError). */
export function nextMigrationName(description: string, existing: readonly string[]): { name: string; version: bigint; description: string } {
  const d = normalizeDescription(description);
  const parsed = existing.filter(isMigrationCandidate).flatMap((f) => parseFileName(f) ?? []);
  const same = parsed.find((p) => p.description.toLowerCase() === d.toLowerCase());
  if (same) {
    throw new BadArgumentError(
      'description',
      `a migration named "${d}" already exists: ${same.name}`,
      'Choose another description (two files doing one thing are hard to tell apart), or edit that file if it has not been applied anywhere yet.',
    );
  }
  const last = parsed.reduce<{ version: bigint; digits: string } | undefined>((best, p) => {
    const digits = /^\d+/.exec(p.name)![0];
    return !best || p.version > best.version ? { version: p.version, digits } : best;
  }, undefined);
  const version = (last?.version ?? 0n) + 1n;
  // keep the directory's zero padding (at least 3 digits, like 001_)
  const width = Math.max(3, last?.digits.startsWith('0') ? last.digits.length : 3);
  return { name: `${String(version).padStart(width, '0')}_${d}.sql`, version, description: d };
}

function normalizeDescription(raw: string): string {
  const d = raw.trim().replace(/\s+/g, '_');
  const refuse = (problem: string, hint = 'Use letters, digits, _ and - (spaces become _), e.g. flotilla new add_users_phone.') => {
    throw new BadArgumentError('description', `bad migration description ${JSON.stringify(raw)}: ${problem}`, hint);
  };
  if (!d) refuse('it is empty');
  if (/\.sql$/i.test(d) || /^\d+_/.test(d))
    refuse('give the description only; the number and .sql are added', 'e.g. flotilla new add_users_phone creates NNN_add_users_phone.sql.');
  const bad = [...d].find((c) => !/[A-Za-z0-9_-]/.test(c));
  if (bad) refuse(`${JSON.stringify(bad)} is not allowed in a file name here`);
  if (!/^[A-Za-z0-9]/.test(d)) refuse('it must start with a letter or a digit');
  if (d.length > MAX_DESCRIPTION) refuse(`it is ${d.length} characters long (at most ${MAX_DESCRIPTION})`);
  return d;
}

export function migrationTemplate(description: string, today: Date): string {
  const words = description.replace(/[_-]+/g, ' ').trim();
  return [
    `-- Migration: ${words.charAt(0).toUpperCase()}${words.slice(1)}`,
    `-- Created: ${today.toISOString().slice(0, 10)}`,
    '-- Description: ',
    '',
    'BEGIN;',
    '',
    '-- Your SQL here. Flotilla refuses a file without statements, and runs the file',
    '-- in one transaction with its tracking row (BEGIN/COMMIT are optional).',
    '',
    'COMMIT;',
    '',
  ].join('\n');
}

export async function newCommand(ctx: CommandContext, description: string): Promise<number> {
  const dir = ctx.config.dir;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new MigrationsDirError(dir, 'no such directory (create it with `flotilla init`, or pass --dir <path>)');
    throw new MigrationsDirError(dir, code === 'ENOTDIR' ? 'not a directory' : String((e as Error).message));
  }
  const next = nextMigrationName(description, names);
  const path = join(dir, next.name);
  try {
    // 'wx': never overwrite, even a file that appeared since we looked
    await writeFile(path, migrationTemplate(next.description, new Date()), { flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new BadArgumentError('description', `${path} already exists`, 'Another process created it meanwhile; run the command again.');
    }
    throw e;
  }
  if (ctx.out.json) ctx.out.data({ created: path, name: next.name, version: String(next.version) });
  else {
    ctx.out.line(`✓ Created ${path}`);
    ctx.out.line('  Write its SQL, then check it with: flotilla pending --dry-run');
  }
  return 0;
}
