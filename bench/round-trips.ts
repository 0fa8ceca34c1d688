/**
 * Round trips, counted inside a worker process: loaded with
 * `NODE_OPTIONS=--import <this file, built>` by bench/rollout.ts, never by
 * Flotilla itself. Every pg.Client#query call is one round trip (pg sends a
 * query only once the previous one returned, unless the client was made with
 * `pipeline: true`, which Flotilla's connections are not); every
 * pg.Client#connect opens a server session. Counts are kept per database, with
 * the first words of each query, and written as JSON to
 * `$FLOTILLA_BENCH_COUNTS.<pid>` (then reset) when the process receives
 * SIGUSR2, so the bench can read them for one rollout at a time.
 */
import { writeFileSync } from 'node:fs';
import pg from 'pg';

const file = process.env.FLOTILLA_BENCH_COUNTS;

interface PerDatabase {
  queries: number;
  connects: number;
  kinds: Record<string, number>;
}

let counts: Record<string, PerDatabase> = {};

function of(client: pg.Client): PerDatabase {
  const db = (client as unknown as { connectionParameters?: { database?: string } }).connectionParameters?.database ?? '?';
  counts[db] ??= { queries: 0, connects: 0, kinds: {} };
  return counts[db];
}

/** "SELECT * FROM flotilla.record_attempt" -> a short label for the breakdown */
function kind(text: unknown): string {
  const s = typeof text === 'string' ? text : ((text as { text?: string })?.text ?? '?');
  return s.replace(/\s+/g, ' ').trim().slice(0, 60);
}

if (file) {
  const proto = pg.Client.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const query = proto.query!;
  const connect = proto.connect!;
  proto.query = function (this: pg.Client, ...args: unknown[]) {
    const c = of(this);
    c.queries++;
    const k = kind(args[0]);
    c.kinds[k] = (c.kinds[k] ?? 0) + 1;
    return query.apply(this, args);
  };
  proto.connect = function (this: pg.Client, ...args: unknown[]) {
    of(this).connects++;
    return connect.apply(this, args);
  };
  process.on('SIGUSR2', () => {
    writeFileSync(`${file}.${process.pid}`, JSON.stringify(counts));
    counts = {};
  });
}
