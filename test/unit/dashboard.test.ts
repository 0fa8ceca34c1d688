/**
 * The dashboard's pure parts and its routes over a plain-object backend (no database, no
 * server: hono's app.request): escaping and redaction, the token rules, --port/--host, status
 * codes, and that an unauthorized write never reaches the backend.
 */
import { describe, expect, it } from 'vitest';
import { createDashboard } from '../../src/dashboard/app.js';
import { authorized, dashboardToken } from '../../src/dashboard/auth.js';
import type { DashboardBackend } from '../../src/dashboard/backend.js';
import { escapeHtml, html, raw } from '../../src/dashboard/html.js';
import { parseListen } from '../../src/dashboard/server.js';
import { ConfigError, ConnectionError, RolloutNotFoundError } from '../../src/core/errors.js';
import type { RolloutView } from '../../src/cli/print/rollout.js';

const TOKEN = 'unit-token-0123456789abcdef';
const XSS = '<script>alert(1)</script>';

type TenantEntry = RolloutView['tenants'][number];

/** A tenant of the view (a cast: fields other helpers add to the view stay out of this test). */
function tenant(over: Partial<TenantEntry> & Pick<TenantEntry, 'id' | 'state'>): TenantEntry {
  return { applied: [], error: null, wave: 1, attempts: 0, durationMs: null, drift: false, notBefore: null, ...over } as TenantEntry;
}

function view(over: Partial<RolloutView> = {}): RolloutView {
  return {
    id: 'r1',
    state: 'failed',
    haltReason: null,
    wave: 1,
    waves: 1,
    dryRun: false,
    revertOf: null,
    skipped: [],
    createdAt: new Date('2026-12-01T10:00:00Z'),
    finishedAt: new Date('2026-12-01T10:01:05Z'),
    counts: { pending: 0, scheduled: 1, running: 0, succeeded: 1, failed: 1, cancelled: 0 },
    tenants: [
      tenant({ id: 'ok', state: 'succeeded', applied: ['001_a.sql'], attempts: 1, durationMs: 1500, drift: true }),
      tenant({ id: XSS, state: 'failed', error: `<img src=x onerror=alert(2)> postgres://app:pw123@db/x`, attempts: 2, durationMs: 20 }),
      tenant({ id: 'later', state: 'scheduled', notBefore: new Date('2026-12-06T02:00:00Z') }),
    ],
    ...over,
  };
}

function knownRollout(id: string): RolloutView {
  if (id !== 'r1') throw new RolloutNotFoundError(id);
  return view();
}

function fakeBackend(calls: string[], rollout: (id: string) => RolloutView = knownRollout) {
  const backend: DashboardBackend = {
    rollouts: async () => [],
    rollout: async (id) => rollout(id),
    tenantHistory: async () => undefined,
    retry: async (id) => {
      calls.push(`retry ${id}`);
      return { id, retried: 1, notices: [], view: view(), waited: false };
    },
    cancel: async (id) => {
      calls.push(`cancel ${id}`);
      return view({ state: 'cancelled' });
    },
    resume: async (id) => {
      calls.push(`resume ${id}`);
      return { id, resume: { rollouts: 1, dispatched: 0, recreated: 0, failedJobs: 0 }, notices: [] };
    },
  };
  return backend;
}

describe('html', () => {
  it('escapes every value, redacts passwords, and keeps only Html made here', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    const h = html`<td title="${'" onmouseover="x'}">${XSS}${raw('<b>ok</b>')}${[html`<i>${'<u>'}</i>`, 'postgres://u:secret@h/db']}${null}${undefined}${false}${0}</td>`;
    expect(h.text).toBe('<td title="&quot; onmouseover=&quot;x">&lt;script&gt;alert(1)&lt;/script&gt;<b>ok</b><i>&lt;u&gt;</i>postgres://u:***@h/db0</td>');
  });
});

describe('the token', () => {
  it('is optional, and refused when empty, short or not plain printable ASCII', () => {
    expect(dashboardToken({})).toBeUndefined();
    expect(dashboardToken({ FLOTILLA_DASHBOARD_TOKEN: TOKEN })).toBe(TOKEN);
    for (const [token, message] of [
      ['', /empty/],
      ['short', /shorter than 16/],
      ['a token with spaces in it', /holds a space/],
      [' leading-space-0123456789', /holds a space/],
      ['ünïcödé-0123456789abcdef', /printable ASCII/],
    ] as const) {
      expect(() => dashboardToken({ FLOTILLA_DASHBOARD_TOKEN: token }), token).toThrow(ConfigError);
      expect(() => dashboardToken({ FLOTILLA_DASHBOARD_TOKEN: token }), token).toThrow(message);
    }
  });

  it('authorizes exactly `Bearer <token>`, and nothing when no token is configured', () => {
    expect(authorized(`Bearer ${TOKEN}`, TOKEN)).toBe(true);
    expect(authorized(`bearer   ${TOKEN} `, TOKEN)).toBe(true);
    for (const header of [undefined, '', TOKEN, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Basic ${TOKEN}`, `Bearer ${TOKEN} extra`, 'Bearer '])
      expect(authorized(header, TOKEN), String(header)).toBe(false);
    expect(authorized(`Bearer ${TOKEN}`, undefined)).toBe(false);
  });
});

describe('--port and --host', () => {
  it('reads ports 0-65535 and IP addresses or host names; refuses the rest, all problems at once', () => {
    expect(parseListen({ port: '0', host: '127.0.0.1' })).toEqual({ port: 0, host: '127.0.0.1' });
    expect(parseListen({ port: '8080', host: '[::1]' })).toEqual({ port: 8080, host: '::1' });
    expect(parseListen({ port: '65535', host: 'dash.example.com' })).toEqual({ port: 65535, host: 'dash.example.com' });
    for (const port of ['65536', '-1', '1.5', 'abc', '', '123456']) expect(() => parseListen({ port, host: 'localhost' }), port).toThrow(/--port/);
    for (const host of ['', 'a b', 'x_y!', '-lead.example.com', 'http://localhost']) expect(() => parseListen({ port: '1', host }), host).toThrow(/--host/);
    expect(() => parseListen({ port: 'x', host: 'a b' })).toThrow(/--port.*--host/);
  });
});

describe('routes over a plain-object backend', () => {
  it('pages escape tenant ids and errors, redact passwords, carry the CSP nonce, and show when a window opens', async () => {
    const { app } = createDashboard({ backend: fakeBackend([]), token: TOKEN });
    const res = await app.request('/rollouts/r1');
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).not.toContain('<script>alert');
    expect(text).not.toContain('<img');
    expect(text).not.toContain('pw123');
    expect(text).toContain('postgres://app:***@db/x');
    expect(text).toContain('<time datetime="2026-12-06T02:00:00.000Z">2026-12-06 02:00:00Z</time>');
    expect(text).toContain('1.5 s');
    expect(text).toMatch(/<span class="drift"/);
    const nonce = /script-src 'nonce-([^']+)'/.exec(res.headers.get('content-security-policy')!)![1]!;
    expect(text).toContain(`<script nonce="${nonce}">`);
    expect(text.match(/<script/g)).toHaveLength(1);
    expect(text).toMatch(/<button type="button" data-action="retry" data-rollout="r1"/);
    // the scheduled tenant is the only one with a window in the table
    expect((await (await app.request('/rollouts/r1?state=scheduled')).text()).match(/<tr data-tenant=/g)).toHaveLength(1);
  });

  it('errors: unknown rollout 404, bad filter 400, unreachable database 503 (JSON as the CLI prints it)', async () => {
    const calls: string[] = [];
    const down = new ConnectionError('control', 'ECONNREFUSED', 'Start it.');
    const { app } = createDashboard({
      backend: fakeBackend(calls, (id) => {
        if (id === 'down') throw down;
        return knownRollout(id);
      }),
      token: TOKEN,
    });
    const missing = await app.request('/api/rollouts/nope');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({
      error: { code: 'rollout_not_found', kind: 'input', message: 'no rollout with id nope', hint: 'List rollouts with `flotilla rollouts`.' },
    });
    expect((await app.request('/rollouts/nope')).status).toBe(404);
    expect((await app.request('/rollouts/r1?state=lost')).status).toBe(400);
    expect((await app.request('/api/rollouts?limit=-3')).status).toBe(400);
    expect((await app.request('/api/rollouts/down')).status).toBe(503);
    expect((await app.request('/rollouts/down')).status).toBe(503);
    expect((await app.request('/nothing/here')).status).toBe(404);
    expect(await (await app.request('/healthz')).text()).toBe('ok\n');
  });

  it('a write without the right token never reaches the backend; with it, each action calls its command once', async () => {
    const calls: string[] = [];
    const rw = createDashboard({ backend: fakeBackend(calls), token: TOKEN }).app;
    const ro = createDashboard({ backend: fakeBackend(calls), token: undefined }).app;
    for (const action of ['retry', 'cancel', 'resume']) {
      for (const [app, auth] of [
        [rw, undefined],
        [rw, 'Bearer nope-nope-nope-nope'],
        [ro, `Bearer ${TOKEN}`],
      ] as const) {
        const res = await app.request(`/api/rollouts/r1/${action}`, { method: 'POST', headers: auth ? { Authorization: auth } : {} });
        expect(res.status).toBe(401);
      }
      expect(calls).toEqual([]);
    }
    for (const action of ['retry', 'cancel', 'resume']) {
      const res = await rw.request(`/api/rollouts/r1/${action}`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` } });
      expect(res.status, action).toBe(200);
    }
    expect(calls).toEqual(['retry r1', 'cancel r1', 'resume r1']);
    // GET on an action route is not a write
    expect((await rw.request('/api/rollouts/r1/retry')).status).toBe(404);
  });
});
