/**
 * Migration file names: NNN_description.sql, ordered by the number.
 * Only `.sql` files are migrations; other files (README.md, .gitkeep) are ignored.
 * NNN_description.down.sql is the down file of migration NNN (never an up migration).
 */
const PATTERN = /^(\d+)_([A-Za-z0-9][A-Za-z0-9_-]*)\.sql$/;
const DOWN_PATTERN = /^(\d+)_([A-Za-z0-9][A-Za-z0-9_-]*)\.down\.sql$/;

export interface ParsedFileName {
  name: string;
  /** Numeric order key (leading zeros dropped: 001 and 1 are the same number). */
  version: bigint;
  description: string;
}

export function isMigrationCandidate(file: string): boolean {
  return file.toLowerCase().endsWith('.sql') && !file.startsWith('.');
}

export function parseFileName(file: string): ParsedFileName | undefined {
  const m = PATTERN.exec(file);
  if (!m) return undefined;
  return { name: file, version: BigInt(m[1]!), description: m[2]! };
}

/** NNN_description.down.sql: the down file of migration NNN. */
export function parseDownFileName(file: string): ParsedFileName | undefined {
  const m = DOWN_PATTERN.exec(file);
  if (!m) return undefined;
  return { name: file, version: BigInt(m[1]!), description: m[2]! };
}
