/**
 * `npm run build`, second step: bundle the CLI (dist/cli/main.js, as tsc wrote it) into one
 * file plus lazily loaded chunks (dist/cli/chunks/), so `flotilla list` reads a few files
 * instead of hundreds (docs/performance.md, "CLI start-up"). The library (dist/index.js) is
 * left as tsc wrote it.
 *
 * Left outside the bundle, loaded from node_modules at run time: BullMQ (it reads its Lua
 * scripts from its package folder) and ioredis (one copy with BullMQ's), libpg-query (its
 * WASM file sits beside its JS), pino (loaded on first log line), and the servers and
 * browsers other commands load lazily.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { build } from 'esbuild';

const EXTERNAL = ['bullmq', 'ioredis', 'libpg-query', 'pino', 'pino-pretty', 'pg-native', 'hono', '@hono/node-server', 'prom-client', 'playwright-core'];
// modules of ours that may locate things relative to themselves (import.meta.url): each is checked to stay correct when bundled
// (dist/cli/parse-cache.js: createRequire(import.meta.url) finds node_modules by walking up, from dist/cli or dist/cli/chunks alike)
const MAY_USE_OWN_URL = new Set(['dist/cli/main.js', 'dist/logger.js', 'dist/cli/parse-cache.js']);

/**
 * pg asks "is this Cloudflare Workers?" when it loads, by building a fetch `Response`: on Node 20
 * that loads Node's whole fetch implementation (undici), tens of ms of every `flotilla status`.
 * The CLI runs on Node only: the bundled copy answers no. Refuses to build if pg changed there.
 */
const nodeOnlyPg = {
  name: 'pg-node-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]pg[\\/]lib[\\/]stream\.js$/ }, async (args) => {
      const text = readFileSync(args.path, 'utf8');
      const probe = 'if (isCloudflareRuntime()) {';
      if (!text.includes(probe)) throw new Error(`${args.path}: no "${probe}" to replace (pg changed): update scripts/bundle-cli.mjs`);
      return { contents: text.replace(probe, 'if (false) {'), loader: 'js' };
    });
  },
};

/**
 * commander requires node:child_process when it loads, for the executable subcommands Flotilla never
 * declares; that loads net, dgram and the stream stack before any command runs. The bundled copy
 * requires it on first use instead. Refuses to build if commander changed there.
 */
const lazyChildProcess = {
  name: 'commander-lazy-child-process',
  setup(b) {
    b.onLoad({ filter: /[\\/]commander[\\/]lib[\\/]command\.js$/ }, async (args) => {
      const text = readFileSync(args.path, 'utf8');
      const eager = "const childProcess = require('node:child_process');";
      if (!text.includes(eager)) throw new Error(`${args.path}: no "${eager}" to replace (commander changed): update scripts/bundle-cli.mjs`);
      const lazy = "const childProcess = new Proxy({}, { get: (_, key) => require('node:child_process')[key] });";
      return { contents: text.replace(eager, lazy), loader: 'js' };
    });
  },
};

const result = await build({
  plugins: [nodeOnlyPg, lazyChildProcess],
  entryPoints: ['dist/cli/main.js'],
  outdir: 'dist/cli',
  entryNames: '[name]',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  allowOverwrite: true,
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
  // bundled CommonJS packages (pg, yaml...) call require() for Node's own modules
  banner: { js: "import { createRequire as __flotillaCreateRequire } from 'node:module'; const require = __flotillaCreateRequire(import.meta.url);" },
});

// A module that reads a file next to itself (new URL('./x', import.meta.url), __dirname) would look in
// dist/cli/chunks/ once bundled: refuse to build rather than ship a CLI that fails at run time.
const problems = [];
for (const input of Object.keys(result.metafile.inputs)) {
  if (!input.startsWith('dist/') || MAY_USE_OWN_URL.has(input)) continue;
  const text = readFileSync(input, 'utf8');
  if (/import\.meta\.(url|dirname|filename)|\b__dirname\b|\b__filename\b/.test(text)) problems.push(input);
}
if (problems.length) {
  console.error(
    `bundle-cli: ${problems.join(', ')} locate files relative to their own module, which moves when bundled.\n` +
      'Resolve such paths from the package root, or add the package to EXTERNAL / the file to MAY_USE_OWN_URL in scripts/bundle-cli.mjs after checking it.',
  );
  process.exit(1);
}
const out = Object.entries(result.metafile.outputs).filter(([f]) => f.endsWith('.js'));
const main = out.find(([f]) => f === 'dist/cli/main.js');
console.log(`bundled the CLI: dist/cli/main.js ${Math.round(main[1].bytes / 1024)} KB + ${out.length - 1} lazy chunks (${relative('.', 'dist/cli/chunks')}/)`);
