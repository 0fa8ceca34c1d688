/**
 * A private redis-server for the chaos run, on a free port of its own: it may
 * be killed, restarted and flushed without touching anyone else's Redis.
 * A restart is a crash with RDB persistence: SAVE, SIGKILL, start again on the
 * same port from the snapshot (clients see their connections drop).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class PrivateRedis {
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'flotilla-chaos-redis-'));
  private output = '';

  private constructor(
    readonly port: number,
    private readonly bin: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(bin = process.env.REDIS_SERVER_BIN ?? 'redis-server'): Promise<PrivateRedis> {
    for (let tries = 0; ; tries++) {
      const r = new PrivateRedis(await freePort(), bin);
      try {
        await r.spawn();
        return r;
      } catch (e) {
        await r.stop();
        if (tries >= 3) throw e;
      }
    }
  }

  private async spawn(): Promise<void> {
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      this.dir,
      '--dbfilename',
      'chaos.rdb',
      '--protected-mode',
      'no',
    ];
    const child = spawn(this.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.on('data', (d) => (this.output = (this.output + d).slice(-4000)));
    child.stderr!.on('data', (d) => (this.output = (this.output + d).slice(-4000)));
    const exited = new Promise<never>((_, reject) => {
      child.once('exit', (code) => reject(new Error(`redis-server on port ${this.port} exited (${code}): ${this.output.slice(-500)}`)));
      child.once('error', (e) => reject(new Error(`cannot start ${this.bin} (set REDIS_SERVER_BIN or put redis-server on PATH): ${e.message}`)));
    });
    exited.catch(() => {});
    const started = Date.now();
    for (;;) {
      if (await Promise.race([this.ping(), exited])) return;
      if (Date.now() - started > 15_000) throw new Error(`redis-server on port ${this.port} did not answer within 15 s: ${this.output.slice(-500)}`);
      await sleep(50);
    }
  }

  private async command(...args: [string, ...string[]]): Promise<unknown> {
    const r = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false, connectTimeout: 2000 });
    r.on('error', () => {});
    try {
      await r.connect();
      return await r.call(...args);
    } finally {
      r.disconnect();
    }
  }

  async ping(): Promise<boolean> {
    return this.command('PING').then(
      (x) => x === 'PONG',
      () => false,
    );
  }

  /** SAVE, SIGKILL, start again on the same port (loads the snapshot). Returns how long it was down (ms). */
  async restart(): Promise<number> {
    await this.command('SAVE');
    const started = performance.now();
    await this.kill();
    await this.spawn();
    return Math.round(performance.now() - started);
  }

  async flushAll(): Promise<void> {
    await this.command('FLUSHALL');
  }

  private async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
