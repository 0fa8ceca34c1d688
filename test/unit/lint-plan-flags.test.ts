import { describe, expect, it } from 'vitest';
import { actorOf, parseSafetyFlags } from '../../src/cli/commands/lint-gate.js';
import { parsePlan } from '../../src/cli/commands/plan.js';
import { ConfigError, EXIT_CODES, UnacknowledgedRiskError } from '../../src/core/errors.js';

describe('--accept-risk and --order-by', () => {
  it('reads repeated and comma-separated rule ids, refuses unknown and empty ones (exit 2)', () => {
    expect(parseSafetyFlags({ acceptRisk: ['drop-column', 'rename-table,drop-column'] })).toEqual({ acceptRisk: ['drop-column', 'rename-table'] });
    expect(parseSafetyFlags({})).toEqual({ acceptRisk: [] });
    expect(() => parseSafetyFlags({ acceptRisk: ['dropcolumn'] })).toThrow(/unknown lint rule "dropcolumn"/);
    expect(() => parseSafetyFlags({ acceptRisk: [''] })).toThrow(/an empty rule id/);
    expect(parseSafetyFlags({ orderBy: 'size' })).toEqual({ acceptRisk: [], orderBy: 'size' });
    expect(() => parseSafetyFlags({ orderBy: '' })).toThrow(ConfigError);
  });
  it('the actor is FLOTILLA_ACTOR when set, else the OS user; os_user is user@host', () => {
    expect(actorOf({ FLOTILLA_ACTOR: ' alice ' }).actor).toBe('alice');
    const os = actorOf({});
    expect(os.osUser.startsWith(`${os.actor}@`)).toBe(true);
    expect(actorOf({ FLOTILLA_ACTOR: '' }).actor).toBe(os.actor);
  });
  it('the refusal names the findings (ten at most) and the flags to pass; exit 2', () => {
    const f = (i: number) => ({
      file: `00${i}_x.sql`,
      line: i,
      rule: i % 2 ? 'drop-column' : 'rename-table',
      lock: 'ACCESS EXCLUSIVE',
      table: 't',
      message: 'm',
    });
    const e = new UnacknowledgedRiskError(Array.from({ length: 12 }, (_, i) => f(i)));
    expect(EXIT_CODES[e.kind]).toBe(2);
    expect(e.message).toContain('12 error-level lint findings');
    expect(e.message).toContain('and 2 more');
    expect(e.hint).toContain('--accept-risk rename-table --accept-risk drop-column');
    expect(e.toJSON().findings).toHaveLength(12);
  });
});

describe('plan flags', () => {
  it('--tenants is required; the whole file without a selector; an empty selector is refused', () => {
    expect(() => parsePlan({})).toThrow(/--tenants <file>: required/);
    expect(parsePlan({ tenants: 't.yaml', concurrency: '8' })).toEqual({ tenantsFile: 't.yaml', selection: { all: true }, concurrency: 8 });
    expect(parsePlan({ tenants: 't.yaml', tag: ['eu'], concurrency: '2' })).toMatchObject({ selection: { tags: ['eu'] }, concurrency: 2 });
    expect(() => parsePlan({ tenants: 't.yaml', only: '' })).toThrow(/empty tenant id/);
    expect(() => parsePlan({ tenants: 't.yaml', concurrency: '0' })).toThrow(/--concurrency/);
  });
});
