/**
 * The Redis clients BullMQ is given (adapters/redis.ts reads the URLs). Loaded with the queues,
 * never by the commands that only need settings: it brings ioredis in.
 */
import { Cluster } from 'ioredis';
import type { ConnectionOptions } from 'bullmq';
import { isClusterUrl, parseClusterUrl, redisConnection, type ClusterTarget } from './redis.js';

/** What BullMQ is given: options for a single server, or a cluster client that `close` ends. */
export interface BullConnection {
  connection: ConnectionOptions;
  /** ends what this module opened (a cluster client; nothing for a single server, which BullMQ owns) */
  close(): Promise<void>;
}

/**
 * The connection of one BullMQ Queue or Worker. For a single server BullMQ builds (and closes)
 * its own ioredis client from the options; a cluster must be handed over as a client, which BullMQ
 * shares and never closes: the caller closes it after the queue or worker (`close`). A Worker
 * duplicates it for its blocking connection, and closes that one itself.
 */
export function bullConnection(url: string): BullConnection {
  if (!isClusterUrl(url)) return { connection: redisConnection(url), close: async () => {} };
  const cluster = openCluster(parseClusterUrl(url), { maxRetriesPerRequest: null, enableOfflineQueue: true });
  cluster.on('error', () => {});
  return {
    connection: cluster as unknown as ConnectionOptions,
    close: async () => {
      await cluster.quit().catch(() => cluster.disconnect());
    },
  };
}

export function openCluster(
  t: ClusterTarget,
  o: { maxRetriesPerRequest: number | null; enableOfflineQueue: boolean; lazyConnect?: boolean; connectTimeout?: number; noRetry?: boolean },
): Cluster {
  return new Cluster(t.nodes, {
    lazyConnect: o.lazyConnect ?? false,
    enableOfflineQueue: o.enableOfflineQueue,
    ...(o.noRetry ? { clusterRetryStrategy: () => null } : {}),
    ...(o.connectTimeout ? { slotsRefreshTimeout: o.connectTimeout } : {}),
    redisOptions: {
      maxRetriesPerRequest: o.maxRetriesPerRequest,
      connectionName: 'flotilla',
      ...(o.connectTimeout ? { connectTimeout: o.connectTimeout } : {}),
      ...(t.username ? { username: t.username } : {}),
      ...(t.password !== undefined ? { password: t.password } : {}),
      ...(t.tls ? { tls: {} } : {}),
    },
  });
}
