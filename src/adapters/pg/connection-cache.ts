/**
 * Tenant connections a worker keeps for a moment after a job: schema-per-tenant
 * tenants share a database, and opening a connection (a server process fork,
 * authentication, TLS) costs more than a no-op tenant's whole check.
 *
 * Not a shared pool: a client belongs to one job at a time (session advisory
 * locks stack per connection, see lock.ts). On release it is reset with
 * DISCARD ALL (settings, search_path, advisory locks, temp tables: the next
 * job sees a fresh session) or closed when that fails or the job's error was
 * about the connection. Idle clients close after `idleMs`; at most `maxIdle`
 * are kept (the oldest go first), so a worker never hoards connections.
 */
import type pg from 'pg';
import { connect, type ConnectOptions } from './connection.js';

interface Idle {
  client: pg.Client;
  timer: NodeJS.Timeout;
}

export class ConnectionCache {
  private readonly idle = new Map<string, Idle[]>();
  private readonly dead = new WeakSet<pg.Client>();
  private idleCount = 0;

  constructor(
    private readonly options: ConnectOptions & { idleMs?: number; maxIdle?: number } = {},
  ) {}

  async acquire(url: string): Promise<pg.Client> {
    const list = this.idle.get(url);
    while (list?.length) {
      const { client, timer } = list.pop()!;
      this.idleCount--;
      clearTimeout(timer);
      if (!this.dead.has(client)) return client;
      void client.end().catch(() => {});
    }
    const client = await connect(url, this.options);
    client.on('error', () => this.dead.add(client));
    client.on('end', () => this.dead.add(client));
    return client;
  }

  /** Give a client back: `reusable` false (or a failed reset) closes it. */
  async release(url: string, client: pg.Client, reusable: boolean): Promise<void> {
    if (!reusable || this.dead.has(client) || (this.options.maxIdle ?? 8) <= 0) return void (await client.end().catch(() => {}));
    try {
      await client.query('DISCARD ALL');
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

  async close(): Promise<void> {
    const all = [...this.idle.values()].flat();
    this.idle.clear();
    this.idleCount = 0;
    await Promise.all(all.map(({ client, timer }) => (clearTimeout(timer), client.end().catch(() => {}))));
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
      if (list.length) return this.evict(url, list[0]!);
    }
  }
}
