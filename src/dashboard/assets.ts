/**
 * The dashboard's style sheet and its one small client script, inlined in every page (with
 * the response's nonce: the Content-Security-Policy allows nothing else). No build step.
 *
 * The script does two things:
 * - live updates: the page (`main[data-stream]`) subscribes to its event stream (server-sent
 *   events); each `live` event carries the page's live regions (element id -> HTML), rendered
 *   and escaped by the server exactly as in the page, and replaces them. EventSource
 *   reconnects by itself.
 * - actions: a `button[data-action]` POSTs to /api/rollouts/<id>/<action> with
 *   `Authorization: Bearer <token>`. The token is asked once with a prompt and kept in
 *   sessionStorage (this tab only, gone when it closes; never in a cookie, the URL or the page);
 *   a 401 forgets it. The server never sends it to a page: it only knows whether one is set.
 */

export const STYLE = `
:root { --ok: #2e7d32; --bad: #c62828; --run: #1565c0; --wait: #9e9e9e; --sched: #6a1b9a; --cancel: #616161; --line: #e0e0e0; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212121; background: #fafafa; }
header.top { display: flex; gap: 1.2em; align-items: baseline; padding: .6em 1.2em; background: #263238; color: #eceff1; }
header.top a { color: #eceff1; }
.brand { font-weight: 700; text-decoration: none; font-size: 1.1em; }
.crumbs { flex: 1; }
.mode, .conn { font-size: .85em; opacity: .85; }
main { padding: 0 1.2em 2em; max-width: 1400px; }
h1 { font-size: 1.35em; margin: .8em 0 .3em; }
h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
h2 small { font-weight: 400; font-size: .8em; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, monospace; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f5f5f5; font-weight: 600; font-size: .9em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.ok { color: var(--ok); } td.bad { color: var(--bad); }
td.error { color: var(--bad); max-width: 38em; overflow-wrap: anywhere; white-space: pre-wrap; font-size: .92em; }
td.barcell { width: 22%; min-width: 120px; }
tr.current td { background: #e3f2fd; }
.state { display: inline-block; padding: 0 .5em; border-radius: 3px; color: #fff; font-size: .85em; background: var(--wait); }
.s-succeeded.state { background: var(--ok); } .s-failed.state, .s-halted.state { background: var(--bad); }
.s-running.state { background: var(--run); } .s-scheduled.state { background: var(--sched); } .s-cancelled.state { background: var(--cancel); }
.s-retrying.state { background: #ef6c00; }
svg.bar { width: 100%; height: 10px; display: block; }
svg.bar.big { height: 18px; margin: .6em 0; }
svg.bar .track { fill: #eeeeee; }
svg.bar .s-succeeded { fill: var(--ok); } svg.bar .s-failed { fill: var(--bad); } svg.bar .s-cancelled { fill: var(--cancel); }
svg.bar .s-running { fill: var(--run); } svg.bar .s-scheduled { fill: var(--sched); } svg.bar .s-pending { fill: #bdbdbd; }
ul.counts { list-style: none; display: flex; flex-wrap: wrap; gap: .5em; padding: 0; margin: .4em 0; }
a.count { display: inline-block; padding: .15em .6em; border: 1px solid var(--line); border-radius: 3px; text-decoration: none; color: inherit; background: #fff; }
a.count.current { border-color: #263238; box-shadow: inset 0 -2px 0 #263238; }
a.count.s-succeeded b { color: var(--ok); } a.count.s-failed b { color: var(--bad); } a.count.s-running b { color: var(--run); }
dl.facts { display: flex; flex-wrap: wrap; gap: .3em 2em; margin: .4em 0; }
dl.facts div { min-width: 8em; } dt { font-size: .8em; color: #757575; } dd { margin: 0; }
.halt { padding: .5em .8em; background: #ffebee; border-left: 4px solid var(--bad); white-space: pre-wrap; overflow-wrap: anywhere; }
.actions { display: flex; gap: .6em; margin: .6em 0; }
.actions button { padding: .35em 1em; font: inherit; cursor: pointer; border: 1px solid #455a64; border-radius: 3px; background: #fff; }
.actions button[data-action="retry"] { background: #263238; color: #fff; }
button.link { background: none; border: none; color: inherit; text-decoration: underline; cursor: pointer; font: inherit; padding: 0; }
.notice { margin: 0 1.2em; }
.notice:not(:empty) { margin-top: .8em; padding: .5em .8em; background: #e8f5e9; border-left: 4px solid var(--ok); }
.notice.bad:not(:empty) { background: #ffebee; border-left-color: var(--bad); }
p.filtered { margin: .3em 0; }
form.filter { margin: .4em 0 .8em; display: flex; gap: 1em; align-items: center; }
.tag { font-size: .8em; padding: 0 .4em; border: 1px solid #90a4ae; border-radius: 3px; }
.drift { color: #ef6c00; font-weight: 600; }
.muted, .empty { color: #9e9e9e; }
ol.applied { margin: .2em 0; columns: 2; }
`;

export const CLIENT_SCRIPT = `
(function () {
  'use strict';
  var KEY = 'flotilla-dashboard-token';
  var main = document.querySelector('main[data-stream]');
  var conn = document.getElementById('conn');
  var notice = document.getElementById('notice');
  var forget = document.getElementById('forget');
  function say(text, bad) { notice.textContent = text; notice.className = bad ? 'notice bad' : 'notice'; }
  function showForget() { if (forget) forget.hidden = !sessionStorage.getItem(KEY); }
  if (main && window.EventSource) {
    var es = new EventSource(main.dataset.stream);
    es.addEventListener('live', function (e) {
      var regions = JSON.parse(e.data);
      Object.keys(regions).forEach(function (id) {
        var el = document.getElementById(id);
        if (el && el.classList.contains('region')) el.innerHTML = regions[id];
      });
      conn.textContent = 'live · ' + new Date().toLocaleTimeString();
    });
    es.addEventListener('problem', function (e) { conn.textContent = e.data; });
    es.onerror = function () { conn.textContent = 'reconnecting…'; };
  }
  if (forget) {
    showForget();
    forget.addEventListener('click', function () { sessionStorage.removeItem(KEY); showForget(); say('Token forgotten in this tab.'); });
  }
  function describe(action, body) {
    if (action === 'retry') return 'Retry: ' + (body.counts ? (body.counts.pending + body.counts.scheduled + body.counts.running) + ' tenants waiting or running' : 'done') +
      (body.notices && body.notices.length ? ' · ' + body.notices.join(' · ') : '');
    if (action === 'cancel') return 'Cancelled: ' + body.counts.cancelled + ' tenants cancelled, ' + body.counts.running + ' still running.';
    return 'Resumed: ' + body.recreated + ' jobs re-created, ' + body.dispatched + ' dispatched' + (body.notices && body.notices.length ? ' · ' + body.notices.join(' · ') : '');
  }
  document.addEventListener('click', function (ev) {
    var b = ev.target.closest && ev.target.closest('button[data-action]');
    if (!b) return;
    var action = b.dataset.action, rollout = b.dataset.rollout;
    if (action === 'cancel' && !window.confirm('Cancel rollout ' + rollout + '? Tenants not started are cancelled; running ones finish.')) return;
    var token = sessionStorage.getItem(KEY);
    if (!token) {
      token = window.prompt('Dashboard token (FLOTILLA_DASHBOARD_TOKEN). Kept in this tab only.');
      if (!token) return;
    }
    b.disabled = true;
    say(action + '…');
    fetch('/api/rollouts/' + encodeURIComponent(rollout) + '/' + action, { method: 'POST', headers: { Authorization: 'Bearer ' + token } })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (r.status === 401) { sessionStorage.removeItem(KEY); say('Not allowed: ' + ((body.error && body.error.message) || 'wrong token') + '. The token was forgotten; press again to enter it.', true); }
          else if (!r.ok) say(action + ' failed: ' + ((body.error && (body.error.message + (body.error.hint ? ' ' + body.error.hint : ''))) || r.statusText), true);
          else { sessionStorage.setItem(KEY, token); say(describe(action, body)); }
          showForget();
        });
      })
      .catch(function (e) { say(action + ' failed: ' + e.message, true); })
      .then(function () { b.disabled = false; });
  });
})();
`;
