/** The one path from the control database to the queue (src/producer/dispatcher.ts), with plain-object ports. */
import { describe, expect, it } from 'vitest';
import type { DispatchedJob } from '../../src/core/jobs.js';
import { dispatchAndEnqueue, enqueue, recordAndDispatch, retryAndEnqueue, type DispatchStore, type JobQueue } from '../../src/producer/dispatcher.js';
import { TENANT_JOB_OPTIONS } from '../../src/queue.js';

const NOW = new Date('2024-06-05T12:00:00Z');
const job = (tenantId: string, delayMs = 0): DispatchedJob => ({ rolloutId: 'r1', tenantId, generation: 0, delayMs });

function fakeQueue() {
  const batches: { name: string; data: unknown; opts?: Record<string, unknown> }[][] = [];
  const queue = { addBulk: async (b: (typeof batches)[number]) => void batches.push(b) } as unknown as JobQueue;
  return { queue, batches };
}

function fakeStore(jobs: DispatchedJob[], calls: string[] = []): DispatchStore {
  return {
    dispatch: async (id, now) => {
      calls.push(`dispatch ${id} ${now.toISOString()}`);
      return jobs;
    },
    recordAttempt: async (a) => {
      calls.push(`record ${a.tenantId} ${a.state}`);
      return jobs;
    },
    retry: async (id) => {
      calls.push(`retry ${id}`);
      return id === 'r1' ? { retried: 2, jobs } : undefined;
    },
  };
}

describe('the dispatcher enqueues what the control database hands out', () => {
  it('dispatch: every job, with its deterministic id, its payload (ids only) and its window delay', async () => {
    const { queue, batches } = fakeQueue();
    const calls: string[] = [];
    const out = await dispatchAndEnqueue(fakeStore([job('a'), job('b', 5000)], calls), queue, 'r1', NOW);
    expect(calls).toEqual(['dispatch r1 2024-06-05T12:00:00.000Z']);
    expect(out.map((j) => j.tenantId)).toEqual(['a', 'b']);
    expect(batches).toEqual([
      [
        { name: 'migrate', data: { rolloutId: 'r1', tenantId: 'a', generation: 0 }, opts: { ...TENANT_JOB_OPTIONS, jobId: 'm.r1.a.0' } },
        { name: 'migrate', data: { rolloutId: 'r1', tenantId: 'b', generation: 0 }, opts: { ...TENANT_JOB_OPTIONS, jobId: 'm.r1.b.0', delay: 5000 } },
      ],
    ]);
  });

  it('record: the attempt first, then what it freed up', async () => {
    const { queue, batches } = fakeQueue();
    const calls: string[] = [];
    const attempt = {
      rolloutId: 'r1',
      tenantId: 'x',
      generation: 0,
      attempt: 1,
      state: 'succeeded' as const,
      applied: [],
      worker: 'w',
      startedAt: NOW,
      durationMs: 1,
    };
    await recordAndDispatch(fakeStore([job('next')], calls), queue, attempt, NOW);
    expect(calls).toEqual(['record x succeeded']);
    expect(batches.flat().map((b) => b.opts?.jobId)).toEqual(['m.r1.next.0']);
  });

  it('retry: enqueues what is due; an unknown rollout enqueues nothing', async () => {
    const { queue, batches } = fakeQueue();
    expect(await retryAndEnqueue(fakeStore([job('a')]), queue, 'r1', NOW)).toEqual({ retried: 2, jobs: [job('a')] });
    expect(await retryAndEnqueue(fakeStore([job('a')]), queue, 'nope', NOW)).toBeUndefined();
    expect(batches.flat().map((b) => b.opts?.jobId)).toEqual(['m.r1.a.0']);
  });

  it('nothing handed out: Redis is not called; a big window goes in batches of 1000', async () => {
    const { queue, batches } = fakeQueue();
    await enqueue(queue, []);
    expect(batches).toEqual([]);
    await enqueue(
      queue,
      Array.from({ length: 2500 }, (_, i) => job(`t${i}`)),
    );
    expect(batches.map((b) => b.length)).toEqual([1000, 1000, 500]);
  });
});
