/**
 * The terminal, through the built CLI: `init` and `new` (what they create, what
 * they refuse, never overwriting), bash completion run by bash itself, dry runs
 * marked on every line, one statement numbering in `list --json` and in errors,
 * and connection hints that name where the URL came from.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, dropAllTestDatabases } from '../helpers/db.js';
import { migrationDir } from '../helpers/migrations.js';
import { ConnectionError } from '../../src/core/errors.js';
import { pgTenants } from '../../src/worker/ports.js';
import { parseTenantsFile } from '../../src/core/tenants.js';

const temps: string[] = [];
afterAll(async () => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
  await dropAllTestDatabases();
});
function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'flotilla-term-'));
  temps.push(d);
  return d;
}
const show = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** A TCP port on which nothing listens (taken from the OS, then closed). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}

describe('flotilla init and new', () => {
  it('init creates the three things and says so; run again it keeps them, unchanged', async () => {
    const cwd = temp();
    const r = await runCli(['init'], { cwd });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain('✓ Created migrations/');
    expect(r.stdout).toContain('✓ Created flotilla.config.json');
    expect(r.stdout).toContain('✓ Created tenants.example.yaml');
    expect(readdirSync(join(cwd, 'migrations'))).toEqual([]);
    // the files it writes are ones Flotilla itself accepts
    expect(parseTenantsFile(readFileSync(join(cwd, 'tenants.example.yaml'), 'utf8'), 'yaml', 'tenants.example.yaml').map((t) => t.id)).toEqual([
      'acme',
      'globex',
      'initech',
    ]);
    writeFileSync(join(cwd, 'flotilla.config.json'), '{ "dir": "migrations", "lockTimeout": "3s" }\n');
    const again = await runCli(['init'], { cwd });
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout).toContain('= Kept flotilla.config.json');
    expect(again.stdout).toContain('Nothing to do');
    expect(readFileSync(join(cwd, 'flotilla.config.json'), 'utf8')).toBe('{ "dir": "migrations", "lockTimeout": "3s" }\n');
  });

  it('new creates the next NNN_description.sql; bad input and clashes: exit 2, nothing written', async () => {
    const cwd = temp();
    expect((await runCli(['init'], { cwd })).code).toBe(0);
    const first = await runCli(['new', 'create users table'], { cwd });
    expect(first.code, show(first)).toBe(0);
    expect(first.stdout).toContain('✓ Created migrations/001_create_users_table.sql');
    const text = readFileSync(join(cwd, 'migrations', '001_create_users_table.sql'), 'utf8');
    expect(text).toMatch(/^-- Migration: Create users table\n-- Created: \d{4}-\d{2}-\d{2}\n/);
    writeFileSync(join(cwd, 'migrations', '001_create_users_table.sql'), `${text}\nCREATE TABLE users (id int);\n`);
    const json = await runCli(['new', 'add_phone', '--json'], { cwd });
    expect(json.code, show(json)).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ name: '002_add_phone.sql', version: '2' });

    for (const [args, message] of [
      [['new', 'add_phone'], /already exists: 002_add_phone\.sql/],
      [['new', 'a/b'], /"\/" is not allowed/],
      [['new', '003_x.sql'], /description only/],
      [['new', ''], /empty/],
    ] as const) {
      const r = await runCli([...args], { cwd });
      expect(r.code, `${args.join(' ')}\n${show(r)}`).toBe(2);
      expect(r.stderr.split('\n')[0], args.join(' ')).toMatch(message);
      const j = await runCli([...args, '--json'], { cwd });
      expect(j.code).toBe(2);
      expect(JSON.parse(j.stdout).error).toMatchObject({ code: 'bad_argument', kind: 'input' });
    }
    expect(readdirSync(join(cwd, 'migrations')).sort()).toEqual(['001_create_users_table.sql', '002_add_phone.sql']);
    const noDir = await runCli(['new', 'x', '--dir', join(cwd, 'nowhere')], { cwd });
    expect(noDir.code, show(noDir)).toBe(2);
    expect(noDir.stderr).toContain('flotilla init');
    expect(existsSync(join(cwd, 'nowhere'))).toBe(false);
  });
});

describe('bash completion', () => {
  const complete = (script: string, words: string[], env: Record<string, string> = {}, cwd?: string): string[] => {
    const line = words.map((w) => `'${w}'`).join(' ');
    const r = spawnSync(
      'bash',
      [
        '--norc',
        '-c',
        `eval "$(cat)"; complete -p flotilla >&2; COMP_WORDS=(${line}); COMP_CWORD=${words.length - 1}; _flotilla; printf '%s\\n' "\${COMPREPLY[@]}"`,
      ],
      { input: script, encoding: 'utf8', env: { ...process.env, ...env }, cwd },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('complete -F _flotilla flotilla');
    return r.stdout.split('\n').filter(Boolean).sort();
  };

  it('completes commands, subcommands, options, directories and migration names', async () => {
    const r = await runCli(['completion', 'bash']);
    expect(r.code, show(r)).toBe(0);
    const script = r.stdout;
    expect(complete(script, ['flotilla', ''])).toEqual(expect.arrayContaining(['status', 'list', 'pending', 'run', 'new', 'init', 'rollout', 'worker']));
    expect(complete(script, ['flotilla', 'roll'])).toEqual(['rollout', 'rollouts']);
    expect(complete(script, ['flotilla', 'rollout', ''])).toEqual(expect.arrayContaining(['status', 'retry', 'cancel', 'resume', '--tenants', '--wait']));
    expect(complete(script, ['flotilla', 'rollout', 'retry', '--'])).toEqual(expect.arrayContaining(['--wait', '--refresh', '--json']));
    expect(complete(script, ['flotilla', 'rollout', 'status', '--'])).not.toContain('--wait');
    expect(complete(script, ['flotilla', 'pending', '--d'])).toEqual(['--database-url', '--dir', '--dry-run']);
    expect(complete(script, ['flotilla', '--allow-row'])).toEqual(['--allow-row-changes']);
    // values: directories for --dir, nothing for --database-url, and the value is not taken for a command
    const cwd = temp();
    mkdirSync(join(cwd, 'migrations'));
    mkdirSync(join(cwd, 'more'));
    writeFileSync(join(cwd, 'migrations', '001_a.sql'), 'SELECT 1;');
    writeFileSync(join(cwd, 'migrations', '002_b.sql'), 'SELECT 1;');
    expect(complete(script, ['flotilla', '--dir', 'm'], {}, cwd)).toEqual(['migrations', 'more']);
    expect(complete(script, ['flotilla', '--database-url', ''], {}, cwd)).toEqual([]);
    expect(complete(script, ['flotilla', '--dir', 'status', ''], {}, cwd)).toEqual(expect.arrayContaining(['status', 'list']));
    expect(complete(script, ['flotilla', 'run', '0'], {}, cwd)).toEqual(['001_a.sql', '002_b.sql']);
    // zsh: the same completion through bashcompinit
    const zsh = await runCli(['completion', 'zsh']);
    expect(zsh.code).toBe(0);
    expect(zsh.stdout).toContain('bashcompinit');
    expect(zsh.stdout).toContain('complete -F _flotilla flotilla');
    const fish = await runCli(['completion', 'fish']);
    expect(fish.code).toBe(2);
  });
});

describe('dry runs and statement numbers', { timeout: 120_000 }, () => {
  it('pending --dry-run says on every line that nothing is kept, and keeps nothing', async () => {
    const db = await createTestDatabase('term');
    const d = migrationDir({ '001_a.sql': 'CREATE TABLE a (id int);\n', '002_b.sql': 'BEGIN;\nCREATE TABLE b (id int);\nCOMMIT;\n' });
    temps.push(d.dir);
    const r = await runCli(['pending', '--dry-run', '--dir', d.dir], { env: { DATABASE_URL: db.url } });
    expect(r.code, show(r)).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l.trim());
    expect(lines.length).toBeGreaterThan(4);
    for (const l of lines) expect(l).toMatch(/^\[dry run: nothing kept\] /);
    expect(r.stdout).toContain('2 would apply, 0 failed (everything was rolled back)');
    expect((await db.query(`SELECT to_regclass('a') AS a, to_regclass('b') AS b, to_regclass('migrations') AS m`)).rows[0]).toEqual({
      a: null,
      b: null,
      m: null,
    });
  });

  it('the number an error gives a statement is the one list --json counts to (BEGIN/COMMIT not counted)', async () => {
    const db = await createTestDatabase('term');
    const d = migrationDir({
      '001_breaks.sql': '-- header\nBEGIN;\nCREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\nINSERT INTO nowhere VALUES (1);\nCOMMIT;\n',
    });
    temps.push(d.dir);
    const list = await runCli(['list', '--json', '--dir', d.dir]);
    expect(list.code, show(list)).toBe(0);
    const count = JSON.parse(list.stdout).migrations[0].statements;
    expect(count).toBe(3);
    const r = await runCli(['pending', '--dir', d.dir], { env: { DATABASE_URL: db.url } });
    expect(r.code, show(r)).toBe(1);
    // the last statement of the file that runs: number 3 of 3, on line 5
    expect(r.stdout).toContain('  statement 3 (line 5): INSERT INTO nowhere VALUES (1)');
    const j = await runCli(['pending', '--json', '--dir', d.dir], { env: { DATABASE_URL: db.url } });
    const statement = JSON.parse(j.stdout).failed.error.statement;
    expect(statement).toMatchObject({ number: 3, index: 2, line: 5 });
    expect(JSON.parse(j.stdout).failed.error.message).toContain('at statement 3 (line 5)');
  });
});

describe('connection hints name where the URL came from', () => {
  it('the CLI: the database URL options, not only DATABASE_URL', async () => {
    const port = await closedPort();
    const d = migrationDir({ '001_a.sql': 'SELECT 1;\n' });
    temps.push(d.dir);
    const r = await runCli(['status', '--dir', d.dir, '--database-url', `postgres://postgres@127.0.0.1:${port}/x`]);
    expect(r.code, show(r)).toBe(3);
    expect(r.stderr).toContain('check the host and port in the database URL (--database-url, DATABASE_URL or the config file)');
  });

  it("a worker's tenant: the tenant's entry", async () => {
    const port = await closedPort();
    let error: unknown;
    try {
      await pgTenants('w-test').connect(`postgres://postgres@127.0.0.1:${port}/acme`, 'acme');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as ConnectionError).hint).toContain('the databaseUrl of tenant "acme" (its entry in the tenants file, or the registry)');
    expect((error as ConnectionError).hint).not.toContain('DATABASE_URL');
  });
});
