/**
 * `rollout --wait` on a real fleet, as a script sees it (stderr not a
 * terminal): the progress lines say where a halted rollout stopped ("halted at
 * 1/4 (1 failed, 3 cancelled)", never "4/4 done"), a finished one how many
 * attempts it took, and the final table has the attempts column.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, why } from '../helpers/fleet.js';
import { migrationDir } from '../helpers/migrations.js';

let fleet: Fleet;
const dirs: { cleanup(): void }[] = [];

beforeAll(async () => {
  fleet = await Fleet.create();
  await fleet.startWorkers(1);
}, 240_000);

afterAll(async () => {
  await fleet?.cleanup();
  for (const d of dirs) d.cleanup();
}, 120_000);

const SET = {
  '001_create_accounts.sql': 'CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL);\n',
  '002_create_products.sql':
    'CREATE TABLE IF NOT EXISTS products (id serial PRIMARY KEY, name text NOT NULL);\nCREATE INDEX products_name ON products (name);\n',
};

describe('rollout --wait progress', { timeout: 180_000 }, () => {
  it('a halted rollout says where it stopped and what was cancelled', async () => {
    const d = migrationDir(SET);
    dirs.push(d);
    const tenants = await fleet.addTenants([{ id: 'pg-bad', tags: ['canary'] }, { id: 'pg-1' }, { id: 'pg-2' }, { id: 'pg-3' }]);
    // the canary's products table has no `name`: 002 fails there, and the rollout halts
    await tenants[0]!.query('CREATE TABLE products (id text)');
    const r = await fleet.cli(['rollout', '--tenants', fleet.writeTenantsFile(tenants), '--all', '--canary', 'canary', '--wait', '--dir', d.dir]);
    expect(r.code, why(r)).toBe(1);
    const progress = r.stderr.split('\n').filter((l) => l.startsWith('['));
    expect(progress.at(-1), why(r)).toMatch(/^\[#{6}\.{18}\] halted at 1\/4 \(1 failed, 3 cancelled\) · 1 attempt$/);
    expect(r.stderr).not.toMatch(/4\/4/);
    expect(r.stdout).toMatch(/^\s+tenant\s+state\s+applied\s+attempts\s+duration\s+error$/m);
    expect(r.stdout).toMatch(/^✗ pg-bad +failed +1 +1 /m);
    expect(r.stdout).toContain('Total: 0 succeeded, 1 failed, 3 cancelled, 0 running, 0 waiting · 1 attempt (0 retries)');
  });

  it('a rollout that succeeds says so, with its attempts', async () => {
    const d = migrationDir(SET);
    dirs.push(d);
    const tenants = await fleet.addTenants([{ id: 'pg-4' }, { id: 'pg-5' }, { id: 'pg-6', kind: 'schema' }]);
    const r = await fleet.cli(['rollout', '--tenants', fleet.writeTenantsFile(tenants), '--all', '--wait', '--dir', d.dir]);
    expect(r.code, why(r)).toBe(0);
    const progress = r.stderr.split('\n').filter((l) => l.startsWith('['));
    expect(progress.at(-1), why(r)).toMatch(/^\[#{24}\] succeeded: 3\/3 · 3 attempts$/);
    // while it ran (when a line was printed): finished/total and who is running, never more finished than the total
    for (const l of progress.slice(0, -1)) expect(l).toMatch(/^\[[#.]{24}\] [0-3]\/3 · /);
  });
});
