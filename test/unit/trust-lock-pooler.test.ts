/**
 * The pooler check (adapters/pg/pooler.ts) against simulated poolers: plain
 * objects whose "server connections" are handed out LIFO, FIFO, or kept per
 * client (session pooling), so every pool order the real PgBouncer test does
 * not reach is covered.
 */
import { describe, expect, it } from 'vitest';
import { assertSessionsKept } from '../../src/adapters/pg/pooler.js';
import { SessionPoolerError } from '../../src/core/errors.js';

type Order = 'lifo' | 'fifo';

/** A transaction pooler with `size` server processes: each statement gets one from the idle list and gives it back. */
function pooler(order: Order, size: number) {
  const idle = Array.from({ length: size }, (_, i) => 9000 + i);
  const client = () => ({
    processID: 123456789, // the pooler's own key, never a backend pid
    async query() {
      const pid = order === 'lifo' ? idle.pop()! : idle.shift()!;
      idle.push(pid);
      return { rows: [{ pid }] } as any;
    },
  });
  return { client };
}

function direct(pid: number) {
  return { processID: pid, query: async () => ({ rows: [{ pid }] }) as any };
}

function sessionPooler() {
  let next = 7000;
  return {
    client: () => {
      const pid = next++;
      return { processID: 42, query: async () => ({ rows: [{ pid }] }) as any };
    },
  };
}

describe('assertSessionsKept', () => {
  it('direct connections pass without more than one statement each', async () => {
    let calls = 0;
    const count = (s: ReturnType<typeof direct>) => ({ ...s, query: (...a: []) => (calls++, s.query(...a)) });
    const [m, l] = [count(direct(101)), count(direct(102))];
    await assertSessionsKept(m, l, 'db:5432/x');
    expect(calls).toBe(2);
    // remembered: no statement the second time
    await assertSessionsKept(m, l, 'db:5432/x');
    expect(calls).toBe(2);
  });

  it('a session pooler (own keys, one server process per client) passes', async () => {
    const p = sessionPooler();
    await expect(assertSessionsKept(p.client(), p.client(), 'pgb:6432/x')).resolves.toBeUndefined();
  });

  for (const order of ['lifo', 'fifo'] as const) {
    for (const size of [1, 2, 3, 5]) {
      it(`a transaction pooler, ${order.toUpperCase()}, ${size} server connection(s): refused, naming the target`, async () => {
        const p = pooler(order, size);
        const e = await assertSessionsKept(p.client(), p.client(), 'pgb:6432/x').then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(e).toBeInstanceOf(SessionPoolerError);
        expect((e as SessionPoolerError).message).toContain('pgb:6432/x');
        expect((e as SessionPoolerError).kind).toBe('input');
      });
    }
  }
});
