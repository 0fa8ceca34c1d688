/**
 * Issue 9, section 6: a real hot standby. A primary and a streaming standby
 * are made from scratch (initdb, pg_basebackup -R) on free ports in a temp dir,
 * run as the `postgres` OS user (Postgres refuses root). Skipped where the
 * server binaries are not installed.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationDir } from '../helpers/migrations.js';
import { runCli } from '../helpers/cli.js';

const BIN = ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/17/bin'].find((b) => existsSync(join(b, 'pg_basebackup')));

function osUser(): { uid: number; gid: number } | undefined {
  const me = userInfo();
  if (me.uid !== 0) return { uid: me.uid, gid: me.gid };
  try {
    return { uid: Number(execFileSync('id', ['-u', 'postgres'])), gid: Number(execFileSync('id', ['-g', 'postgres'])) };
  } catch {
    return undefined;
  }
}

const USER = BIN ? osUser() : undefined;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

let dir = '';
let primary = 0;
let standby = 0;
const run = (cmd: string, args: string[]) => execFileSync(join(BIN!, cmd), args, { uid: USER!.uid, gid: USER!.gid, stdio: 'ignore', timeout: 120_000 });
const started: string[] = [];

beforeAll(async () => {
  if (!BIN || !USER) return;
  dir = mkdtempSync(join(tmpdir(), 'flotilla-standby-'));
  chownSync(dir, USER.uid, USER.gid);
  [primary, standby] = [await freePort(), await freePort()];
  const opts = (port: number) => `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c shared_buffers=16MB`;
  run('initdb', ['-D', join(dir, 'p'), '-A', 'trust', '-U', 'postgres']);
  run('pg_ctl', ['-D', join(dir, 'p'), '-o', opts(primary), '-l', join(dir, 'p.log'), '-w', 'start']);
  started.push(join(dir, 'p'));
  run('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary), '-U', 'postgres', '-D', join(dir, 's'), '-R']);
  run('pg_ctl', ['-D', join(dir, 's'), '-o', opts(standby), '-l', join(dir, 's.log'), '-w', 'start']);
  started.push(join(dir, 's'));
}, 180_000);

afterAll(() => {
  for (const d of started.reverse()) {
    try {
      run('pg_ctl', ['-D', d, '-m', 'immediate', 'stop']);
    } catch {}
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!BIN || !USER)('O: a hot standby', () => {
  it('pending on a standby: exit 3 saying "standby" and "primary", nothing changed; the primary migrates; status reads the standby', async () => {
    const d = migrationDir({ '001_create_t1.sql': 'CREATE TABLE t1 (id int);', '002_create_t2.sql': 'CREATE TABLE t2 (id int);' });
    try {
      const url = (port: number) => `postgres://postgres@127.0.0.1:${port}/postgres`;
      const r = await runCli(['--dir', d.dir, '--database-url', url(standby), 'pending']);
      expect(r.code, r.stdout + r.stderr).toBe(3);
      expect(r.stderr).toContain('is a standby');
      expect(r.stderr).toContain('primary');
      expect(r.stderr).not.toMatch(/This is a bug|unexpected error/);
      const j = await runCli(['--dir', d.dir, '--database-url', url(standby), 'pending', '--json']);
      expect(JSON.parse(j.stdout).error).toMatchObject({ code: 'target_refused', kind: 'transient', reason: 'standby' });

      expect((await runCli(['--dir', d.dir, '--database-url', url(primary), 'run', '001_create_t1.sql'])).code).toBe(0);
      // replicated: the standby now has the tracking table; 002 is pending there and still refused
      let status = '';
      for (let i = 0; i < 100 && !status.includes('✓ 001_create_t1.sql'); i++) {
        status = (await runCli(['--dir', d.dir, '--database-url', url(standby), 'status'])).stdout;
        await new Promise((res) => setTimeout(res, 200));
      }
      expect(status).toContain('Total: 1 applied, 1 pending');
      const again = await runCli(['--dir', d.dir, '--database-url', url(standby), 'pending']);
      expect(again.code, again.stdout + again.stderr).toBe(3);
      expect(again.stdout + again.stderr).toContain('standby');
      expect(again.stdout + again.stderr).not.toMatch(/This is a bug|unexpected error/);
    } finally {
      d.cleanup();
    }
  }, 120_000);
});
