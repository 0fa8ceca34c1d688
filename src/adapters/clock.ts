/** The real clock and random source behind core/ports.ts (the defaults wherever they are injected). */
import { performance } from 'node:perf_hooks';
import type { Clock, Random } from '../core/ports.js';

export const systemClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms))),
};

export const systemRandom: Random = () => Math.random();
