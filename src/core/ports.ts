/**
 * Ports the core and the engine ask for instead of reaching for the process:
 * time and chance. Injected so that tests can drive them (a fake clock, a
 * fixed random source); the real ones are in adapters/clock.ts.
 */

/** Monotonic time in milliseconds (durations, ages of caches, lock waits) and a way to wait. */
export interface Clock {
  /** milliseconds from an arbitrary origin; only differences mean something */
  now(): number;
  /** resolves after `ms` milliseconds (at once for ms <= 0) */
  sleep(ms: number): Promise<void>;
}

/** A number in [0, 1), like Math.random: jitter for backoffs and retry delays. */
export type Random = () => number;
