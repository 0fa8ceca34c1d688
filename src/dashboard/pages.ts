/**
 * The dashboard's pages, rendered on the server from the data the CLI commands return
 * (`rollouts`, `rollout status`) and a tenant's history (control/history.ts). A page is a
 * layout around live regions (`Regions`: element id -> HTML); the page's event stream sends
 * the same regions, rendered by the same functions, when something changed. So there is one
 * renderer, here, and every value goes through `html` (escaped and redacted). What the user
 * types into (the filter form) sits outside the regions, so an update never eats it.
 */
import type { TenantHistory } from '../control/history.js';
import type { RolloutState, TenantState } from '../core/dispatch.js';
import type { RolloutView } from '../cli/print/rollout.js';
import type { RolloutsList } from '../cli/commands/rollouts.js';
import { CLIENT_SCRIPT, STYLE } from './assets.js';
import { html, raw, type Html } from './html.js';

export const TENANT_STATES: readonly TenantState[] = ['pending', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled'];
/** tenants per page of the rollout's table */
export const PAGE_SIZE = 200;
/** rows of the waves table (around the current wave) */
const MAX_WAVE_ROWS = 25;

/** What a page may show besides its data. */
export interface PageContext {
  /** a token is configured: show the retry, cancel and resume buttons */
  writable: boolean;
  /** per-response nonce of the inline script and style (Content-Security-Policy) */
  nonce: string;
  now: Date;
}

/** The rollout page's table: which tenants (all filters optional). */
export interface TenantFilter {
  state?: TenantState;
  /** part of a tenant id */
  q?: string;
  /** from 1 */
  page: number;
}

/** The live parts of a page, by element id. */
export type Regions = Record<string, Html>;

/** A live region's element, filled with its current HTML. */
export function region(regions: Regions, id: string): Html {
  return html`<div id="${id}" class="region">${regions[id]}</div>`;
}

export function layout(ctx: PageContext, title: string, crumbs: Html, body: Html, stream: string | undefined): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title} · Flotilla</title>
<style nonce="${ctx.nonce}">${raw(STYLE)}</style>
</head>
<body data-writable="${ctx.writable ? '1' : '0'}">
<header class="top">
  <a class="brand" href="/">Flotilla</a>
  <nav class="crumbs">${crumbs}</nav>
  <span class="mode">${ctx.writable ? html`actions need the dashboard token <button type="button" class="link" id="forget" hidden>forget token</button>` : 'read-only'}</span>
  <span id="conn" class="conn">${stream ? 'connecting…' : ''}</span>
</header>
<div id="notice" class="notice" role="status" aria-live="polite"></div>
<main${stream ? html` data-stream="${stream}"` : ''}>
${body}
</main>
<script nonce="${ctx.nonce}">${raw(CLIENT_SCRIPT)}</script>
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------
// formatting

export function formatTime(d: Date | null | undefined): Html {
  if (!d) return html`<span class="muted">–</span>`;
  const iso = d.toISOString();
  return html`<time datetime="${iso}">${iso.slice(0, 19).replace('T', ' ')}Z</time>`;
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function rolloutDuration(r: { createdAt: Date; finishedAt: Date | null }, now: Date): string {
  return formatDuration((r.finishedAt ?? now).getTime() - r.createdAt.getTime());
}

function stateBadge(state: RolloutState | TenantState | string): Html {
  return html`<span class="state s-${state}">${state}</span>`;
}

const total = (counts: Record<TenantState, number>) => TENANT_STATES.reduce((n, s) => n + counts[s], 0);
const finished = (counts: Record<TenantState, number>) => counts.succeeded + counts.failed + counts.cancelled;

/** A bar of the tenants by state (SVG: no inline style, which the Content-Security-Policy forbids). */
function progressBar(counts: Record<TenantState, number>, big = false): Html {
  const n = total(counts);
  const order: TenantState[] = ['succeeded', 'failed', 'cancelled', 'running', 'scheduled', 'pending'];
  let x = 0;
  const rects = order.map((s) => {
    const w = n ? (counts[s] / n) * 1000 : 0;
    const r = w > 0 ? html`<rect class="s-${s}" x="${x.toFixed(1)}" y="0" width="${w.toFixed(1)}" height="10"><title>${counts[s]} ${s}</title></rect>` : html``;
    x += w;
    return r;
  });
  const label = `${finished(counts)} of ${n} tenants finished (${counts.succeeded} succeeded)`;
  return html`<svg class="bar${big ? ' big' : ''}" viewBox="0 0 1000 10" preserveAspectRatio="none" role="img" aria-label="${label}"><rect class="track" x="0" y="0" width="1000" height="10"></rect>${rects}</svg>`;
}

// ---------------------------------------------------------------------------------------------
// GET /

export function rolloutsPage(ctx: PageContext, list: RolloutsList, limit: number): Html {
  const stream = `/events?limit=${limit}`;
  return layout(ctx, 'Rollouts', html`<span>Rollouts</span>`, html`<h1>Rollouts</h1>${region(rolloutsLive(ctx, list, limit), 'rollouts')}`, stream);
}

export function rolloutsLive(ctx: PageContext, list: RolloutsList, limit: number): Regions {
  return { rollouts: rolloutsTable(ctx, list, limit) };
}

function rolloutsTable(ctx: PageContext, list: RolloutsList, limit: number): Html {
  if (!list.length) return html`<p class="empty">No rollouts yet. Start one with <code>flotilla rollout --tenants tenants.yaml --all</code>.</p>`;
  const rows = list.map((r) => {
    const c = r.counts;
    return html`<tr data-rollout="${r.id}">
  <td><a href="/rollouts/${encodeURIComponent(r.id)}"><code>${r.id}</code></a>${r.options?.dryRun ? html` <span class="tag">dry run</span>` : ''}</td>
  <td>${stateBadge(r.state)}</td>
  <td class="barcell">${progressBar(c)}</td>
  <td class="num">${total(c)}</td>
  <td class="num ok">${c.succeeded}</td>
  <td class="num bad">${c.failed}</td>
  <td class="num">${c.cancelled}</td>
  <td class="num">${c.running + c.pending + c.scheduled}</td>
  <td>${formatTime(r.createdAt)}</td>
  <td class="num">${rolloutDuration(r, ctx.now)}</td>
</tr>`;
  });
  return html`<table class="rollouts">
<thead><tr><th>rollout</th><th>state</th><th>progress</th><th class="num">tenants</th><th class="num">succeeded</th><th class="num">failed</th><th class="num">cancelled</th><th class="num">open</th><th>created</th><th class="num">duration</th></tr></thead>
<tbody>${rows}</tbody>
</table>
${list.length >= limit ? html`<p><a href="/?limit=${limit * 5}">Show more rollouts</a></p>` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// GET /rollouts/<id>

function filterQuery(f: TenantFilter, change: Partial<TenantFilter>): string {
  const g = { ...f, ...change };
  const p = new URLSearchParams();
  if (g.state) p.set('state', g.state);
  if (g.q) p.set('q', g.q);
  if (g.page > 1) p.set('page', String(g.page));
  const s = p.toString();
  return s ? `?${s}` : '';
}

export function rolloutPage(ctx: PageContext, v: RolloutView, f: TenantFilter): Html {
  const base = `/rollouts/${encodeURIComponent(v.id)}`;
  const stream = `${base}/events${filterQuery(f, {})}`;
  const stateOptions = TENANT_STATES.map((s) => html`<option value="${s}"${f.state === s ? raw(' selected') : ''}>${s}</option>`);
  const regions = rolloutLive(ctx, v, f);
  return layout(
    ctx,
    `Rollout ${v.id}`,
    html`<a href="/">Rollouts</a> › <span>${v.id}</span>`,
    html`${region(regions, 'summary')}
<h2>Tenants</h2>
<form class="filter" method="get" action="${base}">
  <label>state <select name="state"><option value="">any</option>${stateOptions}</select></label>
  <label>tenant id <input type="search" name="q" value="${f.q ?? ''}" maxlength="100" placeholder="part of an id"></label>
  <button type="submit">Filter</button>
</form>
${region(regions, 'tenants')}`,
    stream,
  );
}

function actions(ctx: PageContext, v: RolloutView): Html {
  if (!ctx.writable) return html``;
  const retryable = v.counts.failed + v.counts.cancelled;
  const buttons = [
    retryable > 0
      ? html`<button type="button" data-action="retry" data-rollout="${v.id}" title="re-enqueue the failed and cancelled tenants">Retry ${retryable} failed/cancelled</button>`
      : '',
    v.state === 'running'
      ? html`<button type="button" data-action="cancel" data-rollout="${v.id}" title="tenants not started are cancelled, running ones finish">Cancel rollout</button>`
      : '',
    v.state === 'running' || v.counts.running > 0
      ? html`<button type="button" data-action="resume" data-rollout="${v.id}" title="rebuild the rollout's jobs in Redis from the control database">Resume</button>`
      : '',
  ];
  return html`<div class="actions">${buttons}</div>`;
}

export function rolloutLive(ctx: PageContext, v: RolloutView, f: TenantFilter): Regions {
  const n = v.tenants.length;
  const base = `/rollouts/${encodeURIComponent(v.id)}`;
  const counts = TENANT_STATES.map(
    (s) =>
      html`<li><a class="count s-${s}${f.state === s ? ' current' : ''}" data-state="${s}" href="${base}${filterQuery(f, { state: s, page: 1 })}"><b>${v.counts[s]}</b> ${s}</a></li>`,
  );
  // one pass over the tenants; a rollout of many small waves shows the ones around the current wave
  const perWave = Array.from(
    { length: v.waves },
    (): Record<TenantState, number> => ({ pending: 0, scheduled: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 }),
  );
  for (const t of v.tenants) {
    const c = perWave[t.wave - 1];
    if (c) c[t.state]++;
  }
  const first = Math.max(1, Math.min(v.wave - Math.floor(MAX_WAVE_ROWS / 2), v.waves - MAX_WAVE_ROWS + 1));
  const last = Math.min(v.waves, first + MAX_WAVE_ROWS - 1);
  const waves: Html[] = [];
  for (let w = first; w <= last; w++) {
    const c = perWave[w - 1]!;
    waves.push(html`<tr class="${w === v.wave && v.state === 'running' ? 'current' : ''}">
  <td>${w}</td><td class="num">${total(c)}</td><td class="num ok">${c.succeeded}</td><td class="num bad">${c.failed}</td>
  <td class="num">${c.cancelled}</td><td class="num">${c.running}</td><td class="num">${c.pending + c.scheduled}</td><td class="barcell">${progressBar(c)}</td>
</tr>`);
  }
  const q = f.q?.toLowerCase();
  const selected = v.tenants.filter((t) => (!f.state || t.state === f.state) && (!q || t.id.toLowerCase().includes(q)));
  const pages = Math.max(1, Math.ceil(selected.length / PAGE_SIZE));
  const page = Math.min(f.page, pages);
  const shown = selected.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
  const rows = shown.map(
    (t) => html`<tr data-tenant="${t.id}" data-state="${t.state}">
  <td><a href="${base}/tenants/${encodeURIComponent(t.id)}"><code>${t.id}</code></a></td>
  <td class="tstate">${stateBadge(t.state)}</td>
  <td class="num">${t.wave}</td>
  <td class="num">${t.attempts}</td>
  <td class="num">${formatDuration(t.durationMs)}</td>
  <td class="num">${t.applied.length}</td>
  <td class="error">${t.error ?? ''}</td>
  <td>${t.drift ? html`<span class="drift" title="schema differs from the rest of the fleet at this version">drift</span>` : ''}</td>
  <td>${t.state === 'scheduled' ? formatTime(t.notBefore) : ''}</td>
</tr>`,
  );
  const filterText = [f.state ? `state ${f.state}` : '', f.q ? `id containing “${f.q}”` : ''].filter(Boolean).join(', ');
  const summary = html`<section class="summary">
<h1>Rollout <code>${v.id}</code> ${stateBadge(v.state)}${v.dryRun ? html` <span class="tag">dry run</span>` : ''}</h1>
${v.haltReason ? html`<p class="halt">${v.state === 'cancelled' ? 'Cancelled' : 'Halted'}: ${v.haltReason}</p>` : ''}
<dl class="facts">
  <div><dt>wave</dt><dd>${v.wave} of ${v.waves}</dd></div>
  <div><dt>tenants</dt><dd>${n}</dd></div>
  <div><dt>finished</dt><dd>${finished(v.counts)} of ${n}</dd></div>
  <div><dt>created</dt><dd>${formatTime(v.createdAt)}</dd></div>
  <div><dt>ended</dt><dd>${formatTime(v.finishedAt)}</dd></div>
  <div><dt>duration</dt><dd>${rolloutDuration(v, ctx.now)}</dd></div>
</dl>
${progressBar(v.counts, true)}
<ul class="counts">${counts}</ul>
${actions(ctx, v)}
</section>
<section>
<h2>Waves${first > 1 || last < v.waves ? html` <small>(${first}–${last} of ${v.waves})</small>` : ''}</h2>
<table class="waves"><thead><tr><th>wave</th><th class="num">tenants</th><th class="num">succeeded</th><th class="num">failed</th><th class="num">cancelled</th><th class="num">running</th><th class="num">waiting</th><th>progress</th></tr></thead>
<tbody>${waves}</tbody></table>
</section>`;
  const tenants = html`<section>
${filterText ? html`<p class="filtered">${filterText}: ${selected.length} of ${n} tenants · <a href="${base}">show all</a></p>` : ''}
<table class="tenants">
<thead><tr><th>tenant</th><th>state</th><th class="num">wave</th><th class="num">attempts</th><th class="num">duration</th><th class="num">applied</th><th>last error</th><th>drift</th><th>window opens</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="9" class="empty">No tenant${filterText ? ' matches' : ''}.</td></tr>`}</tbody>
</table>
${
  pages > 1
    ? html`<p class="pager">${page > 1 ? html`<a href="${base}${filterQuery(f, { page: page - 1 })}">‹ previous</a> ` : ''}page ${page} of ${pages} (${PAGE_SIZE} a page)${
        page < pages ? html` <a href="${base}${filterQuery(f, { page: page + 1 })}">next ›</a>` : ''
      }</p>`
    : ''
}
</section>`;
  return { summary, tenants };
}

// ---------------------------------------------------------------------------------------------
// GET /rollouts/<id>/tenants/<tenant>

export type TenantEntry = RolloutView['tenants'][number];

export function tenantPage(ctx: PageContext, v: RolloutView, t: TenantEntry, h: TenantHistory): Html {
  const base = `/rollouts/${encodeURIComponent(v.id)}`;
  const stream = `${base}/tenants/${encodeURIComponent(t.id)}/events`;
  return layout(
    ctx,
    `${t.id} · ${v.id}`,
    html`<a href="/">Rollouts</a> › <a href="${base}">${v.id}</a> › <span>${t.id}</span>`,
    region(tenantLive(v, t, h), 'tenant'),
    stream,
  );
}

export function tenantLive(v: RolloutView, t: TenantEntry, h: TenantHistory): Regions {
  return { tenant: tenantDetail(v, t, h) };
}

function tenantDetail(v: RolloutView, t: TenantEntry, h: TenantHistory): Html {
  const w = h.target.window;
  const attempts = h.attempts.map(
    (a) => html`<tr data-state="${a.state}">
  <td class="num">${a.generation}</td><td class="num">${a.attempt}</td><td>${a.kind}</td><td>${stateBadge(a.state)}</td>
  <td>${formatTime(a.startedAt)}</td><td class="num">${formatDuration(a.durationMs)}</td><td>${a.worker ?? ''}</td>
  <td class="num">${a.applied.length}</td><td class="error">${a.error ? html`${a.error.code ? html`<code>${a.error.code}</code> ` : ''}${a.error.message}` : ''}</td>
</tr>`,
  );
  return html`<section class="summary">
<h1>Tenant <code>${t.id}</code> ${stateBadge(t.state)}</h1>
<p>in rollout <a href="/rollouts/${encodeURIComponent(v.id)}"><code>${v.id}</code></a> ${stateBadge(v.state)}</p>
${t.error ? html`<p class="halt error">${t.error}</p>` : ''}
<dl class="facts">
  <div><dt>database</dt><dd><code>${h.target.databaseUrl}</code></dd></div>
  <div><dt>schema</dt><dd>${h.target.schema ?? html`<span class="muted">–</span>`}</dd></div>
  <div><dt>server</dt><dd>${h.target.server}</dd></div>
  <div><dt>window</dt><dd>${w ? `${w.cron} for ${w.durationMinutes} min (${w.tz ?? 'UTC'})` : html`<span class="muted">any time</span>`}</dd></div>
  ${t.state === 'scheduled' ? html`<div><dt>window opens</dt><dd>${formatTime(t.notBefore)}</dd></div>` : ''}
  <div><dt>wave</dt><dd>${t.wave}</dd></div>
  <div><dt>attempts</dt><dd>${t.attempts}</dd></div>
  <div><dt>retries</dt><dd>${h.generation}</dd></div>
  <div><dt>duration</dt><dd>${formatDuration(t.durationMs) || html`<span class="muted">–</span>`}</dd></div>
  <div><dt>worker</dt><dd>${h.worker ?? html`<span class="muted">–</span>`}</dd></div>
  <div><dt>drift</dt><dd>${t.drift ? html`<span class="drift">schema differs from the rest of the fleet</span>` : 'no'}</dd></div>
</dl>
<h2>Applied (${t.applied.length})</h2>
${t.applied.length ? html`<ol class="applied">${t.applied.map((a) => html`<li><code>${a}</code></li>`)}</ol>` : html`<p class="muted">nothing yet</p>`}
</section>
<section>
<h2>Attempts</h2>
<table class="attempts"><thead><tr><th class="num">retry</th><th class="num">attempt</th><th>kind</th><th>state</th><th>started</th><th class="num">duration</th><th>worker</th><th class="num">applied</th><th>error</th></tr></thead>
<tbody>${attempts.length ? attempts : html`<tr><td colspan="9" class="empty">No attempt recorded yet.</td></tr>`}</tbody></table>
</section>`;
}

// ---------------------------------------------------------------------------------------------

export function problemPage(ctx: PageContext, title: string, message: string, hint?: string): Html {
  return layout(
    ctx,
    title,
    html`<a href="/">Rollouts</a>`,
    html`<h1>${title}</h1><p class="halt">${message}</p>${hint ? html`<p>${hint}</p>` : ''}<p><a href="/">Back to the rollouts</a></p>`,
    undefined,
  );
}
