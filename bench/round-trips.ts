/**
 * Round trips, counted inside a worker process: loaded with
 * `NODE_OPTIONS=--import <this file, built>` by bench/rollout.ts, never by
 * Flotilla itself. Counted on the wire, not on a pg API: the CLI is an esbuild
 * bundle with its own copy of pg, which a patch of node_modules' pg never
 * sees (the zeros of 2026-12-03). Every socket write is read as PostgreSQL
 * frontend messages: a startup packet opens a session on the database it
 * names; a simple Query ('Q') or an extended-protocol Sync ('S') is one round
 * trip (the client then waits for ReadyForQuery). Sockets that never sent a
 * startup packet (Redis) are ignored. Counts are kept per database, with the
 * first words of each query, and written as JSON to
 * `$FLOTILLA_BENCH_COUNTS.<pid>` (then reset) when the process receives
 * SIGUSR2, so the bench can read them for one rollout at a time.
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';

const file = process.env.FLOTILLA_BENCH_COUNTS;

interface PerDatabase {
  queries: number;
  connects: number;
  kinds: Record<string, number>;
}

let counts: Record<string, PerDatabase> = {};
const PROTOCOL_3 = 196608;
const SSL_REQUEST = 80877103;
const database = new WeakMap<net.Socket, string>();
/** the query a Sync still to come closes (pg may write Parse and Sync separately) */
const pendingOf = new WeakMap<net.Socket, string>();

function of(db: string): PerDatabase {
  counts[db] ??= { queries: 0, connects: 0, kinds: {} };
  return counts[db];
}

/** the text of a Query or Parse message, as a short label */
function label(body: Buffer, type: string): string {
  let at = 0;
  if (type === 'P') at = body.indexOf(0) + 1; // statement name first
  const end = body.indexOf(0, at);
  return body
    .subarray(at, end < 0 ? body.length : end)
    .toString('utf8')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 60);
}

/** the database a startup packet names */
function startup(buf: Buffer): string | undefined {
  if (buf.length < 8 || buf.readInt32BE(4) !== PROTOCOL_3) return undefined;
  const pairs = buf.subarray(8).toString('utf8').split('\0');
  for (let i = 0; i + 1 < pairs.length; i += 2) if (pairs[i] === 'database') return pairs[i + 1];
  const user = pairs.indexOf('user');
  return user >= 0 ? pairs[user + 1] : '?';
}

function count(socket: net.Socket, chunk: unknown): void {
  if (!Buffer.isBuffer(chunk)) return;
  const db = database.get(socket);
  if (db === undefined) {
    if (chunk.length >= 8 && chunk.readInt32BE(4) === SSL_REQUEST) return;
    const named = startup(chunk);
    if (named === undefined) return;
    database.set(socket, named);
    of(named).connects++;
    return;
  }
  const c = of(db);
  let pending = pendingOf.get(socket) ?? '';
  for (let at = 0; at + 5 <= chunk.length; ) {
    const type = String.fromCharCode(chunk[at]!);
    const length = chunk.readInt32BE(at + 1);
    const body = chunk.subarray(at + 5, at + 1 + length);
    if (type === 'Q' || type === 'P') pending = label(body, type);
    if (type === 'Q' || type === 'S') {
      c.queries++;
      c.kinds[pending || '?'] = (c.kinds[pending || '?'] ?? 0) + 1;
      pending = '';
    }
    at += 1 + length;
  }
  pendingOf.set(socket, pending);
}

if (file) {
  const write = net.Socket.prototype.write as (...args: unknown[]) => boolean;
  net.Socket.prototype.write = function (this: net.Socket, ...args: unknown[]) {
    try {
      count(this, args[0]);
    } catch {
      // a count is never worth a worker
    }
    return write.apply(this, args);
  } as typeof net.Socket.prototype.write;
  process.on('SIGUSR2', () => {
    writeFileSync(`${file}.${process.pid}`, JSON.stringify(counts));
    counts = {};
  });
}
