/**
 * Flags -> typed requests (src/cli/requests.ts) and the one builder of a rollout's frozen
 * options (core rolloutOptions): `rollout` and `schedule` read --max-failures, --concurrency
 * and --per-server the same way, so a schedule's "10%" is 10% of its tenants (it was 0).
 */
import { describe, expect, it } from 'vitest';
import { parseRolloutCreate, parseRolloutSettings, parseSchedule, parseWorker, parseRolloutsList } from '../../src/cli/requests.js';
import { rolloutOptions } from '../../src/core/rollout-plan.js';
import { ConfigError, SelectorError } from '../../src/core/errors.js';

const engine = { trackingTable: 'migrations', lockTimeoutMs: 10_000, statementTimeoutMs: 3_600_000, validate: true, validation: {}, singleTransaction: false };
const scheduleFlags = { name: 'nightly', cron: '0 2 * * *', tz: 'UTC', all: true };

describe('rollout and schedule requests', () => {
  it('a schedule --max-failures 10% freezes the options a rollout --max-failures 10% freezes', () => {
    for (const [maxFailures, tenants, expected] of [
      ['10%', 30, 3],
      ['10%', 4, 1],
      ['50%', 4, 2],
      ['2', 30, 2],
    ] as const) {
      const rollout = parseRolloutCreate({ all: true, maxFailures, concurrency: '3', perServer: '1' });
      const schedule = parseSchedule({ ...scheduleFlags, maxFailures, concurrency: '3', perServer: '1' });
      expect(schedule.settings).toEqual(rollout.settings);
      const fromSchedule = rolloutOptions(schedule.settings, tenants, false, engine);
      expect(fromSchedule).toEqual(rolloutOptions(rollout.settings, tenants, false, engine));
      expect(fromSchedule).toMatchObject({ canary: false, maxFailures: expected, concurrency: 3, perServer: 1, dryRun: false, engine });
    }
  });

  it('no --max-failures means 0, no --concurrency / --per-server means none', () => {
    expect(rolloutOptions(parseSchedule(scheduleFlags).settings, 10, false, engine)).toEqual({
      canary: false,
      maxFailures: 0,
      concurrency: null,
      perServer: null,
      dryRun: false,
      engine,
    });
  });

  it('parses every rollout flag once, refusing empty and malformed values', () => {
    expect(parseRolloutCreate({ tenants: 't.yaml', tag: ['eu'], canary: 'canary', waveSize: '25%', maxFailures: '1', dryRun: true, wait: true })).toEqual({
      tenants: { tenantsFile: 't.yaml', selection: { tags: ['eu'] } },
      settings: { canary: { tag: 'canary' }, waveSize: { percent: 25 }, maxFailures: { count: 1 } },
      dryRun: true,
      wait: true,
    });
    expect(parseRolloutCreate({ tenantsQuery: 'SELECT 1', only: 'a,b' }).tenants).toEqual({ tenantsQuery: 'SELECT 1', selection: { ids: ['a', 'b'] } });
    expect(() => parseRolloutSettings({ maxFailures: '' })).toThrow(/--max-failures: "" is not a number or a percentage/);
    expect(() => parseRolloutSettings({ waveSize: '0' })).toThrow(/--wave-size: "0" must be at least 1/);
    expect(() => parseRolloutSettings({ concurrency: '0' })).toThrow(ConfigError);
    expect(() => parseRolloutSettings({ perServer: 'x' })).toThrow(/--per-server: "x" must be a whole number >= 1/);
    expect(() => parseRolloutCreate({ maxFailures: '1' })).toThrow(SelectorError);
  });

  it('a schedule reports name, cron and zone problems at once, and reads only the flags it declares', () => {
    expect(() => parseSchedule({ name: 'Bad Name', cron: '61 2 * * *', tz: 'Mars/Olympus', all: true })).toThrow(
      expect.objectContaining({ problems: [expect.stringMatching(/^--name/), expect.stringMatching(/^--tz/), expect.stringMatching(/^--cron/)] }),
    );
    expect(parseSchedule({ ...scheduleFlags, canary: '2', waveSize: '5' }).settings).toEqual({});
    expect(parseSchedule({ ...scheduleFlags, all: undefined, tenants: 'a.yaml', tag: ['eu'] })).toMatchObject({
      tenantsFile: 'a.yaml',
      selection: { tags: ['eu'] },
    });
  });

  it('worker and rollouts flags', () => {
    expect(parseWorker({ concurrency: '4', drainTimeout: '10s' }, { FLOTILLA_RECONCILE_EVERY: '1s' })).toEqual({
      concurrency: 4,
      drainTimeoutMs: 10_000,
      lockDurationMs: 30_000,
      reconcileEveryMs: 1000,
    });
    expect(() => parseWorker({ drainTimeout: 'soon' }, {})).toThrow(/--drain-timeout: "soon" is not a duration/);
    expect(parseRolloutsList({ limit: '5' })).toEqual({ limit: 5 });
    expect(() => parseRolloutsList({ limit: '0' })).toThrow(ConfigError);
  });
});

describe('one mapping from settings to the engine', () => {
  it('a CLI run and a rollout tenant get the same engine settings from the same config', async () => {
    const { engineSettings, engineSettingsOf, loadConfig, rolloutEngineSettings } = await import('../../src/config.js');
    const config = loadConfig({
      flags: {
        lockTimeout: '2s',
        statementTimeout: '1min',
        lockWaitTimeout: '3s',
        singleTransaction: true,
        validation: { allowRowChanges: true },
        schema: 'app',
      },
      env: {},
      configFile: undefined,
    });
    const frozen = rolloutEngineSettings(config);
    expect(frozen).toEqual({
      trackingTable: 'migrations',
      lockTimeoutMs: 2000,
      statementTimeoutMs: 60_000,
      validate: true,
      validation: { allowRowChanges: true },
      singleTransaction: true,
    });
    expect(engineSettings(config, 'me')).toEqual({ ...frozen, schema: 'app', lockWaitTimeoutMs: 3000, appliedBy: 'me' });
    expect(engineSettingsOf(frozen, { schema: 'tenant_a', lockWaitTimeoutMs: 0, appliedBy: 'worker' })).toEqual({
      ...frozen,
      schema: 'tenant_a',
      lockWaitTimeoutMs: 0,
      appliedBy: 'worker',
    });
  });
});
