/**
 * The CLI starts fast because each command loads only what it uses (the
 * figures are in `npm run bench:single`, not here). Checked on the built
 * bundle (dist/cli/main.js and its chunks, scripts/bundle-cli.mjs): what every
 * command loads at start-up holds neither pg, BullMQ, ioredis, pino nor the SQL
 * parser; `list` reaches the parser only through a dynamic import and never pg;
 * the worker never imports the parser up front. And the packed package
 * (`npm pack`) runs from wherever it is unpacked.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, REPO, runCli } from '../helpers/cli.js';

const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

const CHUNKS = join(dirname(CLI), 'chunks');

/** The files a module loads before it runs (its static imports, transitively), with their text. */
function staticGraph(file: string): Map<string, string> {
  const seen = new Map<string, string>();
  const todo = [file];
  while (todo.length) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    const text = readFileSync(f, 'utf8');
    seen.set(f, text);
    for (const m of text.matchAll(/^import\s+(?:[^'"]*?\s+from\s+)?["'](\.[^"']+)["']/gms)) todo.push(resolve(dirname(f), m[1]!));
  }
  return seen;
}

const chunk = (name: string) => {
  const f = readdirSync(CHUNKS).find((x) => x.startsWith(`${name}-`) && x.endsWith('.js'));
  if (!f) throw new Error(`no ${name}-*.js chunk in ${CHUNKS}: was the CLI bundled (npm run build)?`);
  return join(CHUNKS, f);
};
const texts = (g: Map<string, string>) => [...g.values()].join('\n');
const staticImportOf = (pkg: string) => new RegExp(`^import\\s+(?:[^'"]*?\\s+from\\s+)?["']${pkg}(/[^"']*)?["']`, 'm');
const bundledPackage = (pkg: string) => new RegExp(`^// .*node_modules/${pkg}/`, 'm');

describe('what each command loads at start-up', () => {
  it('every command: commander, the config and the output, no pg, BullMQ, ioredis, pino or parser', () => {
    const all = texts(staticGraph(CLI));
    expect(all).toMatch(bundledPackage('commander'));
    for (const pkg of ['bullmq', 'ioredis', 'pino', 'libpg-query']) expect(all, pkg).not.toMatch(staticImportOf(pkg));
    expect(all, 'pg bundled into the start-up graph').not.toMatch(bundledPackage('pg'));
    expect(all).not.toContain('import("libpg-query")');
  });

  it('list/status/pending/run: the parser only through a dynamic import, pg only once a database is needed', () => {
    const single = texts(staticGraph(chunk('single')));
    expect(single).not.toMatch(staticImportOf('libpg-query'));
    expect(single).toContain('import("libpg-query")');
    expect(single, 'pg is loaded by list').not.toMatch(bundledPackage('pg'));
    for (const pkg of ['bullmq', 'ioredis']) expect(single, pkg).not.toMatch(staticImportOf(pkg));
  });

  it('the worker: no parser up front (test/unit/worker-no-parser.test.ts: nothing it runs calls it)', () => {
    const worker = texts(staticGraph(chunk('worker')));
    expect(worker).not.toMatch(staticImportOf('libpg-query'));
    expect(worker).toMatch(staticImportOf('bullmq'));
  });
});

describe('the packed package', { timeout: 120_000 }, () => {
  it('npm pack holds the bundle and its chunks; unpacked elsewhere, its bin lists the migrations', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-pack-'));
    temps.push(dir);
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const [info] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
    const files = info!.files.map((f) => f.path);
    expect(files).toContain('dist/cli/main.js');
    expect(files.some((f) => /^dist\/cli\/chunks\/single-.*\.js$/.test(f))).toBe(true);
    expect(files.some((f) => /^(test|bench|scripts|src)\//.test(f))).toBe(false);
    execFileSync('tar', ['xzf', join(dir, info!.filename), '-C', dir]);
    // its dependencies, as an install would put them beside it
    symlinkSync(join(REPO, 'node_modules'), join(dir, 'package', 'node_modules'));
    const pkg = JSON.parse(readFileSync(join(dir, 'package', 'package.json'), 'utf8'));
    const bin = join(dir, 'package', pkg.bin.flotilla);
    const version = execFileSync(process.execPath, [bin, '--version'], { encoding: 'utf8' });
    expect(version.trim()).toBe(pkg.version);
    const list = execFileSync(process.execPath, [bin, 'list', '--dir', join(REPO, 'migrations')], { encoding: 'utf8' });
    expect(list).toContain('Total: 8 migrations');
    // the same answer as the CLI the tests run
    expect((await runCli(['list', '--dir', join(REPO, 'migrations')])).stdout).toBe(list);
  });
});
