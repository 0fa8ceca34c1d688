/** Runs the built CLI (dist/cli/main.js) as a user would, capturing its output. */
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, REPO } from './fleet-base.js';

export { CLI, REPO };

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Environment without the developer's own DATABASE_URL & co., so tests only see what they pass.
 * The parse cache of `list` and `status` (cli/parse-cache.ts) is the tests' own, never the
 * developer's ~/.cache (what it serves is what parsing gives, so tests share it safely).
 */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (/^(DATABASE_URL|MIGRATIONS_DIR|FLOTILLA_|REDIS_URL|CONTROL_DATABASE_URL|LOG_LEVEL)/.test(k)) delete env[k];
  return { ...env, FLOTILLA_CACHE_DIR: join(tmpdir(), 'flotilla-test-parse-cache'), ...extra };
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  timeoutMs?: number;
}

/** The built CLI as a child whose output can be read while it runs; killed after `timeoutMs` (60 s). */
export function startCli(args: string[], options: CliOptions = {}): { child: ChildProcess; stdout(): string; stderr(): string; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd ?? REPO, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
  return { child, stdout: () => stdout, stderr: () => stderr, done };
}

export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return startCli(args, options).done;
}
