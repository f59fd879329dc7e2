// Dashboard: the admin API, live. Server-Sent Events from /events push registry changes, drains and
// hot restarts the moment they happen; /endpoints (health: sessions by the client's transport),
// /front (connections vs sessions at the proxy), /hot-restart (generations) and /load are polled
// once a second for the numbers that change without an event.

import { colorOf, drawTimeChart } from './charts.js';

const $ = (id) => document.getElementById(id);
const HISTORY_MS = 5 * 60_000;
const state = {
  endpoints: new Map(),
  version: null,
  generations: [],
  front: null,
  load: null,
  events: [],
  lastEventId: 0,
  live: false,
  // One sample a second for the charts: { at, backends: { id: sessions }, h2, h1, connections, sessions, messagesPerS }.
  history: [],
  // Dashed lines on the charts: { at, label, kind }.
  marks: [],
};
// For tests and the curious.
window.gwDashboard = state;

const fmt = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'));
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('data-')) node.setAttribute(k, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== undefined && c !== null));
  return node;
};

async function api(path, init = {}) {
  const res = await fetch(path, { credentials: 'same-origin', cache: 'no-store', ...init, headers: { 'content-type': 'application/json', ...init.headers } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body?.error?.message ?? `HTTP ${res.status}`);
  return body;
}

// ---- events ---------------------------------------------------------------------------------------

function describe(type, data) {
  switch (type) {
    case 'endpoint': {
      const e = data.endpoint;
      if (data.type === 'added') return `endpoint ${e.id} added (${e.host}:${e.port}, weight ${e.weight})`;
      if (data.type === 'removed') return `endpoint ${e.id} removed`;
      const changes = [];
      if (data.previous.state !== e.state) changes.push(`${data.previous.state} → ${e.state}`);
      if (data.previous.weight !== e.weight) changes.push(`weight ${data.previous.weight} → ${e.weight}`);
      return `endpoint ${e.id} ${changes.join(', ') || 'updated'}`;
    }
    case 'drained':
      return `endpoint ${data.id} drained in ${(data.durationMs / 1000).toFixed(1)} s (${data.closedAtDeadline} closed at the deadline${data.removed ? ', removed' : ''})`;
    case 'backend-restarted': {
      const cause = data.exit.signal ?? `exit code ${data.exit.code}`;
      return `backend ${data.id} died (${cause}) and was restarted: pid ${data.previousPid} → ${data.pid}, down ${(data.downMs / 1000).toFixed(1)} s (restart ${data.restarts})`;
    }
    case 'hot-restart':
      return `hot restart: generation ${data.generation} (${data.engine}) took the listeners in ${data.durationMs} ms; old pid ${data.oldPids.join(', ') || '–'} drains`;
    default:
      return `${type}: ${JSON.stringify(data)}`;
  }
}

const MARKED = { 'hot-restart': 'restart', drained: 'drained', 'backend-restarted': 'crash' };

function logEvent(type, text, at = new Date()) {
  if (MARKED[type]) state.marks.push({ at: at.getTime(), label: MARKED[type], kind: type });
  state.events.unshift({ type, text, at });
  state.events.length = Math.min(state.events.length, 50);
  const list = $('events');
  const li = el('li', { 'data-type': type }, el('time', {}, at.toLocaleTimeString('en-GB')), text);
  list.prepend(li);
  while (list.children.length > 50) list.lastElementChild.remove();
}

function setLive(on, text) {
  state.live = on;
  $('live').classList.toggle('on', on);
  $('live-text').textContent = text;
}

function connectEvents() {
  const source = new EventSource('/events');
  source.addEventListener('open', () => setLive(true, 'live (SSE)'));
  source.addEventListener('error', () => setLive(false, 'reconnecting…'));
  source.addEventListener('snapshot', (e) => {
    applySnapshot(JSON.parse(e.data));
    logEvent('snapshot', `connected: registry version ${state.version}, ${state.endpoints.size} endpoints`);
  });
  // Events from before this page (or this reconnect): the gateway replays its last 100; ids say which
  // of them this page has already shown. The snapshot already holds their effect on the endpoints.
  source.addEventListener('history', (e) => {
    for (const past of JSON.parse(e.data)) {
      if (past.id <= state.lastEventId) continue;
      state.lastEventId = past.id;
      logEvent(past.type, describe(past.type, past.data), new Date(past.at));
    }
  });
  const seen = (e) => {
    const id = Number(e.lastEventId);
    if (id && id <= state.lastEventId) return true;
    if (id) state.lastEventId = id;
    return false;
  };
  source.addEventListener('endpoint', (e) => {
    if (seen(e)) return;
    const data = JSON.parse(e.data);
    state.version = data.version;
    if (data.type === 'removed') state.endpoints.delete(data.endpoint.id);
    else state.endpoints.set(data.endpoint.id, { ...(state.endpoints.get(data.endpoint.id) ?? { health: null }), ...data.endpoint });
    renderEndpoints();
    if (data.type === 'updated' && data.endpoint.state === 'draining' && data.previous.state !== 'draining') state.marks.push({ at: Date.now(), label: `drain ${data.endpoint.id}`, kind: 'drain' });
    logEvent('endpoint', describe('endpoint', data));
  });
  source.addEventListener('drained', (e) => seen(e) || logEvent('drained', describe('drained', JSON.parse(e.data))));
  source.addEventListener('backend-restarted', (e) => seen(e) || logEvent('backend-restarted', describe('backend-restarted', JSON.parse(e.data))));
  source.addEventListener('hot-restart', (e) => {
    if (seen(e)) return;
    logEvent('hot-restart', describe('hot-restart', JSON.parse(e.data)));
    void refreshGenerations();
  });
}

// ---- endpoints ------------------------------------------------------------------------------------

function applySnapshot(view) {
  state.version = view.version;
  state.endpoints = new Map(view.endpoints.map((e) => [e.id, e]));
  renderEndpoints();
}

/** The add form's example, from this stack's endpoints: the next bN and the port after the highest. */
function renderAddHint(rows) {
  const ports = rows.map((e) => Number(e.port)).filter(Number.isInteger);
  if (ports.length === 0) return;
  const n = Math.max(0, ...rows.map((e) => Number(/^b(\d+)$/.exec(e.id)?.[1] ?? 0)));
  const port = Math.max(...ports) + 1;
  $('add-address').placeholder = `${rows[0].host}:${port}`;
  $('add-hint').textContent = `npm run backend -- --id b${n + 1} --port ${port}`;
}

function renderEndpoints() {
  $('registry-version').textContent = state.version === null ? '' : `registry version ${state.version}`;
  const rows = [...state.endpoints.values()].sort((a, b) => a.id.localeCompare(b.id, 'en', { numeric: true }));
  renderAddHint(rows);
  const maxSessions = Math.max(1, ...rows.map((e) => e.health?.sessions ?? 0));
  $('endpoints').replaceChildren(
    ...rows.map((e) => {
      const h = e.health;
      const t = h?.transports ?? { h1: 0, h2: 0 };
      const total = h?.sessions ?? 0;
      const bar = el(
        'div',
        { class: 'bar', title: `${t.h2} on HTTP/2, ${t.h1} on HTTP/1.1`, style: `width:${Math.max(8, (100 * total) / maxSessions)}%` },
        el('div', { class: 'h2', style: `width:${total ? (100 * t.h2) / total : 0}%` }),
        el('div', { class: 'h1', style: `width:${total ? (100 * t.h1) / total : 0}%` }),
      );
      const health = h === null || h === undefined ? el('span', { class: 'muted' }, 'not checked yet') : h.ok ? el('span', { class: 'badge ok' }, 'ok') : el('span', { class: 'badge bad', title: h.error ?? '' }, 'failing');
      const actions = el('td', {});
      if (e.state === 'draining') actions.append(el('button', { onclick: () => act(`PATCH`, `/endpoints/${e.id}`, { state: 'active' }) }, 'Cancel drain'));
      else actions.append(el('button', { 'data-testid': `drain-${e.id}`, onclick: () => act('POST', `/endpoints/${e.id}/drain`, {}) }, 'Drain'));
      actions.append(' ', el('button', { class: 'danger', onclick: () => act('DELETE', `/endpoints/${e.id}`) }, 'Remove'));
      return el(
        'tr',
        { 'data-endpoint': e.id, 'data-state': e.state },
        el('td', {}, el('b', {}, e.id)),
        el('td', { class: 'mono' }, `${e.host}:${e.port}`),
        el('td', {}, el('span', { class: `badge ${e.state}` }, e.state), e.drainDeadline ? el('span', { class: 'small muted' }, ` until ${new Date(e.drainDeadline).toLocaleTimeString('en-GB')}`) : null),
        el('td', { class: 'num' }, String(e.weight)),
        el('td', {}, health, h?.bus && h.bus !== 'ok' ? el('span', { class: 'badge draining' }, `bus ${h.bus}`) : null),
        el('td', { class: 'num', 'data-field': 'sessions' }, fmt(h?.sessions)),
        el('td', { class: 'num', 'data-field': 'h2' }, fmt(t.h2)),
        el('td', { class: 'num', 'data-field': 'h1' }, fmt(t.h1)),
        el('td', {}, bar),
        actions,
      );
    }),
  );
}

async function act(method, path, body) {
  $('endpoint-error').textContent = '';
  try {
    await api(path, { method, body: body === undefined ? undefined : JSON.stringify(body) });
    await refreshEndpoints();
  } catch (err) {
    $('endpoint-error').textContent = `${method} ${path}: ${err.message}`;
  }
}

$('add-endpoint').addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = { address: $('add-address').value.trim() };
  if ($('add-id').value.trim()) body.id = $('add-id').value.trim();
  if ($('add-weight').value) body.weight = Number($('add-weight').value);
  await act('POST', '/endpoints', body);
  if (!$('endpoint-error').textContent) $('add-endpoint').reset();
});

async function refreshEndpoints() {
  applySnapshot(await api('/endpoints'));
}

// ---- front and generations ----------------------------------------------------------------------

async function refreshFront() {
  const f = await api('/front');
  state.front = f;
  $('front-engine').textContent = `${f.engine} ${f.version}`;
  $('front-connections').textContent = fmt(f.connections);
  $('front-sessions').textContent = fmt(f.sessions);
  $('front-ratio').textContent = f.connections ? (f.sessions / f.connections).toFixed(f.sessions / f.connections >= 10 ? 0 : 1) : '–';
  $('front-totals').textContent = `since the front started: ${fmt(f.connectionsTotal)} connections, ${fmt(f.sessionsTotal)} sessions (HTTP requests and streams)`;
}

async function refreshGenerations() {
  const g = await api('/hot-restart');
  state.generations = g.generations;
  $('engine').textContent = g.engine;
  const rows = [...g.generations].sort((a, b) => b.generation - a.generation);
  $('generations').replaceChildren(
    ...rows.map((w) =>
      el(
        'tr',
        { 'data-generation': String(w.generation), 'data-current': String(w.current) },
        el('td', {}, el('b', {}, `#${w.generation}`)),
        el('td', { class: 'mono' }, String(w.pid)),
        el('td', {}, el('span', { class: `badge ${w.current ? 'current' : 'old'}` }, w.current ? 'current' : 'old: draining')),
        el('td', { class: 'num' }, fmt(w.sessions)),
        el('td', { class: 'num' }, fmt(w.connections)),
      ),
    ),
  );
}

$('hot-restart').addEventListener('click', async () => {
  $('hot-restart').disabled = true;
  try {
    await api('/hot-restart', { method: 'POST' });
    await refreshGenerations();
  } catch (err) {
    logEvent('error', `hot restart refused: ${err.message}`);
  } finally {
    $('hot-restart').disabled = false;
  }
});

// ---- load ---------------------------------------------------------------------------------------

function renderLoad(s) {
  const prev = state.load;
  state.load = s;
  const busy = s.state === 'opening' || s.state === 'running' || s.state === 'stopping';
  $('load-start').disabled = busy;
  $('load-stop').disabled = !busy;
  const opened = s.opened.h2 + s.opened.h1;
  const requested = s.requested.h2 + s.requested.h1;
  const parts = [];
  if (s.state === 'idle') {
    $('load-status').textContent = 'idle';
    return;
  }
  if (s.requested.h2) parts.push(`HTTP/2: ${fmt(s.open.h2)} sessions open on ${fmt(s.connections.h2)} TCP connection${s.connections.h2 === 1 ? '' : 's'}`);
  if (s.requested.h1) parts.push(`HTTP/1.1: ${fmt(s.open.h1)} sessions open on ${fmt(s.connections.h1)} TCP connections`);
  const left = s.state === 'running' && s.endsAt ? `, ${Math.max(0, Math.round((s.endsAt - Date.now()) / 1000))} s left` : '';
  const summary =
    s.state === 'done'
      ? `done: opened ${fmt(opened)}/${fmt(requested)} (failed ${fmt(s.failed)}), echoed ${fmt(s.echoed)}/${fmt(s.sent)}; at most ${fmt(s.peakConnections.h2)} HTTP/2 and ${fmt(s.peakConnections.h1)} HTTP/1.1 connections`
      : `${s.state}${left}: ${parts.join(' · ')} · echoed ${fmt(s.echoed)}/${fmt(s.sent)}${s.reopened ? ` · reopened ${fmt(s.reopened)} (closed by a drain or restart)` : ''}${s.failed ? ` · failed ${fmt(s.failed)}` : ''}`;
  $('load-status').textContent = summary;
  $('load-error').textContent = s.lastError ? `last error: ${s.lastError}` : '';
  if (prev && prev.state !== s.state && s.state === 'done') logEvent('load', `load finished: ${summary.slice(6)}`);
}

$('load').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('load-error').textContent = '';
  const body = { sessions: Number($('load-sessions').value), seconds: Number($('load-seconds').value), transport: $('load-transport').value };
  try {
    const s = await api('/load', { method: 'POST', body: JSON.stringify(body) });
    logEvent('load', `load started: ${body.sessions} sessions (${body.transport}) for ${body.seconds} s`);
    renderLoad(s);
  } catch (err) {
    $('load-error').textContent = err.message;
  }
});
$('load-stop').addEventListener('click', async () => renderLoad(await api('/load', { method: 'DELETE' })));

// ---- bench --------------------------------------------------------------------------------------

async function showBench() {
  const info = await api('/bench');
  if (!info.file) {
    $('bench').replaceChildren(el('p', { class: 'muted' }, 'No bench report yet. Make one with ', el('code', {}, 'npm run bench -- --quick'), ' (about a minute; it starts its own stack on private ports), then reload this page.'));
    return;
  }
  $('bench-file').textContent = `${info.file}, ${new Date(info.modified).toLocaleString('en-GB')}`;
  const charts = el('div', { class: 'charts', 'data-testid': 'bench-charts' });
  // The report's own SVG charts (generated by bench/report.ts; the server drops anything script-like,
  // and this page's CSP runs no inline script anyway).
  charts.innerHTML = info.charts.join('\n');
  $('bench').replaceChildren(
    el('p', { class: 'small' }, el('a', { href: info.url, target: '_blank' }, 'open the full report'), ` (tables, conditions, method) · ${info.charts.length} charts`),
    info.charts.length ? charts : el('p', { class: 'muted' }, 'this report has no charts section; open the full report'),
  );
}

// ---- history and charts ---------------------------------------------------------------------------

/** Messages handled per backend at the previous sample, to turn the backends' totals into a rate. */
const lastMessages = new Map();

function sample() {
  const at = Date.now();
  const backends = {};
  let h2 = 0;
  let h1 = 0;
  let messagesPerS = 0;
  for (const e of state.endpoints.values()) {
    const h = e.health;
    backends[e.id] = h?.sessions ?? 0;
    h2 += h?.transports?.h2 ?? 0;
    h1 += h?.transports?.h1 ?? 0;
    if (typeof h?.messages === 'number' && typeof h.checkedAt === 'number') {
      const prev = lastMessages.get(e.id);
      // Health checks may be slower than this page's polling: the same check again keeps the last
      // rate; a backend that restarted counts from 0 again, which gives no rate (not a negative one).
      let rate = prev?.rate ?? 0;
      if (prev && h.checkedAt > prev.checkedAt) rate = h.messages >= prev.messages ? ((h.messages - prev.messages) * 1000) / (h.checkedAt - prev.checkedAt) : 0;
      messagesPerS += rate;
      lastMessages.set(e.id, { messages: h.messages, checkedAt: h.checkedAt, rate });
    }
  }
  state.history.push({ at, backends, h2, h1, connections: state.front?.connections ?? null, sessions: state.front?.sessions ?? null, messagesPerS });
  while (state.history.length && state.history[0].at < at - HISTORY_MS) state.history.shift();
  while (state.marks.length && state.marks[0].at < at - HISTORY_MS) state.marks.shift();
}

function renderCharts() {
  const h = state.history;
  // The window grows with the page's age, from one minute up to five: a fresh page is not a squashed line at the right edge.
  const age = h.length ? Date.now() - h[0].at : 0;
  const common = { marks: state.marks, windowMs: Math.min(HISTORY_MS, Math.max(60_000, age)) };
  const ids = [...new Set(h.flatMap((s) => Object.keys(s.backends)))].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  drawTimeChart($('chart-backends'), {
    ...common,
    series: ids.map((id) => ({ name: id, color: colorOf(id), points: h.filter((s) => id in s.backends).map((s) => [s.at, s.backends[id]]) })),
  });
  const line = (name, color, pick) => ({ name, color, points: h.filter((s) => pick(s) !== null).map((s) => [s.at, pick(s)]) });
  drawTimeChart($('chart-front'), {
    ...common,
    series: [
      line('sessions at the front', '#333', (s) => s.sessions),
      line('client connections', '#999', (s) => s.connections),
      line('on HTTP/2 (streams)', 'var(--h2)', (s) => s.h2),
      line('on HTTP/1.1', 'var(--h1)', (s) => s.h1),
    ],
  });
  drawTimeChart($('chart-messages'), { ...common, unit: '/s', series: [line('messages/s', '#4e79a7', (s) => Math.round(s.messagesPerS))] });
}

// ---- polling ------------------------------------------------------------------------------------

async function poll() {
  const results = await Promise.allSettled([refreshFront(), refreshGenerations(), refreshEndpoints(), api('/load').then(renderLoad)]);
  const failed = results.filter((r) => r.status === 'rejected');
  if (failed.length === results.length) setLive(false, `admin API unreachable: ${failed[0].reason.message}`);
  else if (!state.live && failed.length === 0 && $('live-text').textContent.startsWith('admin API')) setLive(true, 'live (polling)');
  if (failed.length < results.length) {
    sample();
    renderCharts();
  }
  setTimeout(poll, 1000);
}

connectEvents();
void poll();
void showBench().catch((err) => $('bench').replaceChildren(el('p', { class: 'error' }, err.message)));
