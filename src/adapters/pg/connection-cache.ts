/**
 * Tenant connections a worker keeps for a moment after a job: schema-per-tenant
 * tenants share a database, and opening a connection (a server process fork,
 * authentication, TLS) costs more than a no-op tenant's whole check.
 *
 * Not a shared pool: a client belongs to one job at a time. A job takes two
 * for a tenant that has something pending: its migration session and its lock
 * session (lock.ts), both from here. On release a migration session is reset
 * with DISCARD ALL (settings, role, search_path, advisory locks, temp tables:
 * whatever the migration SQL did, the next job sees a fresh session); a lock
 * session that ended its transaction ran nothing else and goes back as is.
 * A client is closed instead when the reset fails or the job's error was
 * about the connection. Idle clients close after `idleMs`; at most `maxIdle`
 * are kept (the oldest go first), so a worker never hoards connections.
 *
 * A client is closed after `maxUses` jobs (default 100): a server process keeps
 * the catalog entries of every relation it touched, and DISCARD ALL does not
 * free them. On a database of many tenant schemas one that served 4,000
 * tenants held 503 MB (pg_backend_memory_contexts, measured for
 * docs/performance.md). A new connection every 100 jobs bounds that.
 */
import type pg from 'pg';
import { connect, describeUrl, targetLabel, type ConnectOptions } from './connection.js';
import type { LockSessions } from './lock.js';

interface Idle {
  client: pg.Client;
  timer: NodeJS.Timeout;
}

export class ConnectionCache {
  private readonly idle = new Map<string, Idle[]>();
  private readonly dead = new WeakSet<pg.Client>();
  private readonly uses = new WeakMap<pg.Client, number>();
  private idleCount = 0;

  constructor(private readonly options: ConnectOptions & { idleMs?: number; maxIdle?: number; maxUses?: number } = {}) {}

  /** `urlSource`: where the URL came from, named in a connection error's hint (connection.ts) */
  async acquire(url: string, urlSource?: string): Promise<pg.Client> {
    const list = this.idle.get(url);
    while (list?.length) {
      const { client, timer } = list.pop()!;
      this.idleCount--;
      clearTimeout(timer);
      if (!this.dead.has(client)) return client;
      void client.end().catch(() => {});
    }
    const client = await connect(url, urlSource ? { ...this.options, urlSource } : this.options);
    client.on('error', () => this.dead.add(client));
    client.on('end', () => this.dead.add(client));
    return client;
  }

  /** Give a client back: `reusable` false (or a failed reset) closes it; `reset` false: it is known clean (a lock session). */
  async release(url: string, client: pg.Client, reusable: boolean, reset = true): Promise<void> {
    const used = (this.uses.get(client) ?? 0) + 1;
    this.uses.set(client, used);
    if (!reusable || this.dead.has(client) || (this.options.maxIdle ?? 8) <= 0 || used >= (this.options.maxUses ?? 100))
      return void (await client.end().catch(() => {}));
    try {
      if (reset) await client.query('DISCARD ALL');
    } catch {
      return void (await client.end().catch(() => {}));
    }
    const list = this.idle.get(url) ?? [];
    this.idle.set(url, list);
    const entry: Idle = {
      client,
      timer: setTimeout(() => this.evict(url, entry), this.options.idleMs ?? 2000),
    };
    entry.timer.unref();
    list.push(entry);
    this.idleCount++;
    while (this.idleCount > (this.options.maxIdle ?? 8)) this.evictOldest();
  }

  /** The engine's lock sessions for `url`, from this cache (a job's migration session comes from `acquire`). */
  lockSessions(url: string): LockSessions {
    return {
      target: targetLabel(describeUrl(url)),
      open: () => this.acquire(url),
      release: (c, clean) => this.release(url, c as pg.Client, clean, false),
    };
  }

  async close(): Promise<void> {
    const all = [...this.idle.values()].flat();
    this.idle.clear();
    this.idleCount = 0;
    await Promise.all(
      all.map(({ client, timer }) => {
        clearTimeout(timer);
        return client.end().catch(() => {});
      }),
    );
  }

  private evict(url: string, entry: Idle): void {
    const list = this.idle.get(url);
    const i = list?.indexOf(entry) ?? -1;
    if (!list || i < 0) return;
    list.splice(i, 1);
    if (!list.length) this.idle.delete(url);
    this.idleCount--;
    clearTimeout(entry.timer);
    void entry.client.end().catch(() => {});
  }

  private evictOldest(): void {
    // Map iteration order is insertion order: the first list was filled longest ago
    for (const [url, list] of this.idle) {
      if (list.length) {
        this.evict(url, list[0]!);
        return;
      }
    }
  }
}
