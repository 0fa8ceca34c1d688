/**
 * The CLI contract through the built binary: usage errors exit 2 after a
 * subcommand too (commander's own process.exit(1) never wins), and a reader
 * that closes the pipe early ends the command quietly.
 */
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, REPO, cleanEnv, runCli } from '../helpers/cli.js';
import { migrationDir } from '../helpers/migrations.js';

const NOWHERE = { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere' };

describe('CLI contract through the binary', () => {
  it('unknown and misplaced options exit 2 wherever they are, and say which option', async () => {
    const cases = [
      ['pending', '--bogus'],
      ['list', '--bogus'],
      ['rollouts', '--bogus'],
      ['rollout', 'status', 'r1', '--bogus'],
      ['rollout', 'status', 'r1', '--wait'],
      ['rollout', '--wait', 'resume', 'r1'],
      ['schedule', 'list', '--cron', '* * * * *'],
      ['worker', '--bogus'],
      ['--bogus', 'status'],
    ];
    const results = await Promise.all(cases.map((args) => runCli(args, { env: NOWHERE })));
    for (const [i, r] of results.entries()) {
      expect(r.code, `${cases[i]!.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr, cases[i]!.join(' ')).toMatch(/unknown option '--(bogus|wait|cron)'|belongs to `flotilla (rollout|schedule)`/);
      expect(r.stderr).not.toMatch(/This is a bug|at .*\.js:\d+/);
    }
    // --json: the usage error as JSON on stdout too
    const j = await runCli(['pending', '--bogus', '--json'], { env: NOWHERE });
    expect(j.code).toBe(2);
    expect(JSON.parse(j.stdout).error).toMatchObject({ code: 'usage', kind: 'input' });
  });

  it('rollout resume <id> --wait is resume’s own option (it goes on to reach the control database)', async () => {
    const r = await runCli(['rollout', 'resume', 'r1', '--wait'], { env: NOWHERE });
    // exit 3: the option was accepted and the command tried the (unreachable) control database
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/cannot connect/);
  });

  const many = migrationDir(Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`${String(i + 1).padStart(4, '0')}_m.sql`, 'SELECT 1;'])));
  afterAll(() => many.cleanup());

  it('a closed pipe (`flotilla list | head -1`) ends quietly: no EPIPE stack, usual exit code', async () => {
    for (const args of [
      ['list', '--dir', many.dir],
      ['list', '--dir', many.dir, '--json'],
    ]) {
      const r = await new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO, env: cleanEnv(NOWHERE), stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        // like `head -1`: read the first chunk, then close the pipe
        child.stdout.once('data', () => child.stdout.destroy());
        child.on('error', reject);
        child.on('close', (code, signal) => resolve({ code, signal, stderr }));
      });
      expect(r.stderr, args.join(' ')).toBe('');
      expect(r.signal, args.join(' ')).toBeNull();
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
  });
});
