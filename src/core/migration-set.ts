/**
 * A migration set is a value: the ordered files, their parsed statements and
 * checksums, and one checksum for the whole set. It is built from plain
 * {name, sql} pairs, so a directory on disk and a rollout frozen in the control
 * database produce the very same thing. Everything wrong with the files is
 * refused here, before anything touches a database.
 */
import { checksumOf, setChecksum } from './checksum.js';
import {
  DuplicateVersionError,
  EmptyMigrationError,
  InvalidFileNameError,
  MixedTransactionModeError,
  SqlParseError,
  UnsupportedStatementError,
  ConfigError,
  InvalidEncodingError,
  MigrationTooLargeError,
  ParserLimitError,
  DownWithoutUpError,
} from './errors.js';
import { byteLengthOf, checkMigrationText, MAX_MIGRATION_BYTES, type EncodingProblem } from './file-bytes.js';
import { isMigrationCandidate, parseDownFileName, parseFileName } from './filename.js';
import { loadParser, parseTree, splitStatements, type ParseTree, type Statement } from './statements.js';
import { rowEffects, type RowEffects } from './effects.js';
import { parseValidationHeader, type ValidationOptions } from './validation.js';

export interface MigrationFile {
  name: string;
  sql: string;
}

export interface Migration {
  name: string;
  version: bigint;
  sql: string;
  checksum: string;
  /** statements to execute: the file's own BEGIN/COMMIT are left out */
  statements: Statement[];
  /** false when every statement must run outside a transaction block */
  transactional: boolean;
  /** from the file's `-- flotilla:validate` header */
  validation: { enabled: boolean | undefined; options: Partial<ValidationOptions> };
  /** which tables' rows the file can change (what the validator must count) */
  effects: RowEffects;
}

export interface MigrationSet {
  migrations: readonly Migration[];
  checksum: string;
  /**
   * Down files (NNN_description.down.sql), each the down of the migration with
   * its version, in version order. Not part of `checksum` (what an up rollout
   * freezes) and never run as up migrations: only `down` and `rollout revert` run them.
   */
  downs?: readonly Migration[];
}

/**
 * Parse trees an earlier run computed, by file text (a cache kept by the CLI for
 * commands that change nothing: cli/parse-cache.ts). `get` answers for a text
 * that parsed, never for one that failed; `put` is told of every tree parsed here.
 */
export interface ParseTrees {
  get(sql: string): ParseTree | undefined;
  put(sql: string, tree: ParseTree): void;
}

export async function buildMigrationSet(files: MigrationFile[], trees?: ParseTrees): Promise<MigrationSet> {
  const all = checkedText(files.filter((f) => isMigrationCandidate(f.name)));
  // the WASM parser loads only when some file has no kept tree
  const known = new Map<string, ParseTree>();
  for (const f of all) {
    const t = trees?.get(f.sql);
    if (t) known.set(f.sql, t);
  }
  if (all.some((f) => f.sql !== '' && !known.has(f.sql))) await loadParser();
  const build = (file: MigrationFile, version: bigint) => buildMigration(file, version, treeOf(file.sql, known, trees));
  const downFiles = all.filter((f) => parseDownFileName(f.name));
  const candidates = all.filter((f) => !parseDownFileName(f.name));
  const bad = candidates.filter((f) => !parseFileName(f.name)).map((f) => f.name);
  if (bad.length) throw new InvalidFileNameError(bad.sort());

  const parsed = candidates
    .map((f) => ({ file: f, meta: parseFileName(f.name)! }))
    .sort((a, b) => (a.meta.version < b.meta.version ? -1 : a.meta.version > b.meta.version ? 1 : a.file.name.localeCompare(b.file.name)));
  for (let i = 1; i < parsed.length; i++) {
    if (parsed[i]!.meta.version === parsed[i - 1]!.meta.version) {
      const v = parsed[i]!.meta.version;
      throw new DuplicateVersionError(
        String(v),
        parsed.filter((p) => p.meta.version === v).map((p) => p.file.name),
      );
    }
  }
  const buildAll = () => {
    const migrations = parsed.map(({ file, meta }) => build(file, meta.version));
    return { migrations, downs: buildDowns(downFiles, migrations, build) };
  };
  let built: ReturnType<typeof buildAll>;
  try {
    built = buildAll();
  } catch (e) {
    if (!known.size) throw e;
    // kept trees that do not build (a cache damaged or written by hand) are dropped: every file is parsed again,
    // and what is wrong with the files, if anything, is what the parser says
    known.clear();
    await loadParser();
    built = buildAll();
  }
  const { migrations, downs } = built;
  return { migrations, checksum: setChecksum(migrations), ...(downs.length ? { downs } : {}) };
}

/**
 * Down files: each names the version of an up file beside it (a down without
 * its up is refused, every one at once), one per version, and each is checked
 * and parsed like an up file.
 */
function buildDowns(files: MigrationFile[], ups: readonly Migration[], build: (f: MigrationFile, v: bigint) => Migration): Migration[] {
  const versions = new Set(ups.map((m) => m.version));
  const parsed = files
    .map((f) => ({ file: f, version: parseDownFileName(f.name)!.version }))
    .sort((a, b) => (a.version < b.version ? -1 : a.version > b.version ? 1 : a.file.name.localeCompare(b.file.name)));
  const orphans = parsed.filter((d) => !versions.has(d.version)).map((d) => d.file.name);
  if (orphans.length) throw new DownWithoutUpError(orphans);
  for (let i = 1; i < parsed.length; i++) {
    const v = parsed[i]!.version;
    if (v === parsed[i - 1]!.version)
      throw new DuplicateVersionError(
        `${v} (down)`,
        parsed.filter((d) => d.version === v).map((d) => d.file.name),
      );
  }
  return parsed.map(({ file, version }) => build(file, version));
}

/** The kept tree of a text, or a fresh parse (told to `trees`); undefined when it does not parse (splitStatements reports why). */
function treeOf(sql: string, known: Map<string, ParseTree>, trees: ParseTrees | undefined): ParseTree | undefined {
  const kept = known.get(sql);
  if (kept || sql === '') return kept;
  let tree: ParseTree;
  try {
    tree = parseTree(sql)!;
  } catch {
    return undefined;
  }
  trees?.put(sql, tree);
  return tree;
}

/**
 * Text the parser and Postgres can take, within the parser's size limit
 * (core/file-bytes.ts), checked for every file before any is parsed.
 */
function checkedText(files: MigrationFile[]): MigrationFile[] {
  const problems: EncodingProblem[] = [];
  const checked = files.map((f) => {
    const r = checkMigrationText(f.name, f.sql);
    if ('problem' in r) problems.push(r.problem);
    return 'sql' in r ? { name: f.name, sql: r.sql } : f;
  });
  if (problems.length) throw new InvalidEncodingError(problems);
  for (const f of checked) {
    const bytes = byteLengthOf(f.sql);
    if (bytes > MAX_MIGRATION_BYTES) throw new MigrationTooLargeError(f.name, bytes, MAX_MIGRATION_BYTES);
  }
  return checked;
}

function buildMigration(file: MigrationFile, version: bigint, tree: ParseTree | undefined): Migration {
  const split = splitStatements(file.sql, tree);
  if ('error' in split) {
    if (split.error.limit) throw new ParserLimitError(file.name, split.error.line, split.error.message);
    throw new SqlParseError(file.name, split.error.line, split.error.message);
  }
  const forbidden = split.statements.find((s) => s.mode === 'forbidden');
  if (forbidden) throw new UnsupportedStatementError(file.name, forbidden.line, forbidden.label);
  // numbered among the statements that run: the numbers `list --json` counts and error messages cite
  const statements = split.statements.filter((s) => s.mode !== 'transaction-control').map((s, index) => ({ ...s, index }));
  if (statements.length === 0) throw new EmptyMigrationError(file.name);
  const nonTx = statements.filter((s) => s.mode === 'non-transactional');
  if (nonTx.length > 0 && nonTx.length < statements.length) {
    throw new MixedTransactionModeError(
      file.name,
      nonTx.map((s) => ({ line: s.line, kind: s.label })),
    );
  }
  const header = parseValidationHeader(file.sql);
  if (!header.ok) throw new ConfigError([`${file.name}:${header.line}: ${header.problem}`]);
  return {
    name: file.name,
    version,
    sql: file.sql,
    checksum: checksumOf(file.sql),
    statements,
    transactional: nonTx.length === 0,
    validation: { enabled: header.enabled, options: header.options },
    effects: rowEffects(statements),
  };
}

/** A parsed migration as JSON (bigint version as a string): what the control database keeps of a frozen set. */
export type ParsedMigrationJSON = Omit<Migration, 'version'> & { version: string };

export function migrationToJSON(m: Migration): ParsedMigrationJSON {
  return { ...m, version: String(m.version) };
}

/**
 * A frozen set back from its parsed JSON, without the parser: workers never
 * load it (its WASM heap would be most of their memory). Every file's text is
 * checked against its checksum and the set against its own checksum, so what
 * runs is exactly what was frozen.
 */
export function migrationSetFromJSON(files: Partial<ParsedMigrationJSON>[], checksum: string): MigrationSet {
  const bare = files.find((f) => !(Array.isArray(f.statements) && f.effects && f.validation && typeof f.version === 'string'));
  if (bare) throw new Error(`frozen migration set ${checksum}: ${bare.name ?? 'a file'} has no parsed form`);
  const migrations = files.map((f) => {
    const m = { ...(f as ParsedMigrationJSON), version: BigInt(f.version!) };
    if (checksumOf(m.sql) !== m.checksum) throw new Error(`frozen migration ${m.name}: its text does not match its checksum`);
    return m;
  });
  if (setChecksum(migrations) !== checksum) throw new Error(`frozen migration set ${checksum}: its files do not match its checksum`);
  return { migrations, checksum };
}

/**
 * A set of files we wrote ourselves (the control database's schema), without
 * the parser: each file runs as one batch in its own transaction. Only for
 * SQL known to be transactional and free of the file's own BEGIN/COMMIT.
 */
export function trustedMigrationSet(files: MigrationFile[]): MigrationSet {
  const migrations = files.map((file): Migration => {
    const meta = parseFileName(file.name);
    if (!meta) throw new InvalidFileNameError([file.name]);
    const header = parseValidationHeader(file.sql);
    return {
      name: file.name,
      version: meta.version,
      sql: file.sql,
      checksum: checksumOf(file.sql),
      statements: [{ index: 0, line: 1, sql: file.sql, kind: 'Batch', mode: 'transactional', label: 'batch', node: {} }],
      transactional: true,
      validation: { enabled: header.ok ? header.enabled : false, options: header.ok ? header.options : {} },
      effects: { any: true, writes: [], functions: [], definesTriggers: false, defines: [] },
    };
  });
  return { migrations, checksum: setChecksum(migrations) };
}
