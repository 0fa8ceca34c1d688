/** The pure parts of notifications (targets, the event body, backoff) and of the metrics' SQLSTATE label. */
import { describe, expect, it } from 'vitest';
import { describeTarget, parseTargets, resolveTarget, targetProblem } from '../../src/notify/targets.js';
import { MAX_DELIVERY_ATTEMPTS, notificationBody, retryDelayMs } from '../../src/notify/event.js';
import { sqlStateOf } from '../../src/worker/metrics.js';
import { ConfigError } from '../../src/core/errors.js';

describe('notify targets', () => {
  it('are shown by scheme and host only, or as their placeholder', () => {
    expect(describeTarget('https://hooks.slack.com/services/T0/B0/secret')).toBe('https://hooks.slack.com/…');
    expect(describeTarget('https://user:pw@example.com:8443/x?token=1')).toBe('https://example.com:8443/…');
    expect(describeTarget('http://127.0.0.1:9000')).toBe('http://127.0.0.1:9000');
    expect(describeTarget('${SLACK_WEBHOOK_URL}')).toBe('${SLACK_WEBHOOK_URL}');
    expect(describeTarget('no url')).toBe('(not a URL)');
  });

  it('accept http(s) URLs and placeholders; refuse the rest, every problem at once, without the path', () => {
    for (const ok of ['https://x.example/hook', 'http://127.0.0.1:1/p', '${HOOK}', 'https://hooks.slack.com/services/${PATH}'])
      expect(targetProblem(ok), ok).toBeUndefined();
    for (const bad of ['', '  ', 'ftp://x/y', 'mailto:a@b', 'hooks.slack.com/x', '${HOOK']) expect(targetProblem(bad), bad).toBeDefined();
    let error: unknown;
    try {
      parseTargets('--notify', ['ftp://files.example/secret-1', 'https://ok.example/x', 'gopher://g/secret-2']);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toHaveLength(2);
    expect(String((error as Error).message)).not.toMatch(/secret-1|secret-2/);
    expect(parseTargets('--notify', ['https://a.example/x', 'https://a.example/x'])).toEqual(['https://a.example/x']);
  });

  it('are resolved from the sender environment; a missing variable is named, never a value', () => {
    expect(resolveTarget('${HOOK}', { HOOK: 'https://h.example/s3cret' })).toBe('https://h.example/s3cret');
    expect(resolveTarget('https://h.example/${P}', { P: 'abc' })).toBe('https://h.example/abc');
    expect(() => resolveTarget('${HOOK}', {})).toThrow(/HOOK is not set/);
    expect(() => resolveTarget('${HOOK}', { HOOK: 'not-a-url-s3cret' })).toThrow(/must be an http/);
    expect(() => resolveTarget('${HOOK}', { HOOK: 'not-a-url-s3cret' })).not.toThrow(/s3cret/);
  });
});

describe('notification body', () => {
  const record = {
    id: '7',
    rolloutId: 'r1',
    event: 'halted' as const,
    payload: {
      previousState: 'running',
      haltReason: 'canary failed at postgres://app:pw123@db/x',
      counts: { succeeded: 1, failed: 1, cancelled: 3 },
      failedTenants: [{ id: 'acme', code: '42P07' }],
    },
  };
  it('is Slack-compatible text plus the machine fields, the halt reason redacted', () => {
    const b = notificationBody(record);
    expect(b.event).toBe('rollout.halted');
    expect(b.eventId).toBe('7');
    expect(b.rollout).toMatchObject({ id: 'r1', state: 'halted', previousState: 'running', total: 5, counts: record.payload.counts });
    expect(b.text).toContain('Flotilla rollout r1 halted');
    expect(b.text).toContain('2/5 tenants done (1 succeeded, 1 failed, 3 cancelled)');
    expect(b.text).toContain('Failed: acme (42P07).');
    expect(b.text).toContain('flotilla rollout retry r1');
    expect(JSON.stringify(b)).not.toContain('pw123');
  });
  it('a succeeded rollout says so without a next step', () => {
    const b = notificationBody({ ...record, event: 'succeeded', payload: { counts: { succeeded: 3 } } });
    expect(b.text).toBe(':white_check_mark: Flotilla rollout r1 succeeded\n3/3 tenants done (3 succeeded).');
  });
});

describe('backoff and labels', () => {
  it('doubles from 1 s up to 5 min', () => {
    expect([1, 2, 3, 4].map((n) => retryDelayMs(n))).toEqual([1000, 2000, 4000, 8000]);
    expect(retryDelayMs(MAX_DELIVERY_ATTEMPTS + 20)).toBe(300_000);
  });
  it('SQLSTATE labels are bounded: a code, connection, or other', () => {
    expect(sqlStateOf({ pg: { code: '55P03' } })).toBe('55P03');
    expect(sqlStateOf({ code: '40P01' })).toBe('40P01');
    expect(sqlStateOf({ code: 'ECONNREFUSED' })).toBe('connection');
    expect(sqlStateOf({ code: 'connection', sqlState: undefined })).toBe('connection');
    expect(sqlStateOf({ code: 'migration_failed', message: 'x' })).toBe('other');
    expect(sqlStateOf(new Error('boom'))).toBe('other');
  });
});
