/**
 * Issue 9, section "Targets and selectors": no input ever means "everything"
 * (promise 10). Empty selector values (an unset shell variable), a missing
 * selector, a canary larger than the fleet, a tag matching nothing, and a
 * schedule with a bad zone or cron are bad input: exit 2, and nothing is
 * created (no rollout, no schedule, no registry change, no Redis key).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, why } from '../helpers/fleet.js';

let fleet: Fleet;
let file: string;

beforeAll(async () => {
  fleet = await Fleet.create();
  const r = await fleet.cli(['rollouts']);
  expect(r.code, why(r)).toBe(0);
  // a registry with tenants in it: today an empty selector would target them all
  const [a, b] = await fleet.addTenants([{ id: 'sel-a', tags: ['eu'] }, { id: 'sel-b' }]);
  await fleet.controlQuery(`INSERT INTO flotilla.tenants (id, database_url, tags) VALUES ($1, $2, '{eu}'), ($3, $4, '{}')`, [
    a!.id,
    a!.urlTemplate,
    b!.id,
    b!.urlTemplate,
  ]);
  file = fleet.writeTenantsFile([a!, b!]);
}, 240_000);

afterAll(async () => {
  await fleet?.cleanup();
}, 120_000);

async function snapshot() {
  const q = async (sql: string) => (await fleet.controlQuery(sql)).rows;
  return {
    rollouts: await q('SELECT id FROM flotilla.rollouts ORDER BY id'),
    schedules: await q('SELECT name FROM flotilla.schedules ORDER BY name'),
    registry: await q('SELECT id, database_url, schema, tags FROM flotilla.tenants ORDER BY id'),
    sets: await q('SELECT checksum FROM flotilla.migration_sets ORDER BY checksum'),
    redis: (await fleet.dumpRedis()).keys.sort(),
  };
}

const refused: { what: string; args: () => string[]; message: RegExp }[] = [
  { what: 'rollout --tenants "" (an unset variable)', args: () => ['rollout', '--tenants', ''], message: /--tenants: an empty file name/ },
  { what: 'rollout --tenants "" --all', args: () => ['rollout', '--tenants', '', '--all'], message: /--tenants: an empty file name/ },
  { what: 'rollout --tenants-query ""', args: () => ['rollout', '--tenants-query', '', '--all'], message: /--tenants-query: an empty query/ },
  { what: 'rollout --tenants-query "   "', args: () => ['rollout', '--tenants-query', '   '], message: /--tenants-query: an empty query/ },
  { what: 'rollout --only ""', args: () => ['rollout', '--only', ''], message: /--only: an empty tenant id/ },
  { what: 'rollout --only " , "', args: () => ['rollout', '--tenants', file, '--only', ' , '], message: /--only: an empty tenant id/ },
  { what: 'rollout --only "sel-a,"', args: () => ['rollout', '--only', 'sel-a,'], message: /--only: an empty tenant id/ },
  { what: 'rollout --tag ""', args: () => ['rollout', '--tag', ''], message: /--tag: an empty tag/ },
  { what: 'rollout with no selector (the registry)', args: () => ['rollout'], message: /no tenant selector: pass --only <ids>, --tag <tag>, or --all/ },
  { what: 'rollout --tenants <file> with no selector', args: () => ['rollout', '--tenants', file], message: /no tenant selector/ },
  { what: 'rollout --all --only sel-a', args: () => ['rollout', '--all', '--only', 'sel-a'], message: /give either --all or --only\/--tag, not both/ },
  {
    what: 'rollout --canary 3 over 2 tenants',
    args: () => ['rollout', '--tenants', file, '--all', '--canary', '3'],
    message: /--canary: 3 canary tenants asked for, but the selection has only 2/,
  },
  {
    what: 'rollout --canary "" (no canary gate by accident)',
    args: () => ['rollout', '--all', '--canary', ''],
    message: /--canary: "" is neither a number nor a tag/,
  },
  { what: 'rollout --wave-size ""', args: () => ['rollout', '--all', '--wave-size', ''], message: /--wave-size: "" is not a number or a percentage/ },
  { what: 'rollout --max-failures ""', args: () => ['rollout', '--all', '--max-failures', ''], message: /--max-failures: "" is not a number or a percentage/ },
  {
    what: 'rollout --tag that no tenant has',
    args: () => ['rollout', '--tag', 'nope'],
    message: /no tenant matches --tag nope \(no tenant has the tag "nope"\)/,
  },
  {
    what: 'rollout --tenants <file> --tag that no tenant has',
    args: () => ['rollout', '--tenants', file, '--tag', 'eu', '--tag', 'us'],
    message: /no tenant matches --tag eu us \(no tenant has the tag "us"\)/,
  },
  { what: 'schedule with no selector', args: () => ['schedule', '--name', 'nightly', '--cron', '0 2 * * *'], message: /no tenant selector/ },
  {
    what: 'schedule --tag that no tenant has',
    args: () => ['schedule', '--name', 'nightly', '--cron', '0 2 * * *', '--tag', 'nope'],
    message: /no tenant matches --tag nope/,
  },
  { what: 'schedule --tag ""', args: () => ['schedule', '--name', 'nightly', '--cron', '0 2 * * *', '--tag', ''], message: /--tag: an empty tag/ },
  {
    what: 'schedule --tenants ""',
    args: () => ['schedule', '--name', 'nightly', '--cron', '0 2 * * *', '--tenants', '', '--all'],
    message: /--tenants: an empty file name/,
  },
  {
    what: 'schedule --tz Mars/Olympus',
    args: () => ['schedule', '--name', 'nightly', '--cron', '0 2 * * *', '--tz', 'Mars/Olympus', '--all'],
    message: /--tz: unknown time zone "Mars\/Olympus"/,
  },
  {
    what: 'schedule --tz ""',
    args: () => ['schedule', '--name', 'nightly', '--cron', '0 2 * * *', '--tz', '', '--all'],
    message: /--tz: unknown time zone ""/,
  },
  {
    what: 'schedule --cron "61 2 * * *"',
    args: () => ['schedule', '--name', 'nightly', '--cron', '61 2 * * *', '--all'],
    message: /--cron: invalid cron expression "61 2 \* \* \*"/,
  },
  {
    what: 'schedule --cron "not a cron"',
    args: () => ['schedule', '--name', 'nightly', '--cron', 'not a cron', '--all'],
    message: /--cron: invalid cron expression "not a cron"/,
  },
];

describe('selectors: nothing given never means everything', () => {
  for (const c of refused) {
    it(`${c.what}: exit 2, nothing created`, async () => {
      const before = await snapshot();
      const r = await fleet.cli(c.args());
      expect(r.code, why(r)).toBe(2);
      expect(r.stderr, why(r)).toMatch(c.message);
      expect(r.stderr).not.toMatch(/This is a bug/);
      expect(await snapshot(), 'nothing created or changed').toEqual(before);
    });
  }

  it('the same selectors, given properly, are accepted (--only, --tag, --all)', async () => {
    const only = await fleet.cliJson<{ tenants: { id: string }[] }>(['rollout', '--tenants', file, '--only', 'sel-b', '--dry-run']);
    expect(only.code, why(only)).toBe(0);
    expect(only.json.tenants.map((t) => t.id)).toEqual(['sel-b']);
    const tag = await fleet.cliJson<{ tenants: { id: string }[] }>(['rollout', '--tag', 'eu', '--dry-run']);
    expect(tag.code, why(tag)).toBe(0);
    expect(tag.json.tenants.map((t) => t.id)).toEqual(['sel-a']);
    const all = await fleet.cliJson<{ tenants: { id: string }[] }>(['rollout', '--all', '--canary', '2', '--dry-run']);
    expect(all.code, why(all)).toBe(0);
    expect(all.json.tenants.map((t) => t.id)).toEqual(['sel-a', 'sel-b']);
  }, 120_000);
});
