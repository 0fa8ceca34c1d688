/** An option that takes one value, given twice, is a usage error (exit 2): commander would keep the last one silently. */
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

const NOWHERE = { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere' };

describe('repeated options', () => {
  it('--only a --only b, --tenants twice, --dir twice, --schema twice: exit 2, naming the option', async () => {
    const cases = [
      ['rollout', '--only', 'a', '--only', 'b'],
      ['rollout', '--tenants', 'a.yaml', '--tenants', 'b.yaml', '--all'],
      ['pending', '--dir', 'x', '--dir', 'y'],
      ['status', '--schema', 'a', '--schema', 'b'],
      ['rollout', 'retry', 'r1', '--wait', '--config', 'a.json', '--config', 'b.json'],
    ];
    const results = await Promise.all(cases.map((args) => runCli(args, { env: NOWHERE })));
    for (const [i, r] of results.entries()) {
      const name = cases[i]!.join(' ');
      expect(r.code, `${name}: ${r.stderr}`).toBe(2);
      expect(r.stderr, name).toMatch(/option '--(only|tenants|dir|schema|config) <\w+>' argument '.*' is invalid\. given more than once/);
    }
  });

  it('variadic and list options still take several values', async () => {
    // --tag is variadic: both tags count (the command then fails on the unreachable database, exit 3)
    const r = await runCli(['rollout', '--tag', 'eu', '--tag', 'us', '--tenants', 'none.yaml'], { env: NOWHERE });
    expect(r.stderr).not.toMatch(/given more than once/);
  });
});
