/**
 * The terminal, without a database: the name `flotilla new` picks, the
 * progress line and its ETA, readable log lines, `--help` (validation switches,
 * global options and an example on every command) and the completion tree.
 */
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { BadArgumentError } from '../../src/core/errors.js';
import { buildProgram } from '../../src/cli/main.js';
import { EXAMPLES, commandPath } from '../../src/cli/help.js';
import { nextMigrationName } from '../../src/cli/commands/new.js';
import { bashCompletion, completionTree } from '../../src/cli/commands/completion.js';
import { Eta, progressLine, tenantStats } from '../../src/cli/print/progress.js';
import { formatLogLine, prettyByDefault } from '../../src/logger.js';

const counts = (c: Partial<Record<'pending' | 'scheduled' | 'running' | 'succeeded' | 'failed' | 'cancelled', number>>) => ({
  pending: 0,
  scheduled: 0,
  running: 0,
  succeeded: 0,
  failed: 0,
  cancelled: 0,
  ...c,
});
const noStats = { durationsMs: [], attempts: 0, retries: 0 };

describe('flotilla new: the next file name', () => {
  it('numbers after the highest version, keeping the zero padding', () => {
    expect(nextMigrationName('add_phone', []).name).toBe('001_add_phone.sql');
    expect(nextMigrationName('add_phone', ['001_a.sql', '002_b.sql', 'README.md']).name).toBe('003_add_phone.sql');
    expect(nextMigrationName('add_phone', ['0009_a.sql']).name).toBe('0010_add_phone.sql');
    expect(nextMigrationName('add_phone', ['7_a.sql', '12_b.sql']).name).toBe('013_add_phone.sql');
    expect(nextMigrationName('add phone  number', ['001_a.sql']).name).toBe('002_add_phone_number.sql');
    expect(nextMigrationName('x', ['999_a.sql']).name).toBe('1000_x.sql');
  });

  it('refuses a description that clashes with an existing file, in any case', () => {
    expect(() => nextMigrationName('Create_Users', ['001_create_users.sql'])).toThrow(/already exists: 001_create_users\.sql/);
  });

  it('refuses bad descriptions with a reason, as input errors (exit 2)', () => {
    for (const [d, reason] of [
      ['', /empty/],
      ['   ', /empty/],
      ['a/b', /"\/" is not allowed/],
      ['drop;table', /";" is not allowed/],
      ['éte', /"é" is not allowed/],
      ['_x', /must start with a letter or a digit/],
      ['003_add.sql', /description only/],
      ['add.sql', /description only/],
      ['x'.repeat(101), /at most 100/],
    ] as const) {
      let error: unknown;
      try {
        nextMigrationName(d, []);
      } catch (e) {
        error = e;
      }
      expect(error, d).toBeInstanceOf(BadArgumentError);
      expect((error as Error).message, d).toMatch(reason);
      expect((error as BadArgumentError).kind).toBe('input');
    }
  });
});

describe('progress line', () => {
  it('a halted rollout says where it stopped and what was cancelled, never "8/8 done"', () => {
    const line = progressLine({ state: 'halted', counts: counts({ succeeded: 2, failed: 1, cancelled: 5 }), stats: noStats, etaSeconds: undefined });
    expect(line).toContain('halted at 3/8 (1 failed, 5 cancelled)');
    expect(line).not.toMatch(/8\/8/);
    const cancelled = progressLine({ state: 'cancelled', counts: counts({ succeeded: 3, cancelled: 5 }), stats: noStats, etaSeconds: undefined });
    expect(cancelled).toContain('cancelled at 3/8 (5 cancelled)');
    expect(progressLine({ state: 'succeeded', counts: counts({ succeeded: 8 }), stats: noStats, etaSeconds: undefined })).toContain('succeeded: 8/8');
  });

  it('while running: finished/total, running, waiting, attempts and retries, the ETA', () => {
    const stats = tenantStats([
      { state: 'succeeded', attempts: 1, durationMs: 1000 },
      { state: 'succeeded', attempts: 3, durationMs: 3000 },
      { state: 'running', attempts: 2, durationMs: null },
      { state: 'pending', attempts: 0, durationMs: null },
    ]);
    expect(stats).toEqual({ durationsMs: [1000, 3000], attempts: 6, retries: 3 });
    const line = progressLine({ state: 'running', counts: counts({ succeeded: 2, running: 1, pending: 1 }), stats, etaSeconds: 4 });
    expect(line).toMatch(/^\[#{12}\.{12}\] 2\/4 · 1 running · 1 waiting · 6 attempts \(3 retries\) · ETA 4 s$/);
  });

  it("the ETA comes from the tenants' own durations and never counts up", () => {
    const eta = new Eta();
    // nothing finished yet: no ETA
    expect(eta.update(0, 10, 2, [])).toBeUndefined();
    // 10 left, 2 s each, 2 at once: 10 s
    expect(eta.update(1000, 10, 2, [2000])).toBe(10);
    // time passes, nothing finishes: it counts down (the old formula, elapsed/done, counted up here)
    expect(eta.update(4000, 10, 2, [2000])).toBe(7);
    // slower tenants finish: the fresh estimate (9 x 5 s / 2 = 22.5 s) is higher than the countdown: not shown higher
    const shown: number[] = [];
    let t = 4000;
    for (const d of [8000, 8000, 8000]) {
      t += 1000;
      const v = eta.update(t, 9, 2, [2000, d]);
      if (v !== undefined) shown.push(v);
    }
    for (let i = 1; i < shown.length; i++) expect(shown[i]).toBeLessThanOrEqual(shown[i - 1]!);
    // once the countdown has run out, no ETA rather than a higher one
    expect(eta.update(60_000, 5, 2, [2000, 8000, 8000])).toBeUndefined();
    // faster tenants: it drops at once
    const fast = new Eta();
    expect(fast.update(0, 100, 4, [4000])).toBe(100);
    expect(fast.update(1000, 90, 4, [4000, 400, 400, 400])).toBe(Math.ceil((90 * 1300) / 4 / 1000));
  });
});

describe('worker logs', () => {
  it('readable lines on a terminal: time, level, message, fields, the error and its hint', () => {
    const json = JSON.stringify({
      level: 50,
      time: Date.UTC(2026, 11, 3, 7, 4, 5, 123),
      pid: 1,
      hostname: 'h',
      name: 'flotilla',
      msg: 'tenant failed',
      tenant: 'acme',
      attempt: 2,
      err: { message: 'cannot connect to PostgreSQL at db-1:5432/acme', hint: 'Check the databaseUrl of tenant "acme"' },
    });
    expect(formatLogLine(json)).toBe(
      '07:04:05.123 ERROR flotilla: tenant failed  tenant=acme attempt=2\n    cannot connect to PostgreSQL at db-1:5432/acme\n    Check the databaseUrl of tenant "acme"\n',
    );
    expect(formatLogLine(json, true)).toContain('\x1b[31mERROR\x1b[0m');
    expect(formatLogLine('not json')).toBe('not json\n');
  });

  it('JSON unless stderr is a terminal; FLOTILLA_LOG_FORMAT decides otherwise', () => {
    expect(prettyByDefault({}, true)).toBe(true);
    expect(prettyByDefault({}, false)).toBe(false);
    expect(prettyByDefault({ FLOTILLA_LOG_FORMAT: 'json' }, true)).toBe(false);
    expect(prettyByDefault({ FLOTILLA_LOG_FORMAT: 'pretty' }, false)).toBe(true);
  });
});

function tree(): Command {
  return buildProgram(async () => {});
}

function allCommands(root: Command): Command[] {
  const out: Command[] = [];
  const walk = (c: Command) => {
    for (const s of c.commands) {
      out.push(s);
      walk(s);
    }
  };
  walk(root);
  return out;
}

describe('--help', () => {
  it('the program lists the validation switches with what they do', () => {
    const help = tree().helpInformation();
    expect(help).toContain('Validation switches (global):');
    for (const s of ['--allow-row-changes', '--allow-table-drop', '--allow-column-drop', '--allow-other-sessions', '--no-allow-table-creation'])
      expect(help).toContain(s);
    expect(help).toMatch(/--allow-row-changes\s+validation: row counts of existing tables may/);
  });

  it("every command shows the global options (and not its parent command's own) and has an example", () => {
    const root = tree();
    const commands = allCommands(root);
    expect(commands.length).toBeGreaterThan(15);
    for (const cmd of commands) {
      const path = commandPath(cmd);
      let help = '';
      cmd.configureOutput({ writeOut: (s) => (help += s), writeErr: () => {} });
      cmd.outputHelp();
      expect(help, path).toContain('Global Options:');
      for (const g of ['--dir <path>', '--database-url <url>', '--json', '--config <file>', '--allow-row-changes']) expect(help, `${path}: ${g}`).toContain(g);
      expect(EXAMPLES[path]?.length, `add an example for \`flotilla ${path}\` to src/cli/help.ts`).toBeGreaterThan(0);
      expect(help, path).toContain(`$ ${EXAMPLES[path]![0]}`);
    }
    let statusHelp = '';
    const status = commands.find((c) => commandPath(c) === 'rollout status')!;
    status.configureOutput({ writeOut: (s) => (statusHelp += s) });
    status.outputHelp();
    // rollout's own --wait belongs to rollout, not to `rollout status`
    expect(statusHelp).not.toContain('--wait');
  });
});

describe('completion', () => {
  it('is generated from the command tree: every command, subcommand and option', () => {
    const root = tree();
    const { nodes, valueOptions } = completionTree(root);
    const byPath = new Map(nodes.map((n) => [n.path, n]));
    for (const cmd of allCommands(root)) {
      const path = commandPath(cmd);
      expect(byPath.has(path), path).toBe(true);
      const parent = cmd.parent === root ? '' : commandPath(cmd.parent!);
      expect(byPath.get(parent)!.subcommands, path).toContain(cmd.name());
      for (const o of cmd.options) if (o.long) expect(byPath.get(path)!.options, `${path} ${o.long}`).toContain(o.long);
    }
    expect(byPath.get('pending')!.options).toContain('--dry-run');
    expect(byPath.get('')!.options).toContain('--allow-row-changes');
    expect(valueOptions).toContain('--dir');
    expect(valueOptions).not.toContain('--json');
    expect(bashCompletion(root)).toContain('complete -F _flotilla flotilla');
  });
});
