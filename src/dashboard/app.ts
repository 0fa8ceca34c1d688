/**
 * The dashboard's routes (hono):
 *   GET  /                                    rollouts                     live: GET /events
 *   GET  /rollouts/<id>[?state=&q=&page=]     one rollout and its tenants  live: GET /rollouts/<id>/events
 *   GET  /rollouts/<id>/tenants/<tenant>      one tenant's attempts        live: .../events
 *   GET  /api/rollouts[?limit=n]              = `flotilla rollouts --json [--limit n]`
 *   GET  /api/rollouts/<id>                   = `flotilla rollout status <id> --json`
 *   GET  /api/rollouts/<id>/tenants/<tenant>  the tenant page's data
 *   POST /api/rollouts/<id>/retry|cancel|resume  = `rollout retry|cancel|resume <id> --json`; bearer token
 *   GET  /healthz                             liveness (200 "ok")
 *
 * The JSON is written by the CLI's own printers (a captured --json Output), so it is the same
 * bytes as the terminal's, redaction included; errors are the CLI's `{ "error": ... }`.
 * Pages are rendered by pages.ts; their live regions come back over server-sent events,
 * rendered by the same functions, sent only when they changed, from data fetched at most once
 * per refresh period whatever the number of open pages.
 */
import { randomBytes } from 'node:crypto';
import type { HttpBindings } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { ConfigError, FlotillaError, QueuePrefixMismatchError, RolloutNotFoundError, TenantNotInRolloutError } from '../core/errors.js';
import { redactSecrets } from '../core/redact.js';
import { jsonReplacer, reportError, type Output } from '../cli/output.js';
import { parseRolloutsList } from '../cli/requests.js';
import { printRolloutsList } from '../cli/commands/rollouts.js';
import { printRolloutOrJson } from '../cli/print/rollout.js';
import { printRolloutRetried } from '../cli/commands/rollout-retry.js';
import { printRolloutCancelled } from '../cli/commands/rollout-cancel.js';
import { printRolloutResumed } from '../cli/commands/rollout-resume.js';
import type { TenantState } from '../core/dispatch.js';
import { authorized, TOKEN_VARIABLE } from './auth.js';
import type { DashboardBackend } from './backend.js';
import type { Html } from './html.js';
import {
  problemPage,
  rolloutLive,
  rolloutPage,
  rolloutsLive,
  rolloutsPage,
  tenantLive,
  tenantPage,
  TENANT_STATES,
  type PageContext,
  type Regions,
  type TenantFilter,
} from './pages.js';

export interface DashboardOptions {
  backend: DashboardBackend;
  /** FLOTILLA_DASHBOARD_TOKEN; undefined: read-only */
  token: string | undefined;
  /** how often live pages refresh their data (default 1000 ms) */
  refreshMs?: number;
  /** one line per write action (who, what, outcome), for the operator's terminal */
  audit?: (line: string) => void;
  /** unexpected errors (a bug, or a database refusal no command explained), for the operator's terminal */
  errors?: (line: string) => void;
  now?: () => Date;
}

export interface Dashboard {
  app: Hono<{ Bindings: HttpBindings }>;
  /** end every live stream (graceful shutdown); new ones are refused */
  close(): void;
}

type Ctx = Context<{ Bindings: HttpBindings }>;
type Status = 200 | 400 | 401 | 404 | 409 | 500 | 503;

const ACTIONS = ['retry', 'cancel', 'resume'] as const;
type Action = (typeof ACTIONS)[number];

/** What the CLI prints with --json, as text (the same replacer: redaction included). */
function cliJson(print: (out: Output) => void): string {
  let text = '';
  const out: Output = {
    json: true,
    line: () => {},
    data: (v) => {
      text = `${JSON.stringify(v, jsonReplacer, 2)}\n`;
    },
    error: () => {},
  };
  print(out);
  return text;
}

/** HTTP status of an error the commands throw. */
function statusOf(e: unknown): Status {
  if (e instanceof RolloutNotFoundError || e instanceof TenantNotInRolloutError) return 404;
  if (e instanceof QueuePrefixMismatchError) return 409;
  if (e instanceof FlotillaError) return e.kind === 'input' ? 400 : e.kind === 'transient' ? 503 : 409;
  // a database's own refusal that the CLI would explain (reportError): transient or not, it is not the caller's fault
  return 500;
}

/** One fetch shared by every live page asking within `ttlMs` (one query per refresh, not per open page). */
class Shared {
  private readonly entries = new Map<string, { at: number; value: Promise<unknown> }>();
  constructor(private readonly ttlMs: number) {}
  get<T>(key: string, fetch: () => Promise<T>): Promise<T> {
    const now = Date.now();
    const hit = this.entries.get(key);
    if (hit && now - hit.at < this.ttlMs) return hit.value as Promise<T>;
    for (const [k, e] of this.entries) if (now - e.at > this.ttlMs * 10) this.entries.delete(k);
    const value = fetch();
    this.entries.set(key, { at: now, value });
    value.catch(() => this.entries.delete(key));
    return value;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

export function createDashboard(o: DashboardOptions): Dashboard {
  const refreshMs = o.refreshMs ?? 1000;
  const now = o.now ?? (() => new Date());
  const shared = new Shared(Math.max(50, refreshMs - 100));
  const closing = new AbortController();
  const writable = o.token !== undefined;
  const app = new Hono<{ Bindings: HttpBindings }>();

  const pageContext = (nonce: string): PageContext => ({ writable, nonce, now: now() });

  app.use('*', async (c, next) => {
    await next();
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('Referrer-Policy', 'no-referrer');
    c.header('X-Frame-Options', 'DENY');
    if (!c.res.headers.get('Cache-Control')) c.header('Cache-Control', 'no-store');
  });

  /** An HTML page with a fresh nonce: the inline script and style run, nothing else does. */
  const page = (c: Ctx, build: (ctx: PageContext) => Html, status: Status = 200) => {
    const nonce = randomBytes(16).toString('base64');
    c.header(
      'Content-Security-Policy',
      `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'`,
    );
    return c.html(build(pageContext(nonce)).text, status);
  };

  const problem = (c: Ctx, e: unknown) => {
    const status = statusOf(e);
    const title = status === 404 ? 'Not found' : status === 400 ? 'Bad request' : status === 503 ? 'Unavailable' : 'Error';
    if (e instanceof FlotillaError) return page(c, (ctx) => problemPage(ctx, title, e.message, e.hint), status);
    o.errors?.(`dashboard: ${redactSecrets(e instanceof Error ? (e.stack ?? e.message) : String(e))}`);
    return page(c, (ctx) => problemPage(ctx, title, redactSecrets(e instanceof Error ? e.message : String(e))), 500);
  };

  const json = (c: Ctx, text: string, status: Status = 200) => {
    c.header('Content-Type', 'application/json; charset=utf-8');
    return c.body(text, status);
  };
  const jsonError = (c: Ctx, e: unknown) =>
    json(
      c,
      cliJson((out) => reportError(out, e)),
      statusOf(e),
    );

  /** ?state=&q=&page= of the rollout page, refused (400) when unreadable. */
  const tenantFilter = (c: Ctx): TenantFilter => {
    const state = c.req.query('state') || undefined;
    const q = (c.req.query('q') ?? '').trim();
    const pageText = c.req.query('page') || '1';
    const problems: string[] = [];
    if (state !== undefined && !TENANT_STATES.includes(state as TenantState)) problems.push(`state: must be one of ${TENANT_STATES.join(', ')}`);
    if (!/^[1-9]\d{0,6}$/.test(pageText)) problems.push('page: must be a whole number >= 1');
    if (q.length > 100) problems.push('q: at most 100 characters');
    if (problems.length) throw new ConfigError(problems);
    return { ...(state && { state: state as TenantState }), ...(q && { q }), page: Number(pageText) };
  };
  const listRequest = (c: Ctx) => parseRolloutsList({ limit: c.req.query('limit') });

  /**
   * Server-sent events: the page's live regions (JSON: element id -> HTML) each time they change;
   * a comment now and then keeps proxies from closing the stream.
   */
  const live = (c: Ctx, renderRegions: () => Promise<Regions>) => {
    const render = async () => JSON.stringify(Object.fromEntries(Object.entries(await renderRegions()).map(([id, h]) => [id, h.text])));
    if (closing.signal.aborted) return c.text('shutting down', 503);
    return streamSSE(c, async (stream) => {
      let last = '';
      let quiet = 0;
      let first = true;
      while (!stream.aborted && !stream.closed && !closing.signal.aborted) {
        try {
          const fragment = await render();
          if (fragment !== last) {
            await stream.writeSSE({ event: 'live', data: fragment, ...(first && { retry: 2000 }) });
            last = fragment;
            quiet = 0;
            first = false;
          } else if (++quiet * refreshMs >= 15_000) {
            await stream.write(': still here\n\n');
            quiet = 0;
          }
        } catch (e) {
          await stream.writeSSE({ event: 'problem', data: redactSecrets(e instanceof Error ? e.message : String(e)).split('\n')[0]! });
        }
        await sleep(refreshMs, closing.signal);
      }
    });
  };

  // ------------------------------------------------------------------------------------------
  // pages

  app.get('/', async (c) => {
    try {
      const req = listRequest(c);
      const list = await o.backend.rollouts(req);
      return page(c, (ctx) => rolloutsPage(ctx, list, req.limit));
    } catch (e) {
      return problem(c, e);
    }
  });
  app.get('/events', (c) => {
    let req: ReturnType<typeof listRequest>;
    try {
      req = listRequest(c);
    } catch (e) {
      return jsonError(c, e);
    }
    return live(c, async () => rolloutsLive(pageContext(''), await shared.get(`list:${req.limit}`, () => o.backend.rollouts(req)), req.limit));
  });

  app.get('/rollouts/:id', async (c) => {
    try {
      const f = tenantFilter(c);
      const v = await o.backend.rollout(c.req.param('id'));
      return page(c, (ctx) => rolloutPage(ctx, v, f));
    } catch (e) {
      return problem(c, e);
    }
  });
  app.get('/rollouts/:id/events', (c) => {
    const id = c.req.param('id');
    let f: TenantFilter;
    try {
      f = tenantFilter(c);
    } catch (e) {
      return jsonError(c, e);
    }
    return live(c, async () => rolloutLive(pageContext(''), await shared.get(`rollout:${id}`, () => o.backend.rollout(id)), f));
  });

  /** The rollout's view and this tenant's history (undefined: no such tenant). */
  const tenantData = async (id: string, tenantId: string, cached: boolean) => {
    const v = await (cached ? shared.get(`rollout:${id}`, () => o.backend.rollout(id)) : o.backend.rollout(id));
    const t = v.tenants.find((x) => x.id === tenantId);
    const h = t && (await o.backend.tenantHistory(id, tenantId));
    return t && h ? { v, t, h } : undefined;
  };
  const noTenant = (id: string, tenantId: string) => new TenantNotInRolloutError(id, tenantId);

  app.get('/rollouts/:id/tenants/:tenant', async (c) => {
    const id = c.req.param('id');
    const tenantId = c.req.param('tenant');
    try {
      const d = await tenantData(id, tenantId, false);
      if (!d) throw noTenant(id, tenantId);
      return page(c, (ctx) => tenantPage(ctx, d.v, d.t, d.h));
    } catch (e) {
      return problem(c, e);
    }
  });
  app.get('/rollouts/:id/tenants/:tenant/events', (c) => {
    const id = c.req.param('id');
    const tenantId = c.req.param('tenant');
    return live(c, async () => {
      const d = await tenantData(id, tenantId, true);
      if (!d) throw noTenant(id, tenantId);
      return tenantLive(d.v, d.t, d.h);
    });
  });

  app.get('/favicon.ico', (c) => c.body(null, 204));
  // liveness for a container's probe: the process serves (the control database is checked by the pages themselves)
  app.get('/healthz', (c) => c.text('ok\n'));

  // ------------------------------------------------------------------------------------------
  // JSON API

  app.get('/api/rollouts', async (c) => {
    try {
      const list = await o.backend.rollouts(listRequest(c));
      return json(
        c,
        cliJson((out) => printRolloutsList(out, list)),
      );
    } catch (e) {
      return jsonError(c, e);
    }
  });
  app.get('/api/rollouts/:id', async (c) => {
    try {
      const v = await o.backend.rollout(c.req.param('id'));
      return json(
        c,
        cliJson((out) => printRolloutOrJson(out, v)),
      );
    } catch (e) {
      return jsonError(c, e);
    }
  });
  app.get('/api/rollouts/:id/tenants/:tenant', async (c) => {
    const id = c.req.param('id');
    const tenantId = c.req.param('tenant');
    try {
      const d = await tenantData(id, tenantId, false);
      if (!d) throw noTenant(id, tenantId);
      const { rolloutId: _r, tenantId: _t, ...history } = d.h;
      return json(
        c,
        cliJson((out) => out.data({ rolloutId: id, tenant: d.t, ...history })),
      );
    } catch (e) {
      return jsonError(c, e);
    }
  });

  app.post('/api/rollouts/:id/:action', async (c) => {
    const id = c.req.param('id');
    const action = c.req.param('action') as Action;
    if (!ACTIONS.includes(action)) return json(c, `${JSON.stringify({ error: { code: 'not_found', kind: 'input', message: `no action ${action}` } })}\n`, 404);
    if (!authorized(c.req.header('Authorization'), o.token)) {
      c.header('WWW-Authenticate', 'Bearer realm="flotilla"');
      const message =
        o.token === undefined
          ? `this dashboard is read-only: start it with ${TOKEN_VARIABLE} set to allow retry, cancel and resume`
          : 'missing or wrong bearer token';
      const hint =
        o.token === undefined ? `Set ${TOKEN_VARIABLE} in the dashboard's environment and restart it.` : `Send Authorization: Bearer <${TOKEN_VARIABLE}>.`;
      return json(c, `${JSON.stringify({ error: { code: 'unauthorized', kind: 'input', message, hint } }, null, 2)}\n`, 401);
    }
    const who = c.env?.incoming?.socket?.remoteAddress ?? 'unknown';
    try {
      let text: string;
      let outcome: string;
      if (action === 'retry') {
        const r = await o.backend.retry(id);
        text = cliJson((out) => printRolloutRetried(out, r));
        outcome = `${r.retried} tenant${r.retried === 1 ? '' : 's'} re-enqueued`;
      } else if (action === 'cancel') {
        const v = await o.backend.cancel(id);
        text = cliJson((out) => printRolloutCancelled(out, v));
        outcome = `${v.state}; ${v.counts.cancelled} tenants cancelled, ${v.counts.running} still running`;
      } else {
        const r = await o.backend.resume(id);
        text = cliJson((out) => printRolloutResumed(out, r));
        outcome = `${r.resume.recreated} jobs re-created, ${r.resume.dispatched} dispatched`;
      }
      o.audit?.(`dashboard: ${action} ${id} from ${who}: ${outcome}`);
      return json(c, text);
    } catch (e) {
      o.audit?.(`dashboard: ${action} ${id} from ${who} refused: ${redactSecrets(e instanceof Error ? e.message : String(e)).split('\n')[0]}`);
      return jsonError(c, e);
    }
  });

  app.notFound((c) => {
    if (c.req.path.startsWith('/api/'))
      return json(c, `${JSON.stringify({ error: { code: 'not_found', kind: 'input', message: `no route ${c.req.method} ${c.req.path}` } })}\n`, 404);
    return page(c, (ctx) => problemPage(ctx, 'Not found', `Nothing at ${c.req.path}.`), 404);
  });
  app.onError((e, c) => (c.req.path.startsWith('/api/') ? jsonError(c, e) : problem(c, e)));

  return { app, close: () => closing.abort() };
}
