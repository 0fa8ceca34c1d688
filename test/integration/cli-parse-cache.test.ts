/**
 * `list` and `status` keep the parse trees of files that parsed (cli/parse-cache.ts) so they start
 * without the WASM parser; the figures are in `npm run bench:single`. What must hold:
 * a kept tree is used only for the same text (a changed file is parsed again, its error reported);
 * commands that run SQL never read the cache; a cache others could write is ignored; a cache that
 * is corrupt, unwritable or off never fails a command; it holds only the folder's current files.
 *
 * The cache is "poisoned" here on purpose (a tree of other SQL under a file's key) to see which
 * command reads it: `list` prints the poisoned statement count, `pending` applies the real file.
 */
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, dropAllTestDatabases } from '../helpers/db.js';
import { migrationDir } from '../helpers/migrations.js';

const temps: string[] = [];
afterAll(async () => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
  await dropAllTestDatabases();
});

const show = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

function setup(files: Record<string, string>) {
  const d = migrationDir(files);
  const cache = mkdtempSync(join(tmpdir(), 'flotilla-cache-'));
  temps.push(d.dir, cache);
  const env = { FLOTILLA_CACHE_DIR: cache };
  const cacheFile = () => {
    const f = readdirSync(cache).filter((x) => x.startsWith('parse-') && x.endsWith('.json'));
    expect(f).toHaveLength(1);
    return join(cache, f[0]!);
  };
  const read = () => JSON.parse(readFileSync(cacheFile(), 'utf8')) as { parser: string; trees: Record<string, string> };
  /** the cache now says `name`'s text parses as three SELECTs */
  const poison = (sql: string) => {
    const c = read();
    const key = sha(sql);
    expect(c.trees[key], 'the file has a kept tree').toBeDefined();
    const stmt = (at: number) => ({
      stmt: { SelectStmt: { targetList: [], limitOption: 'LIMIT_OPTION_DEFAULT', op: 'SETOP_NONE' } },
      stmt_location: at,
      stmt_len: 1,
    });
    c.trees[key] = JSON.stringify({ version: 180000, stmts: [stmt(0), stmt(1), stmt(2)] });
    writeFileSync(cacheFile(), JSON.stringify(c));
  };
  const list = async () => {
    const r = await runCli(['list', '--json', '--dir', d.dir], { env });
    expect(r.code, show(r)).toBe(0);
    return Object.fromEntries((JSON.parse(r.stdout).migrations as { name: string; statements: number }[]).map((m) => [m.name, m.statements]));
  };
  return { d, cache, env, cacheFile, read, poison, list };
}

const USERS = 'CREATE TABLE users (id int);\nCREATE INDEX users_id ON users (id);\n';

describe('the parse cache of list and status', { timeout: 120_000 }, () => {
  it('a kept tree is what list shows; pending parses the file itself and applies what it says', async () => {
    const c = setup({ '001_users.sql': USERS });
    expect(await c.list()).toEqual({ '001_users.sql': 2 });
    expect(c.read().parser).toMatch(/^libpg-query@\d/);
    c.poison(USERS);
    expect(await c.list(), 'list read the kept tree').toEqual({ '001_users.sql': 3 });
    const db = await createTestDatabase('pcache');
    const r = await runCli(['pending', '--dir', c.d.dir], { env: { ...c.env, DATABASE_URL: db.url } });
    expect(r.code, show(r)).toBe(0);
    expect((await db.query(`SELECT count(*)::int AS n FROM pg_indexes WHERE indexname = 'users_id'`)).rows[0].n).toBe(1);
    // status reads it too (it only prints): the applied file is listed as applied
    const s = await runCli(['status', '--json', '--dir', c.d.dir], { env: { ...c.env, DATABASE_URL: db.url } });
    expect(s.code, show(s)).toBe(0);
    expect(JSON.parse(s.stdout).applied.map((a: { name: string }) => a.name)).toEqual(['001_users.sql']);
  });

  it('a changed file is parsed again: a syntax error is reported even after its old text was kept', async () => {
    const c = setup({ '001_users.sql': USERS, '002_more.sql': 'CREATE TABLE more (id int);\n' });
    await c.list();
    c.d.write('002_more.sql', 'CREATE TABLE more (id int);\nCREAT TABLE x ();\n');
    const r = await runCli(['list', '--dir', c.d.dir], { env: c.env });
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toContain('002_more.sql:2: SQL syntax error');
    const s = await runCli(['status', '--dir', c.d.dir, '--database-url', 'postgres://nobody@127.0.0.1:1/none'], { env: c.env });
    expect(s.code, show(s)).toBe(2);
    expect(s.stderr).toContain('002_more.sql:2: SQL syntax error');
  });

  it('holds only the folder’s current files, and is rewritten when corrupt', async () => {
    const c = setup({ '001_users.sql': USERS, '002_more.sql': 'CREATE TABLE more (id int);\n' });
    await c.list();
    expect(Object.keys(c.read().trees).sort()).toEqual([sha(USERS), sha('CREATE TABLE more (id int);\n')].sort());
    c.d.remove('002_more.sql');
    await c.list();
    expect(Object.keys(c.read().trees)).toEqual([sha(USERS)]);
    writeFileSync(c.cacheFile(), '{ not json');
    expect(await c.list()).toEqual({ '001_users.sql': 2 });
    expect(Object.keys(c.read().trees)).toEqual([sha(USERS)]);
  });

  it('kept trees of the wrong shape (a damaged cache) are parsed again: list and status answer as without them, and the cache is mended', async () => {
    for (const bad of ['{"stmts":"x"}', '{"stmts":[{}]}', '{"stmts":[{"stmt":null}]}', '{}', '[]', '{"version":1,"stmts":[]}']) {
      const c = setup({ '001_users.sql': USERS });
      await c.list();
      const kept = c.read();
      kept.trees[sha(USERS)] = bad;
      writeFileSync(c.cacheFile(), JSON.stringify(kept));
      expect(await c.list(), bad).toEqual({ '001_users.sql': 2 });
      expect(c.read().trees[sha(USERS)], bad).not.toBe(bad);
      const s = await runCli(['status', '--dir', c.d.dir, '--database-url', 'postgres://nobody@127.0.0.1:1/none'], { env: c.env });
      expect(s.stderr, bad).not.toMatch(/bug|empty/i);
    }
  });

  it('a cache others can write is ignored and left alone: the folder or the file', async () => {
    for (const what of ['folder', 'file'] as const) {
      const c = setup({ '001_users.sql': USERS });
      await c.list();
      c.poison(USERS);
      const before = readFileSync(c.cacheFile(), 'utf8');
      chmodSync(what === 'folder' ? c.cache : c.cacheFile(), what === 'folder' ? 0o777 : 0o666);
      expect(await c.list(), what).toEqual({ '001_users.sql': 2 });
      if (what === 'folder') expect(readFileSync(c.cacheFile(), 'utf8'), 'nothing written into a folder others can write').toBe(before);
    }
  });

  it('a list whose files all have kept trees never compiles the parser (WebAssembly); with the cache off it does', async () => {
    const c = setup({ '001_users.sql': USERS });
    const spy = join(c.cache, 'wasm-spy.mjs');
    writeFileSync(
      spy,
      "const i = WebAssembly.instantiate; WebAssembly.instantiate = (...a) => { process.on('exit', () => process.stderr.write('WASM COMPILED\\n')); return i(...a); };\n",
    );
    const env = (cache: string) => ({ FLOTILLA_CACHE_DIR: cache, NODE_OPTIONS: `--import=${spy}` });
    const first = await runCli(['list', '--dir', c.d.dir], { env: env(c.cache) });
    expect(first.stderr, 'the first run parses').toContain('WASM COMPILED');
    const warm = await runCli(['list', '--dir', c.d.dir], { env: env(c.cache) });
    expect(warm.code, show(warm)).toBe(0);
    expect(warm.stderr).not.toContain('WASM COMPILED');
    const off = await runCli(['list', '--dir', c.d.dir], { env: env('off') });
    expect(off.stderr).toContain('WASM COMPILED');
  });

  it('off, or somewhere it cannot be written: list works and keeps nothing', async () => {
    const d = migrationDir({ '001_users.sql': USERS });
    const base = mkdtempSync(join(tmpdir(), 'flotilla-cache-'));
    temps.push(d.dir, base);
    const blocker = join(base, 'a-file');
    writeFileSync(blocker, '');
    for (const where of ['off', join(blocker, 'cache')]) {
      const r = await runCli(['list', '--json', '--dir', d.dir], { env: { FLOTILLA_CACHE_DIR: where } });
      expect(r.code, show(r)).toBe(0);
      expect(r.stderr).toBe('');
    }
    expect(readdirSync(base)).toEqual(['a-file']);
    expect(existsSync(join(process.cwd(), 'off'))).toBe(false);
  });
});
