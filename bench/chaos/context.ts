/**
 * The state one chaos run shares between its phases (setup, the rollout and
 * its chaos events, recovery, verdict, cleanup): options, figures and
 * violations, the stop signal, every child process, worker and connection it
 * opened (so the cleanup finds them), and the helpers that track them.
 */
import { mkdtempSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { REPO, spawnWorker, type FleetFixture, type SpawnedWorker } from '../../test/helpers/fleet-base.js';
import { emptyFigures, type ChaosFigures, type ChaosOptions } from './options.js';
import type { PrivateRedis } from './redis.js';
import { withClient } from './verify.js';

/** mulberry32: a small seeded PRNG, so a run's choices can be replayed with --seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The last lines of a worker's output, pino JSON shortened to time, message and error. */
export function lastLines(output: string, n: number): string {
  return output
    .trim()
    .split('\n')
    .slice(-n)
    .map((line) => {
      try {
        const j = JSON.parse(line);
        return `${new Date(j.time).toISOString().slice(11, 23)} ${j.msg}${j.tenantId ? ` ${j.tenantId}` : ''}${j.err ? ` (${String(j.err.message ?? j.err).slice(0, 120)})` : ''}`;
      } catch {
        return line.slice(0, 200);
      }
    })
    .join(' | ');
}

export const qi = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Environment for the CLI and the workers: only what we pass, none of the caller's DATABASE_URL & co. */
export function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (/^(DATABASE_URL|MIGRATIONS_DIR|FLOTILLA_|REDIS_URL|CONTROL_DATABASE_URL|LOG_LEVEL|PG[A-Z]+$)/.test(k)) delete env[k];
  return { ...env, ...extra };
}

export interface WorkerEntry {
  proc: SpawnedWorker;
  /** 1, 2, ... in start order */
  n: number;
  ready: boolean;
  killed: boolean;
  stopping: boolean;
  id(): string | undefined;
}

export class ChaosRun {
  readonly t0 = performance.now();
  readonly random: () => number;
  readonly violations: string[] = [];
  readonly figures: ChaosFigures;
  /** aborted by the timeout, the caller's signal (SIGINT), or the end of the run */
  readonly stop = new AbortController();
  /** migrations, tenants file (and with --keep, worker logs) */
  readonly dir = mkdtempSync(join(tmpdir(), 'flotilla-chaos-'));
  readonly children = new Set<ChildProcess>();
  readonly workers: WorkerEntry[] = [];
  readonly lockClients: pg.Client[] = [];
  /** databases set to refuse connections, allowed again at the cleanup */
  readonly refused = new Set<string>();
  /** chaos events still running (windows, holds, CLI runs, resumes) */
  readonly tasks: Promise<void>[] = [];
  readonly referenceDb: string;
  referenceCreated = false;
  fleet: FleetFixture | undefined;
  redis: PrivateRedis | undefined;
  control: pg.Pool | undefined;
  /** environment of the CLI runs, and of the workers */
  env: NodeJS.ProcessEnv = {};
  workerEnv: NodeJS.ProcessEnv = {};
  private workerCount = 0;

  constructor(readonly o: ChaosOptions) {
    this.random = rng(o.seed);
    this.figures = emptyFigures(o);
    this.referenceDb = `${o.prefix}_reference`;
  }

  get aborted(): boolean {
    return this.stop.signal.aborted;
  }

  log(line: string): void {
    this.o.log(`[${((performance.now() - this.t0) / 1000).toFixed(1).padStart(6)} s] ${line}`);
  }

  pick<T>(xs: T[]): T {
    return xs[Math.floor(this.random() * xs.length)]!;
  }

  /** An admin connection for `fn` (reaches every database, even one refusing connections to others). */
  admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
    return withClient(this.o.adminUrl, fn, 'flotilla-chaos');
  }

  /** Run the CLI (killed at the cleanup or after `timeoutMs`). */
  runCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 10 * 60_000): Promise<{ code: number; stdout: string; stderr: string; seconds: number }> {
    const started = performance.now();
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [this.o.cli, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
      this.children.add(child);
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d) => (stdout += d));
      child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-20_000)));
      const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('error', (e) => (stderr += String(e)));
      child.on('close', (code, signal) => {
        clearTimeout(killer);
        this.children.delete(child);
        resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr, seconds: (performance.now() - started) / 1000 });
      });
    });
  }

  /** Start a worker; an exit this run did not cause is reported (a violation once it had started). */
  startWorker(): WorkerEntry {
    const n = ++this.workerCount;
    this.figures.workerProcessesStarted++;
    const proc = spawnWorker({ env: this.workerEnv, concurrency: this.o.concurrency, cli: this.o.cli, args: ['--drain-timeout', '5s'] });
    const entry: WorkerEntry = {
      proc,
      n,
      ready: false,
      killed: false,
      stopping: false,
      id: () => /worker (\S+) started/.exec(proc.output())?.[1] ?? /"worker":"([^"]+)"/.exec(proc.output())?.[1],
    };
    this.workers.push(entry);
    proc.started.then(
      () => (entry.ready = true),
      () => {},
    );
    // 'close': after the last of its output arrived (a drain logs on its way out)
    proc.child.once('close', (code, signal) => {
      if (entry.killed || entry.stopping || this.aborted) return;
      // SIGTERM/SIGINT are never sent by this run: another process on the machine stopped it (a drain is the right answer)
      if (signal === 'SIGTERM' || signal === 'SIGINT' || /"msg":"draining: no new jobs/.test(proc.output())) {
        this.figures.externalStops++;
        this.log(`worker #${n} was stopped by a SIGTERM/SIGINT from outside this run (${code ?? signal}${code === 0 ? ', drained' : ''}); another is started`);
        return;
      }
      if (!entry.ready) {
        // e.g. started while Redis was down: refused to start (exit 3); another one is started
        this.figures.workersFailedToStart++;
        this.log(`worker #${n} did not start (exit ${code ?? signal}): ${proc.output().trim().split('\n').slice(-1)[0]?.slice(0, 200)}`);
      } else {
        this.violations.push(`worker #${n} (${entry.id()}) exited by itself (${code ?? signal}); its last lines: ${lastLines(proc.output(), 5)}`);
      }
    });
    return entry;
  }

  alive(w: WorkerEntry): boolean {
    return w.proc.child.exitCode === null && w.proc.child.signalCode === null && !w.killed && !w.stopping;
  }

  /** Run `fn` beside the run; its failure is a violation (unless the run was stopped). */
  task(name: string, fn: () => Promise<void>): void {
    this.tasks.push(
      fn().catch((e) => {
        if (!this.aborted) this.violations.push(`${name}: ${(e as Error).message}`);
      }),
    );
  }
}
