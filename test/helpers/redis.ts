/** A unique BullMQ prefix per test, and a clean-up that removes its keys. */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';

export function redisUrl(): string {
  return process.env.TEST_REDIS_URL ?? inject('redisUrl');
}

export function testPrefix(): string {
  return `{ft-${randomBytes(4).toString('hex')}}`;
}

export async function deleteKeys(prefix: string): Promise<void> {
  const r = new Redis(redisUrl());
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}
