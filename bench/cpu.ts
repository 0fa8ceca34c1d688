/**
 * Where the CPU goes during a benchmark step, from /proc (Linux): the PostgreSQL server (the
 * postmaster, its live backends, and the backends that exited, which the kernel adds to the
 * postmaster's children time), Redis, the given worker processes, and this process (where the
 * floor's client runs). Cumulative seconds; subtract two readings.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface CpuReading {
  postgres: number;
  redis: number;
  workers: number;
  bench: number;
}

const TICK = 100; // clock ticks per second (getconf CLK_TCK on Linux)

function stat(pid: string): { comm: string; ppid: string; own: number; children: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = text.lastIndexOf(')');
    const comm = text.slice(text.indexOf('(') + 1, close);
    const f = text.slice(close + 2).split(' ');
    // after the command: state ppid ... utime(12) stime(13) cutime(14) cstime(15), counted from state = 1
    return { comm, ppid: f[1]!, own: (Number(f[11]) + Number(f[12])) / TICK, children: (Number(f[13]) + Number(f[14])) / TICK };
  } catch {
    return undefined;
  }
}

export function cpuNow(workerPids: number[]): CpuReading {
  const r: CpuReading = { postgres: 0, redis: 0, workers: 0, bench: 0 };
  const all = new Map<string, NonNullable<ReturnType<typeof stat>>>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const s = stat(pid);
    if (s) all.set(pid, s);
  }
  for (const [pid, s] of all) {
    if (s.comm === 'postgres') {
      r.postgres += s.own;
      // the postmaster: its parent is not a postgres process; its children time holds the exited backends
      if (all.get(s.ppid)?.comm !== 'postgres') r.postgres += s.children;
    } else if (s.comm === 'redis-server') r.redis += s.own;
    if (workerPids.includes(Number(pid))) r.workers += s.own;
  }
  const u = process.cpuUsage();
  r.bench = (u.user + u.system) / 1e6;
  return r;
}

export function cpuSince(before: CpuReading, workerPids: number[]): CpuReading {
  const now = cpuNow(workerPids);
  return { postgres: now.postgres - before.postgres, redis: now.redis - before.redis, workers: now.workers - before.workers, bench: now.bench - before.bench };
}
