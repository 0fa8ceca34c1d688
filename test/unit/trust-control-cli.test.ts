/**
 * The CLI contract, over the whole command tree (every command and subcommand,
 * whoever added it): an unknown option is a usage error wherever it appears,
 * and an option given to a parent command never silently reaches (or is
 * swallowed instead of) a subcommand. Parsed in process with buildProgram; the
 * exit codes of the built binary are checked in
 * test/integration/trust-control-cli.test.ts.
 */
import { type Command, CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram, mergedOptions } from '../../src/cli/main.js';

interface Ran {
  path: string;
  options: Record<string, any>;
}

function program(): { program: Command; ran: Ran[] } {
  const ran: Ran[] = [];
  const p = buildProgram(async (_action, cmd) => {
    const names: string[] = [];
    for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
    ran.push({ path: names.join(' '), options: mergedOptions(cmd) });
  });
  const quiet = (c: Command) => {
    c.configureOutput({ writeErr: () => {}, writeOut: () => {} });
    c.commands.forEach(quiet);
  };
  quiet(p);
  return { program: p, ran };
}

/** Every runnable command: its path and placeholder arguments for its required operands. */
function leaves(root: Command): { path: string[]; args: string[]; cmd: Command }[] {
  const out: { path: string[]; args: string[]; cmd: Command }[] = [];
  const walk = (c: Command, path: string[]) => {
    for (const sub of c.commands) {
      const p = [...path, sub.name()];
      out.push({ path: p, args: sub.registeredArguments.filter((a) => a.required).map(() => 'x1'), cmd: sub });
      walk(sub, p);
    }
  };
  walk(root, []);
  return out;
}

async function parse(args: string[]): Promise<{ error?: CommanderError; ran: Ran[] }> {
  const { program: p, ran } = program();
  try {
    await p.parseAsync(['node', 'flotilla', ...args]);
    return { ran };
  } catch (e) {
    if (e instanceof CommanderError) return { error: e, ran };
    throw e;
  }
}

describe('CLI contract: options', () => {
  const tree = leaves(program().program);

  it('the tree is the one we think (every command is covered below)', () => {
    const paths = tree.map((t) => t.path.join(' '));
    for (const p of [
      'status',
      'list',
      'pending',
      'run',
      'rollout',
      'rollout status',
      'rollout retry',
      'rollout cancel',
      'rollout resume',
      'rollouts',
      'worker',
      'schedule',
      'schedule list',
      'schedule remove',
    ])
      expect(paths).toContain(p);
  });

  it('--bogus after any command or subcommand is an unknown option, and nothing runs', async () => {
    for (const t of tree) {
      for (const args of [
        [...t.path, ...t.args, '--bogus'],
        [...t.path, '--bogus', ...t.args],
        ['--bogus', ...t.path, ...t.args],
      ]) {
        const r = await parse(args);
        expect(r.error?.code, args.join(' ')).toBe('commander.unknownOption');
        expect(r.ran, args.join(' ')).toEqual([]);
      }
    }
  });

  it("a parent command's option is never taken by a subcommand nor swallowed by the parent", async () => {
    let checked = 0;
    for (const t of tree) {
      const parent = t.cmd.parent!;
      if (!parent.parent) continue; // the program's own options are global: accepted anywhere
      const globals = new Set(parent.parent.options.map((o) => o.long));
      for (const o of parent.options) {
        if (globals.has(o.long)) continue;
        const value = o.required || o.optional ? ['v1'] : [];
        const own = t.cmd.options.find((x) => x.long === o.long);
        // after the subcommand: the subcommand's own option if it declares one, else unknown
        const after = await parse([...t.path, ...t.args, o.long!, ...value]);
        if (own) {
          expect(after.error, `${t.path.join(' ')} ${o.long}`).toBeUndefined();
          expect(after.ran[0]?.path, `${t.path.join(' ')} ${o.long}`).toBe(t.path.join(' '));
        } else expect(after.error?.code, `${t.path.join(' ')} ... ${o.long}`).toBe('commander.unknownOption');
        checked++;
        // before the subcommand: it belongs to the parent, which does not run: refused
        // (a variadic option such as --tag takes the words after it as its values: no subcommand there)
        if (o.variadic) continue;
        const before = await parse([...t.path.slice(0, -1), o.long!, ...value, t.path.at(-1)!, ...t.args]);
        expect(before.error?.code, `${o.long} before ${t.path.join(' ')}`).toBe('commander.misplacedOption');
        expect(before.ran).toEqual([]);
      }
    }
    expect(checked).toBeGreaterThan(20);
  });

  it('rollout resume and rollout retry have their own --wait', async () => {
    for (const sub of ['resume', 'retry']) {
      const r = await parse(['rollout', sub, 'r1', '--wait']);
      expect(r.error).toBeUndefined();
      expect(r.ran).toEqual([{ path: `rollout ${sub}`, options: expect.objectContaining({ wait: true }) }]);
    }
    const status = await parse(['rollout', 'status', 'r1', '--wait']);
    expect(status.error?.code).toBe('commander.unknownOption');
  });

  it('global options work before and after any subcommand, the nearest explicit value winning over defaults', async () => {
    for (const t of tree.filter((x) => !x.cmd.commands.length)) {
      for (const args of [
        ['--json', '--dir', 'd1', '--no-validate', ...t.path, ...t.args],
        [...t.path, ...t.args, '--json', '--dir', 'd1', '--no-validate'],
      ]) {
        const r = await parse(args);
        expect(r.error, args.join(' ')).toBeUndefined();
        expect(r.ran[0]!.options, args.join(' ')).toMatchObject({ json: true, dir: 'd1', validate: false });
      }
    }
    const r = await parse(['status']);
    expect(r.ran[0]!.options).toMatchObject({ validate: true });
    expect(r.ran[0]!.options.json).toBeUndefined();
  });
});
