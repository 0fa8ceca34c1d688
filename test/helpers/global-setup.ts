/**
 * Real Postgres and Redis for the tests, found in this order:
 * TEST_DATABASE_URL / TEST_REDIS_URL when set; else the local services on
 * 127.0.0.1:5432 (user postgres, database test) and 127.0.0.1:6379 when they
 * answer; else containers started with testcontainers (imported lazily: it
 * needs a Docker engine). When none works, one message says what is needed.
 */
import { connect } from 'node:net';
import pg from 'pg';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    redisUrl: string;
  }
}

const LOCAL_PG = 'postgres://postgres@127.0.0.1:5432/test';
const LOCAL_REDIS = 'redis://127.0.0.1:6379';

async function postgresAnswers(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

function redisAnswers(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = connect({ host: u.hostname, port: Number(u.port || 6379) });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(2000, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

const NEEDED =
  'The tests need PostgreSQL and Redis: set TEST_DATABASE_URL and TEST_REDIS_URL, or run them locally ' +
  `(${LOCAL_PG}, trust auth; ${LOCAL_REDIS}), or install a Docker engine for testcontainers.`;

async function container<T>(what: string, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (e) {
    throw new Error(`${what} is not reachable on localhost and no container could be started (${(e as Error).message.split('\n')[0]}). ${NEEDED}`);
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stops: (() => Promise<unknown>)[] = [];
  let databaseUrl = process.env.TEST_DATABASE_URL;
  let redisUrl = process.env.TEST_REDIS_URL;
  if (!databaseUrl && (await postgresAnswers(LOCAL_PG))) databaseUrl = LOCAL_PG;
  if (!redisUrl && (await redisAnswers(LOCAL_REDIS))) redisUrl = LOCAL_REDIS;
  if (!databaseUrl) {
    const started = await container('PostgreSQL', async () => {
      const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
      return new PostgreSqlContainer('postgres:15-alpine').withUsername('postgres').withPassword('postgres').withDatabase('test').start();
    });
    stops.push(() => started.stop());
    databaseUrl = started.getConnectionUri();
  }
  if (!redisUrl) {
    const started = await container('Redis', async () => {
      const { RedisContainer } = await import('@testcontainers/redis');
      return new RedisContainer('redis:7-alpine').start();
    });
    stops.push(() => started.stop());
    redisUrl = started.getConnectionUrl();
  }
  process.env.TEST_DATABASE_URL = databaseUrl;
  process.env.TEST_REDIS_URL = redisUrl;
  project.provide('databaseUrl', databaseUrl);
  project.provide('redisUrl', redisUrl);
  return async () => {
    for (const stop of stops) await stop();
  };
}
