/**
 * Parse trees kept between runs, for the commands that change nothing (`list`,
 * `status`): they must still refuse a file that does not parse, but loading the
 * WASM parser and parsing cold is a quarter of their start-up
 * (docs/performance.md, "CLI start-up"). A file whose text parsed before gets
 * its tree back, keyed by the SHA-256 of the text and the parser's version; any
 * other file is parsed, so a changed file is always read afresh.
 *
 * Trust: every command that runs SQL or gates it (`pending`, `run`, `lint`,
 * `plan`, rollouts, workers) parses every file itself and never reads this
 * cache; a tree from here only shapes what `list` and `status` print. The
 * folder and its files are created for the user alone (0700/0600) and ignored
 * when someone else owns them or others can write them, as ssh treats its
 * files. A cache never fails a command: any problem reading or writing it means
 * parsing as if it were empty.
 *
 * Where: $FLOTILLA_CACHE_DIR (`off` turns it off), else $XDG_CACHE_HOME/flotilla,
 * else ~/.cache/flotilla; one file per migrations folder, holding the trees of
 * the files it had at the last run (so it never grows past the folder).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, realpathSync, renameSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ParseTrees } from '../core/migration-set.js';
import type { ParseTree } from '../core/statements.js';

const FORMAT = 1;
/** a cache file larger than this is not written (trees of very large files are parsed each time) */
const MAX_CACHE_BYTES = 16 * 1024 * 1024;

export interface ParseCache extends ParseTrees {
  /** write what this run used and parsed, when that differs from what was read; never throws */
  save(): void;
}

interface CacheFile {
  format: number;
  parser: string;
  /** sha256 of a file's text -> its tree as JSON */
  trees: Record<string, string>;
}

export function parseCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const set = env.FLOTILLA_CACHE_DIR;
  if (set === 'off') return undefined;
  if (set) return resolve(set);
  try {
    return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'flotilla');
  } catch {
    return undefined;
  }
}

/** The cache of the migrations folder `dir`; a cache that keeps nothing when it is off or unusable. */
export function openParseCache(dir: string, env: NodeJS.ProcessEnv = process.env): ParseCache {
  const none: ParseCache = { get: () => undefined, put: () => {}, save: () => {} };
  const folder = parseCacheDir(env);
  if (!folder) return none;
  let file: string;
  let parser: string;
  try {
    file = join(folder, `parse-${sha256(realpathSync(dir)).slice(0, 16)}.json`);
    parser = parserVersion();
  } catch {
    return none; // no such migrations folder (the command reports it), or no parser installed
  }
  const kept = read(folder, file, parser);
  const used = new Map<string, string>();
  let parsed = false;
  return {
    get(sql) {
      const key = sha256(sql);
      const json = kept?.[key];
      if (json === undefined) return undefined;
      try {
        const tree = JSON.parse(json) as ParseTree;
        if (tree === null || typeof tree !== 'object') return undefined;
        used.set(key, json);
        return tree;
      } catch {
        return undefined;
      }
    },
    put(sql, tree) {
      used.set(sha256(sql), JSON.stringify(tree));
      parsed = true;
    },
    save() {
      const stale = kept ? Object.keys(kept).some((k) => !used.has(k)) : true;
      if (!parsed && !stale) return;
      const body = JSON.stringify({ format: FORMAT, parser, trees: Object.fromEntries(used) } satisfies CacheFile);
      if (body.length > MAX_CACHE_BYTES) return;
      try {
        mkdirSync(folder, { recursive: true, mode: 0o700 });
        if (!trusted(statSync(folder))) return;
        const tmp = `${file}.${process.pid}.tmp`;
        writeFileSync(tmp, body, { mode: 0o600 });
        renameSync(tmp, file);
      } catch {
        // read-only home, full disk...: the next run parses again
      }
    },
  };
}

function read(folder: string, file: string, parser: string): Record<string, string> | undefined {
  try {
    if (!trusted(statSync(folder)) || !trusted(statSync(file))) return undefined;
    const c = JSON.parse(readFileSync(file, 'utf8')) as Partial<CacheFile>;
    if (c.format !== FORMAT || c.parser !== parser || !c.trees || typeof c.trees !== 'object') return undefined;
    return c.trees;
  } catch {
    return undefined;
  }
}

/** owned by this user, and nobody else may write it */
function trusted(s: Stats): boolean {
  const uid = process.getuid?.();
  return (uid === undefined || s.uid === uid) && (s.mode & 0o022) === 0;
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

let version: string | undefined;
/** libpg-query's version: a new parser may shape its trees differently */
function parserVersion(): string {
  version ??= `libpg-query@${JSON.parse(readFileSync(createRequire(import.meta.url).resolve('libpg-query/package.json'), 'utf8')).version}`;
  return version;
}
