/**
 * Creating or upgrading the control database's schema (control/schema.ts) with
 * Flotilla's own engine, the one that migrates tenants. Every process calls it
 * at start (workers, the CLI's fleet commands): when everything is applied and
 * unedited it costs one query and never loads the SQL parser, so a worker's
 * memory stays small.
 */
import type pg from 'pg';
import { Migrator } from '../migrator.js';
import { checksumOf } from '../core/checksum.js';
import { trustedMigrationSet } from '../core/migration-set.js';
import { ConnectionError } from '../core/errors.js';
import { CONTROL_URL_SOURCE, connectionError, describeUrl, serverRefusedTls, targetLabel, type SslMode } from '../adapters/pg/connection.js';
import { CONTROL_MIGRATIONS, CONTROL_SCHEMA, CONTROL_TRACKING_TABLE, T } from './schema.js';

/** Safe to call from every process at once: the engine's migration lock serialises them. */
export async function migrateControlSchema(pool: pg.Pool, url: string, sslmode: SslMode): Promise<void> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect().catch((e) => {
      if (sslmode !== 'prefer' || !serverRefusedTls(e)) throw e;
      // libpq's prefer: this server has no TLS, so the pool's connections go without
      pool.options.ssl = false;
      return pool.connect();
    });
  } catch (e) {
    throw e instanceof ConnectionError ? e : connectionError(describeUrl(url), e, 10_000, CONTROL_URL_SOURCE);
  }
  try {
    if (await schemaIsCurrent(client)) return;
    // our own SQL: run as written, no parser (a worker's memory stays small)
    const set = trustedMigrationSet(CONTROL_MIGRATIONS);
    const report = await new Migrator(
      client,
      { schema: CONTROL_SCHEMA, trackingTable: CONTROL_TRACKING_TABLE, validate: false, appliedBy: 'flotilla-control', lockWaitTimeoutMs: 60_000 },
      undefined,
      // the migration lock on a second pooled connection (adapters/pg/lock.ts)
      {
        lockSessions: {
          target: targetLabel(describeUrl(url)),
          open: () => pool.connect().catch((e) => Promise.reject(connectionError(describeUrl(url), e, 10_000, CONTROL_URL_SOURCE))),
          release: async (c, clean) => (c as pg.PoolClient).release(clean ? undefined : true),
        },
      },
    ).migrate(set);
    if (report.failed) throw report.failed.error;
  } finally {
    client.release();
  }
}

/** Every control migration applied, unedited: nothing to do (and no SQL parser to load). */
async function schemaIsCurrent(c: pg.PoolClient): Promise<boolean> {
  const r = await c
    .query<{ name: string; checksum: string | null }>(`SELECT name, checksum FROM ${T(CONTROL_TRACKING_TABLE)}`)
    .catch(() => ({ rows: [] as { name: string; checksum: string | null }[] }));
  const applied = new Map(r.rows.map((x) => [x.name, x.checksum]));
  return CONTROL_MIGRATIONS.every((m) => applied.get(m.name) === checksumOf(m.sql));
}
