import { describe, expect, it } from 'vitest';
import { jobId } from '../../src/core/jobs.js';
import { assignWaves, newRolloutId, parseCanary, parseCountSpec, resolveCount } from '../../src/core/rollout-plan.js';
import { ConfigError } from '../../src/core/errors.js';
import type { Tenant } from '../../src/core/tenants.js';

const tenants = (n: number, tagged: number[] = []): Tenant[] =>
  Array.from({ length: n }, (_, i) => ({ id: `t${i}`, databaseUrl: `postgres://h/db${i}`, tags: tagged.includes(i) ? ['canary'] : [] }));

describe('rollout planning', () => {
  it('parses counts and percentages, refusing anything else', () => {
    expect(parseCountSpec('--wave-size', '5')).toEqual({ count: 5 });
    expect(parseCountSpec('--wave-size', '25%')).toEqual({ percent: 25 });
    expect(() => parseCountSpec('--wave-size', 'ten')).toThrow(ConfigError);
    expect(() => parseCountSpec('--max-failures', '150%')).toThrow(/more than 100%/);
    expect(resolveCount({ percent: 10 }, 95)).toBe(10);
    expect(resolveCount({ percent: 1 }, 10, 1)).toBe(1);
  });

  it('takes a canary as a count or a tag', () => {
    expect(parseCanary('2')).toEqual({ count: 2 });
    expect(parseCanary('canary')).toEqual({ tag: 'canary' });
    expect(() => parseCanary('0')).toThrow(ConfigError);
    expect(() => parseCanary('x"; DROP')).toThrow(ConfigError);
  });

  it('puts canaries in wave 0 and the rest in waves of the given size, in file order', () => {
    const { assignments, waveCount } = assignWaves(tenants(10, [3, 7]), { tag: 'canary' }, { count: 3 });
    expect(waveCount).toBe(4);
    expect(assignments.filter((a) => a.wave === 0).map((a) => a.tenant.id)).toEqual(['t3', 't7']);
    expect(assignments.filter((a) => a.wave === 1).map((a) => a.tenant.id)).toEqual(['t0', 't1', 't2']);
    expect(assignments.filter((a) => a.wave === 3).map((a) => a.tenant.id)).toEqual(['t8', 't9']);
    expect(assignments).toHaveLength(10);
  });

  it('runs everything in one wave by default, and a percentage wave size never rounds to zero', () => {
    expect(assignWaves(tenants(5), undefined, undefined).waveCount).toBe(1);
    const { waveCount } = assignWaves(tenants(5), { count: 1 }, { percent: 1 });
    expect(waveCount).toBe(5);
  });

  it('refuses a canary tag nobody has', () => {
    expect(() => assignWaves(tenants(3), { tag: 'canary' }, undefined)).toThrow(/no tenant has the tag/);
  });

  it('builds deterministic job ids without colons', () => {
    expect(jobId('r1', 'acme', 0)).toBe('m.r1.acme.0');
    expect(jobId('r1', 'acme', 2)).toBe('m.r1.acme.2');
    expect(newRolloutId(new Date('2026-11-25T14:03:09Z'), 'ab12cd')).toBe('r20261125-140309-ab12cd');
    expect(newRolloutId(new Date(), 'x')).not.toContain(':');
  });
});
