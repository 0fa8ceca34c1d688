/**
 * The dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright-core)
 * during real rollouts run by two `flotilla worker` processes: tenants turn to succeeded on
 * the open page without a reload; Retry asks for the token, refuses a wrong one, and with the
 * right one the failed tenant succeeds before our eyes; a read-only dashboard shows no button
 * and refuses the write even with the token; markup in an error never runs; no password in
 * the page. Every tenant is a schema on one shared database (a database each would cost a
 * DROP DATABASE, slow on a busy server, at the end).
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../helpers/browser.js';
import { migrationDir } from '../helpers/migrations.js';
import { Fleet, SECRET, waitFor, why, type FleetTenant } from '../helpers/fleet.js';
import { startDashboard, TOKEN, type DashboardProcess } from './dashboard-helpers.js';

// what the functions passed to page.evaluate/waitForFunction see, in the browser (the project has no DOM types)
declare const document: any;
declare const window: any;
declare const sessionStorage: any;

let fleet: Fleet;
let browser: Browser;
let rw: DashboardProcess;
let ro: DashboardProcess;
const dirs: { cleanup(): void }[] = [];

beforeAll(async () => {
  fleet = await Fleet.create();
  [browser, rw, ro] = await Promise.all([
    launchChromium(),
    startDashboard(fleet.cliEnv({ FLOTILLA_DASHBOARD_TOKEN: TOKEN })),
    startDashboard(fleet.cliEnv()),
    fleet.startWorkers(2),
  ]);
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await Promise.all([rw?.stop(), ro?.stop()]);
  await fleet?.cleanup();
  for (const d of dirs) d.cleanup();
}, 240_000);

const rowState = (page: Page, tenant: string) => page.locator(`tr[data-tenant="${tenant}"]`).getAttribute('data-state');

/** Makes the poison set fail on this (schema) tenant: a table `poison` in its schema, made before the engine makes the schema. */
async function poison(t: FleetTenant): Promise<void> {
  await t.query(`CREATE SCHEMA "${t.schema}"; CREATE TABLE "${t.schema}".poison (id int)`);
}

/** A set whose 002 fails, with markup in its message, on a tenant holding a table `poison`. */
function poisonSet() {
  const set = migrationDir({
    '001_accounts.sql': 'CREATE TABLE accounts (id serial PRIMARY KEY, email text);\n',
    '002_poison.sql': `DO $$ BEGIN IF to_regclass('poison') IS NOT NULL THEN RAISE EXCEPTION '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> poisoned'; END IF; END $$;\n`,
  });
  dirs.push(set);
  return set;
}

describe('dashboard in a browser', () => {
  it('shows tenants move to succeeded live, without a reload', async () => {
    // every tenant's migration waits at a gate (an advisory lock this test holds) until the page is open
    const gated = migrationDir({
      '001_gated.sql':
        'CREATE TABLE gated_marker (at timestamptz NOT NULL DEFAULT now());\n' +
        'DO $$ BEGIN WHILE NOT pg_try_advisory_xact_lock_shared(4243, 4243) LOOP PERFORM pg_sleep(0.05); END LOOP; END $$;\n',
    });
    dirs.push(gated);
    const tenants = await fleet.addTenants(['live-1', 'live-2', 'live-3', 'live-4'].map((id) => ({ id, kind: 'schema' as const })));
    const gate = await tenants[0]!.db.client();
    const page = await browser.newPage();
    try {
      await gate.query('SELECT pg_advisory_lock(4243, 4243)');
      const r = await fleet.cliJson(['rollout', '--dir', gated.dir, '--tenants', fleet.writeTenantsFile(tenants), '--all']);
      expect(r.code, why(r)).toBe(0);
      const id: string = r.json.id;
      await waitFor('a tenant to run', async () => [...(await fleet.tenantStates(id)).values()].some((t) => t.state === 'running'), 120_000, 100);

      await page.goto(`${rw.url}/rollouts/${id}`);
      expect(await page.locator('tr[data-tenant]').count()).toBe(4);
      expect(await page.locator('tr[data-tenant][data-state="succeeded"]').count()).toBe(0);
      expect(await page.locator('.summary .state').first().textContent()).toBe('running');
      await page.evaluate(() => {
        window.__samePage = true;
      });
      await page.waitForFunction(() => document.getElementById('conn')?.textContent?.startsWith('live'), undefined, { timeout: 30_000 });

      await gate.query('SELECT pg_advisory_unlock(4243, 4243)');
      await page.waitForFunction(() => document.querySelectorAll('tr[data-tenant][data-state="succeeded"]').length === 4, undefined, { timeout: 120_000 });
      await page.waitForFunction(() => document.querySelector('.summary .state')?.textContent === 'succeeded', undefined, { timeout: 30_000 });
      expect(await page.evaluate(() => window.__samePage)).toBe(true);
      expect(await page.locator('svg.bar.big').getAttribute('aria-label')).toBe('4 of 4 tenants finished (4 succeeded)');
      expect(await page.locator('ul.counts a.s-succeeded b').textContent()).toBe('4');

      // the rollouts list shows it too, and a tenant's page its attempt
      await page.goto(rw.url);
      expect(await page.locator(`tr[data-rollout="${id}"] .state`).textContent()).toBe('succeeded');
      await page.click(`tr[data-rollout="${id}"] a`);
      await page.waitForURL(`${rw.url}/rollouts/${id}`);
      await page.click('tr[data-tenant="live-2"] a');
      await page.waitForURL(`${rw.url}/rollouts/${id}/tenants/live-2`);
      expect(await page.locator('table.attempts tbody tr').count()).toBe(1);
      expect(await page.locator('table.attempts tbody tr').getAttribute('data-state')).toBe('succeeded');
    } finally {
      await page.close();
      await gate.end();
    }
  }, 240_000);

  it('Retry asks for the token, refuses a wrong one, and with the right one the failed tenant succeeds live; markup in its error stays text', async () => {
    const set = poisonSet();
    const tenants = await fleet.addTenants([
      { id: 'rt-ok', kind: 'schema', password: 'literal' },
      { id: 'rt-bad', kind: 'schema' },
    ]);
    await poison(tenants[1]!);
    const r = await fleet.cliJson(['rollout', '--dir', set.dir, '--tenants', fleet.writeTenantsFile(tenants), '--all', '--max-failures', '5', '--wait']);
    expect(r.code, why(r)).toBe(1);
    const id: string = r.json.id;

    const page = await browser.newPage();
    try {
      await page.goto(`${rw.url}/rollouts/${id}`);
      expect(await rowState(page, 'rt-bad')).toBe('failed');
      expect(await rowState(page, 'rt-ok')).toBe('succeeded');
      // the error is shown as text: no element made of it, nothing of it ran
      const error = await page.locator('tr[data-tenant="rt-bad"] td.error').textContent();
      expect(error).toContain('<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> poisoned');
      expect(await page.locator('img').count()).toBe(0);
      expect(await page.locator('main script').count()).toBe(0);
      expect(await page.evaluate(() => window.__xss)).toBeUndefined();
      for (const html of [await page.content(), await (await page.request.get(`${rw.url}/rollouts/${id}/tenants/rt-ok`)).text()])
        expect(html).not.toContain(SECRET);

      // a wrong token: refused, forgotten, nothing changed
      page.once('dialog', (d) => void d.accept('wrong-token-0123456789abcdef'));
      await page.click('button[data-action="retry"]');
      await page.waitForFunction(() => document.getElementById('notice')?.textContent?.startsWith('Not allowed'), undefined, { timeout: 30_000 });
      expect(await page.evaluate(() => sessionStorage.getItem('flotilla-dashboard-token'))).toBeNull();
      expect((await fleet.tenantStates(id)).get('rt-bad')!.generation).toBe(0);

      // fixed, then retried with the token: the tenant succeeds on the open page
      await tenants[1]!.query(`DROP TABLE "${tenants[1]!.schema}".poison`);
      let asked = '';
      page.once('dialog', (d) => {
        asked = d.message();
        void d.accept(TOKEN);
      });
      await page.click('button[data-action="retry"]');
      await page.waitForFunction(() => document.getElementById('notice')?.textContent?.startsWith('Retry:'), undefined, { timeout: 30_000 });
      expect(asked).toContain('FLOTILLA_DASHBOARD_TOKEN');
      expect(await page.evaluate(() => sessionStorage.getItem('flotilla-dashboard-token'))).toBe(TOKEN);
      await page.waitForFunction(() => document.querySelector('tr[data-tenant="rt-bad"]')?.getAttribute('data-state') === 'succeeded', undefined, {
        timeout: 120_000,
      });
      await page.waitForFunction(() => document.querySelector('.summary .state')?.textContent === 'succeeded', undefined, { timeout: 30_000 });
      expect(await page.locator('button[data-action="retry"]').count()).toBe(0);
      expect((await fleet.tenantStates(id)).get('rt-bad')).toMatchObject({ state: 'succeeded', generation: 1 });

      // its history: the failed attempt, then the retry that succeeded
      await page.click('tr[data-tenant="rt-bad"] a');
      await page.waitForURL(`${rw.url}/rollouts/${id}/tenants/rt-bad`);
      const attempts = page.locator('table.attempts tbody tr');
      expect(await attempts.count()).toBe(2);
      expect(await attempts.nth(0).getAttribute('data-state')).toBe('failed');
      expect(await attempts.nth(1).getAttribute('data-state')).toBe('succeeded');
      expect(await page.evaluate(() => window.__xss)).toBeUndefined();
      expect(rw.stderr()).toMatch(new RegExp(`retry ${id} from \\S+: 1 tenant re-enqueued`));
    } finally {
      await page.close();
    }
  }, 240_000);

  it('read-only: no buttons, and a write from the page answers 401 even with the token', async () => {
    const set = poisonSet();
    const [bad] = await fleet.addTenants([{ id: 'ro-bad', kind: 'schema' }]);
    await poison(bad!);
    const r = await fleet.cliJson(['rollout', '--dir', set.dir, '--tenants', fleet.writeTenantsFile([bad!]), '--all', '--wait']);
    expect(r.code, why(r)).toBe(1);
    const id: string = r.json.id;
    const page = await browser.newPage();
    try {
      // the same rollout on the dashboard with a token has its Retry button
      await page.goto(`${rw.url}/rollouts/${id}`);
      expect(await page.locator('button[data-action="retry"]').count()).toBe(1);

      await page.goto(`${ro.url}/rollouts/${id}`);
      expect(await rowState(page, 'ro-bad')).toBe('failed');
      expect(await page.locator('button[data-action]').count()).toBe(0);
      expect(await page.locator('.actions').count()).toBe(0);
      expect(await page.locator('header .mode').textContent()).toBe('read-only');
      const status = await page.evaluate(
        async ([rollout, token]) => (await fetch(`/api/rollouts/${rollout}/retry`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } })).status,
        [id, TOKEN] as const,
      );
      expect(status).toBe(401);
      expect((await fleet.tenantStates(id)).get('ro-bad')).toMatchObject({ state: 'failed', generation: 0 });
    } finally {
      await page.close();
    }
  }, 240_000);
});
