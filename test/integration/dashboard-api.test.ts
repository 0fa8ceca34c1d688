/**
 * `flotilla dashboard` without a browser: the JSON API is byte for byte what the CLI prints
 * with --json, writes need the bearer token (and are refused on a read-only dashboard), pages
 * escape what the control database holds and never show a password, the live stream follows
 * changes, bad flags exit 2, SIGTERM stops it with a live stream open. No workers: a rollout
 * nobody works on stays still, so the dashboard and the CLI can be compared at leisure.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { Fleet, SECRET, why } from '../helpers/fleet.js';
import { startDashboard, TOKEN, type DashboardProcess } from './dashboard-helpers.js';

let fleet: Fleet;
let rw: DashboardProcess;
let ro: DashboardProcess;
let rolloutId: string;
let otherId: string;

beforeAll(async () => {
  fleet = await Fleet.create();
  const tenants = await fleet.addTenants([
    // schema tenants: one shared database (a database each costs a DROP DATABASE at the end); no worker runs them
    { id: 'api-1', kind: 'schema', password: 'literal' },
    { id: 'api-2', kind: 'schema', password: 'env' },
    { id: 'api-3', kind: 'schema', tags: ['canary'] },
  ]);
  const r = await fleet.cliJson(['rollout', '--tenants', fleet.writeTenantsFile(tenants), '--all', '--canary', 'canary']);
  expect(r.code, why(r)).toBe(0);
  rolloutId = r.json.id;
  const r2 = await fleet.cliJson(['rollout', '--tenants', fleet.writeTenantsFile(tenants), '--only', 'api-1']);
  expect(r2.code, why(r2)).toBe(0);
  otherId = r2.json.id;
  [rw, ro] = await Promise.all([startDashboard(fleet.cliEnv({ FLOTILLA_DASHBOARD_TOKEN: TOKEN })), startDashboard(fleet.cliEnv())]);
}, 240_000);

afterAll(async () => {
  await Promise.all([rw?.stop(), ro?.stop()]);
  await fleet?.cleanup();
}, 240_000);

async function get(base: string, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(base + path, { headers });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

async function post(base: string, path: string, authorization?: string) {
  const res = await fetch(base + path, { method: 'POST', headers: authorization ? { Authorization: authorization } : {} });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** Reads a server-sent event stream until `until` matches a `live` event (its regions' HTML, joined); returns that HTML. */
async function liveEvent(url: string, until: (data: string) => boolean, timeoutMs = 30_000): Promise<string> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const res = await fetch(url, { signal: ctl.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error('stream ended');
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!/^event: live$/m.test(block)) continue;
        const regions: Record<string, string> = JSON.parse(
          block
            .split('\n')
            .filter((l) => l.startsWith('data: '))
            .map((l) => l.slice(6))
            .join('\n'),
        );
        const data = Object.values(regions).join('\n');
        if (until(data)) return data;
      }
    }
  } finally {
    clearTimeout(timer);
    ctl.abort();
  }
}

describe('dashboard: the JSON API is the CLI', () => {
  it('GET /api/rollouts and /api/rollouts/<id> answer exactly what `rollouts --json` and `rollout status --json` print', async () => {
    const list = await get(rw.url, '/api/rollouts');
    expect(list.status).toBe(200);
    expect(list.headers.get('content-type')).toMatch(/^application\/json/);
    const cliList = await fleet.cli(['rollouts', '--json']);
    expect(cliList.code, why(cliList)).toBe(0);
    expect(list.text).toBe(cliList.stdout);
    expect(JSON.parse(list.text).map((r: { id: string }) => r.id)).toEqual([otherId, rolloutId]);

    const limited = await get(rw.url, '/api/rollouts?limit=1');
    expect(limited.text).toBe((await fleet.cli(['rollouts', '--limit', '1', '--json'])).stdout);
    const badLimit = await get(rw.url, '/api/rollouts?limit=zero');
    const cliBad = await fleet.cli(['rollouts', '--limit', 'zero', '--json']);
    expect(cliBad.code).toBe(2);
    expect(badLimit.status).toBe(400);
    expect(badLimit.text).toBe(cliBad.stdout);

    const one = await get(ro.url, `/api/rollouts/${rolloutId}`);
    const cliOne = await fleet.cli(['rollout', 'status', rolloutId, '--json']);
    expect(one.status).toBe(200);
    expect(one.text).toBe(cliOne.stdout);
    const view = JSON.parse(one.text);
    expect(view.tenants.map((t: { id: string; wave: number }) => [t.id, t.wave])).toEqual([
      ['api-3', 1],
      ['api-1', 2],
      ['api-2', 2],
    ]);

    const missing = await get(rw.url, '/api/rollouts/no-such-rollout');
    const cliMissing = await fleet.cli(['rollout', 'status', 'no-such-rollout', '--json']);
    expect(cliMissing.code).toBe(2);
    expect(missing.status).toBe(404);
    expect(missing.text).toBe(cliMissing.stdout);
    expect(JSON.parse(missing.text).error.code).toBe('rollout_not_found');

    const tenant = await get(rw.url, `/api/rollouts/${rolloutId}/tenants/api-1`);
    expect(tenant.status).toBe(200);
    const t = JSON.parse(tenant.text);
    expect(t).toMatchObject({ rolloutId, tenant: { id: 'api-1', state: 'pending', wave: 2 }, generation: 0, attempts: [] });
    // the literal password is masked, the ${VAR} placeholder kept (it names a variable, not a secret)
    expect(t.target.databaseUrl).toMatch(/^postgres:\/\/[^:]+:\*\*\*@/);
    expect((await get(rw.url, `/api/rollouts/${rolloutId}/tenants/api-2`)).text).toContain(':${TENANT_PW}@');
    expect((await get(rw.url, `/api/rollouts/${rolloutId}/tenants/nobody`)).status).toBe(404);
  });

  it('writes need the bearer token: none, a wrong one, another scheme, or a read-only dashboard answer 401 and change nothing', async () => {
    const before = (await fleet.cli(['rollout', 'status', otherId, '--json'])).stdout;
    for (const action of ['retry', 'cancel', 'resume']) {
      const path = `/api/rollouts/${otherId}/${action}`;
      for (const [base, auth] of [
        [rw.url, undefined],
        [rw.url, 'Bearer wrong-token-0123456789abcdef'],
        [rw.url, `Bearer ${TOKEN}x`],
        [rw.url, `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`],
        [rw.url, TOKEN],
        [ro.url, `Bearer ${TOKEN}`],
        [ro.url, undefined],
      ] as const) {
        const r = await post(base, path, auth);
        expect(r.status, `${action} ${base === ro.url ? 'read-only' : 'token'} ${auth}`).toBe(401);
        expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
        expect(JSON.parse(r.text).error.code).toBe('unauthorized');
      }
    }
    expect(JSON.parse((await post(ro.url, `/api/rollouts/${otherId}/cancel`, `Bearer ${TOKEN}`)).text).error.message).toContain('read-only');
    expect((await fleet.cli(['rollout', 'status', otherId, '--json'])).stdout).toBe(before);
    expect((await post(rw.url, `/api/rollouts/${otherId}/explode`, `Bearer ${TOKEN}`)).status).toBe(404);
    const unknown = await post(rw.url, '/api/rollouts/no-such-rollout/cancel', `Bearer ${TOKEN}`);
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.text).error.code).toBe('rollout_not_found');
  });

  it('cancel, retry and resume with the token run the CLI commands and answer their --json output', async () => {
    // each compared with the CLI's own run of the same command right after: a second cancel, a retry with
    // nothing left to retry and a second resume change nothing, so they print the same bytes
    const cancel = await post(rw.url, `/api/rollouts/${otherId}/cancel`, `bearer  ${TOKEN}`);
    expect(cancel.status, cancel.text).toBe(200);
    expect(cancel.text).toBe((await fleet.cli(['rollout', 'cancel', otherId, '--json'])).stdout);
    const cancelled = JSON.parse(cancel.text);
    expect(cancelled).toMatchObject({ id: otherId, state: 'cancelled', counts: { cancelled: 1 } });
    expect(cancelled.haltReason).toMatch(/^cancelled by /);
    expect(rw.stderr()).toMatch(new RegExp(`cancel ${otherId} from \\S+: cancelled; 1 tenants cancelled`));

    const retry = await post(rw.url, `/api/rollouts/${otherId}/retry`, `Bearer ${TOKEN}`);
    expect(retry.status, retry.text).toBe(200);
    const retried = JSON.parse(retry.text);
    expect(retried).toMatchObject({ state: 'running', notices: [], tenants: [{ id: 'api-1', state: 'pending' }] });
    expect((await fleet.tenantStates(otherId)).get('api-1')!.generation).toBe(1);
    expect(retry.text).toBe((await fleet.cli(['rollout', 'retry', otherId, '--json'])).stdout);
    expect((await fleet.tenantStates(otherId)).get('api-1')!.generation).toBe(1);

    const resume = await post(rw.url, `/api/rollouts/${otherId}/resume`, `Bearer ${TOKEN}`);
    expect(resume.status, resume.text).toBe(200);
    expect(JSON.parse(resume.text)).toMatchObject({ id: otherId, notices: [] });
    expect(Object.keys(JSON.parse(resume.text))).toEqual(expect.arrayContaining(['recreated', 'dispatched']));
    expect(resume.text).toBe((await fleet.cli(['rollout', 'resume', otherId, '--json'])).stdout);
  });
});

describe('dashboard: pages', () => {
  it('the rollout page renders its tenants, filters by state, and shows buttons only with a token', async () => {
    const page = await get(rw.url, `/rollouts/${rolloutId}`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toMatch(/script-src 'nonce-/);
    for (const id of ['api-1', 'api-2', 'api-3']) expect(page.text).toMatch(new RegExp(`<tr data-tenant="${id}" data-state="pending">`));
    expect(page.text).toMatch(/<button[^>]*data-action="cancel"/);
    expect(page.text).not.toContain(TOKEN);
    const readOnly = await get(ro.url, `/rollouts/${rolloutId}`);
    expect(readOnly.text).not.toMatch(/<button[^>]*data-action/);
    expect(readOnly.text).toContain('read-only');

    await fleet.controlQuery(
      `UPDATE flotilla.rollout_tenants SET state = 'failed', error = '{"message": "boom"}' WHERE rollout_id = $1 AND tenant_id = 'api-2'`,
      [rolloutId],
    );
    const failed = await get(ro.url, `/rollouts/${rolloutId}?state=failed`);
    expect(failed.text).toContain('data-tenant="api-2"');
    expect(failed.text).not.toContain('data-tenant="api-1"');
    expect(failed.text).toContain('boom');
    expect((await get(ro.url, `/rollouts/${rolloutId}?q=api-3`)).text.match(/<tr data-tenant=/g)).toHaveLength(1);
    expect((await get(ro.url, `/rollouts/${rolloutId}?state=exploded`)).status).toBe(400);
    expect((await get(ro.url, `/rollouts/${rolloutId}?page=0`)).status).toBe(400);
    expect((await get(ro.url, '/rollouts/no-such-rollout')).status).toBe(404);
    expect((await get(ro.url, `/rollouts/${rolloutId}/tenants/nobody`)).status).toBe(404);

    const list = await get(ro.url, '/');
    expect(list.text).toContain(`href="/rollouts/${rolloutId}"`);
    expect(list.text).toContain(`href="/rollouts/${otherId}"`);
  });

  it('no password reaches a page or the API: tenant URLs are shown masked', async () => {
    const tenantPage = await get(rw.url, `/rollouts/${rolloutId}/tenants/api-1`);
    expect(tenantPage.status).toBe(200);
    expect(tenantPage.text).toMatch(/postgres:\/\/[^:<]+:\*\*\*@/);
    // an error message holding a URL with a password (as a driver might quote it)
    await fleet.controlQuery(`UPDATE flotilla.rollout_tenants SET error = $2 WHERE rollout_id = $1 AND tenant_id = 'api-3'`, [
      rolloutId,
      { message: `could not connect to postgres://app:${SECRET}@db-9:5432/x` },
    ]);
    const pages = [
      '/',
      `/rollouts/${rolloutId}`,
      `/rollouts/${rolloutId}/tenants/api-1`,
      `/rollouts/${rolloutId}/tenants/api-3`,
      '/api/rollouts',
      `/api/rollouts/${rolloutId}`,
      `/api/rollouts/${rolloutId}/tenants/api-1`,
      `/api/rollouts/${rolloutId}/tenants/api-3`,
    ];
    for (const p of pages) {
      const r = await get(rw.url, p);
      expect(r.status, p).toBe(200);
      expect(r.text, p).not.toContain(SECRET);
    }
    expect((await get(rw.url, `/rollouts/${rolloutId}`)).text).toContain('postgres://app:***@db-9');
    const live = await liveEvent(`${rw.url}/rollouts/${rolloutId}/tenants/api-1/events`, () => true);
    expect(live).toContain(':***@');
    expect(live).not.toContain(SECRET);
  });

  it('escapes what the control database holds: markup in a tenant id, an error, a halt reason or a URL is shown as text', async () => {
    const evil = '<script>window.__xss=1</script>';
    const evilError = '<img src=x onerror="window.__xss=2">';
    await fleet.controlQuery(
      `INSERT INTO flotilla.rollout_tenants (rollout_id, tenant_id, position, wave, server, state, database_url, error)
       VALUES ($1, $2, 99, 1, 'h:5432', 'failed', 'postgres://x@h/db', $3)`,
      [rolloutId, evil, { message: evilError }],
    );
    await fleet.controlQuery(`UPDATE flotilla.rollouts SET halt_reason = $2 WHERE id = $1`, [rolloutId, '<b onmouseover=alert(1)>halted</b>']);
    const check = (text: string, where: string) => {
      expect(text, where).not.toContain('<script>window.__xss');
      expect(text, where).not.toContain('<img src=x');
      expect(text, where).not.toContain('<b onmouseover');
    };
    const page = await get(rw.url, `/rollouts/${rolloutId}`);
    check(page.text, 'rollout page');
    expect(page.text).toContain('&lt;script&gt;window.__xss=1&lt;/script&gt;');
    expect(page.text).toContain('&lt;img src=x onerror=&quot;window.__xss=2&quot;&gt;');
    expect(page.text).toContain(`href="/rollouts/${rolloutId}/tenants/${encodeURIComponent(evil)}"`);
    const tenant = await get(rw.url, `/rollouts/${rolloutId}/tenants/${encodeURIComponent(evil)}`);
    expect(tenant.status).toBe(200);
    check(tenant.text, 'tenant page');
    check(await liveEvent(`${rw.url}/rollouts/${rolloutId}/events`, (d) => d.includes('__xss')), 'live event');
    const notFound = await get(rw.url, `/rollouts/${encodeURIComponent('<svg onload=alert(1)>')}`);
    expect(notFound.status).toBe(404);
    expect(notFound.text).not.toContain('<svg onload');
    expect(notFound.text).toContain('&lt;svg onload=alert(1)&gt;');
    await fleet.controlQuery(`DELETE FROM flotilla.rollout_tenants WHERE rollout_id = $1 AND tenant_id = $2`, [rolloutId, evil]);
  });

  it('the live stream sends the rollout again when it changes', async () => {
    const first = await liveEvent(`${ro.url}/rollouts/${rolloutId}/events`, () => true);
    expect(first).toContain('data-tenant="api-1" data-state="pending"');
    const changed = liveEvent(`${ro.url}/rollouts/${rolloutId}/events`, (d) => d.includes('data-tenant="api-1" data-state="succeeded"'));
    await new Promise((r) => setTimeout(r, 300));
    await fleet.controlQuery(`UPDATE flotilla.rollout_tenants SET state = 'succeeded', duration_ms = 1234 WHERE rollout_id = $1 AND tenant_id = 'api-1'`, [
      rolloutId,
    ]);
    expect(await changed).toContain('1.2 s');
    const list = await liveEvent(`${ro.url}/events`, () => true);
    expect(list).toContain(`data-rollout="${rolloutId}"`);
  });
});

describe('dashboard: the command', () => {
  it('bad --port, --host or token: exit 2, nothing listens', async () => {
    const env = fleet.cliEnv();
    // every problem of a command line at once; the token's other refusals: test/unit/dashboard.test.ts
    const cases: [string[], Record<string, string>, RegExp[]][] = [
      [['--port', 'http', '--host', 'not a host'], {}, [/--port: "http"/, /--host: "not a host"/]],
      [['--port', '65536', '--host', ''], {}, [/--port: "65536"/, /--host: ""/]],
      [['--host', '192.0.2.1', '--port', '0'], {}, [/--host: 192\.0\.2\.1 is not an address of this machine/]],
      [[], { FLOTILLA_DASHBOARD_TOKEN: '' }, [/FLOTILLA_DASHBOARD_TOKEN: empty/]],
    ];
    const results = await Promise.all(cases.map(([args, extra]) => runCli(['dashboard', ...args], { env: { ...env, ...extra }, timeoutMs: 60_000 })));
    for (const [i, [args, extra, message]] of cases.entries()) {
      const r = results[i]!;
      expect(r.code, `${args.join(' ')} ${JSON.stringify(extra)}\n${why(r)}`).toBe(2);
      for (const m of message) expect(r.stderr).toMatch(m);
      expect(r.stderr).not.toContain('listening');
    }
    // a port already taken
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    try {
      const port = (holder.address() as { port: number }).port;
      const r = await runCli(['dashboard', '--port', String(port)], { env, timeoutMs: 30_000 });
      expect(r.code, why(r)).toBe(2);
      expect(r.stderr).toContain(`--port: ${port} is already in use`);
    } finally {
      holder.close();
    }
  });

  it('SIGTERM stops it, ending live streams, exit 0', async () => {
    const d = await startDashboard(fleet.cliEnv());
    const ctl = new AbortController();
    const res = await fetch(`${d.url}/rollouts/${rolloutId}/events`, { signal: ctl.signal });
    const reader = res.body!.getReader();
    await reader.read();
    expect(await d.stop('SIGTERM')).toBe(0);
    // the stream was ended by the server, not left hanging
    for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) break;
    expect(d.stderr()).toContain('dashboard stopping');
    ctl.abort();
  });
});
