// Chat page: the browser's own WebSocket, through the front, to /chat/<room>.
//
// Protocol (backend/routes.ts): the backend sends {"type":"welcome", room, member, backend, transport, bus},
// then {"type":"message", offset, text, from, backend} and join/leave notices; we send {"text": "..."}.
// `transport` is what the front saw from this browser (x-front-http-version): the page cannot read the
// HTTP version of a WebSocket itself (Resource Timing has no entry for it), the server can.
//
// Reconnects follow the project's close-code policy (client/session-keeper.ts): 1001, 1005, 1006, 1011,
// 1012, 1013 mean "come back" (with ?since=<last offset>, so nothing is missed); anything else means stop.

const config = JSON.parse(document.getElementById('gw-config').textContent);
const REOPEN_CODES = new Set([1001, 1005, 1006, 1011, 1012, 1013]);
const ROOM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const $ = (id) => document.getElementById(id);

const state = {
  ws: null,
  room: null,
  welcome: null,
  lastOffset: null,
  reconnects: 0,
  leaving: false,
  messages: [],
  closes: [],
};
// For tests and the curious: `gwChat.welcome.transport` is what the front reported.
window.gwChat = state;

$('plain-url').textContent = config.frontWs;
if (config.frontTlsWss) {
  $('tls-choice').hidden = false;
  $('tls-url').textContent = config.frontTlsWss;
}

const TRANSPORT_TEXT = {
  h1: 'HTTP/1.1 Upgrade (101 Switching Protocols)',
  h2: 'HTTP/2 extended CONNECT, RFC 8441 (200)',
};

function setState(text) {
  $('state').textContent = text;
}

function addLine(cls, parts) {
  const li = document.createElement('li');
  if (cls) li.className = cls;
  for (const [kind, text] of parts) {
    const span = document.createElement('span');
    if (kind) span.className = kind;
    span.textContent = text;
    li.append(span);
  }
  const list = $('messages');
  list.append(li);
  while (list.children.length > 500) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
  return li;
}

function onMessage(event) {
  let msg;
  try {
    msg = JSON.parse(event.data);
  } catch {
    return;
  }
  if (msg.offset) state.lastOffset = msg.offset;
  switch (msg.type) {
    case 'welcome': {
      state.welcome = msg;
      $('backend').textContent = msg.backend;
      $('transport').innerHTML = '';
      const badge = document.createElement('span');
      badge.className = `badge ${msg.transport}`;
      badge.textContent = msg.transport;
      $('transport').append(badge, ' ', TRANSPORT_TEXT[msg.transport] ?? msg.transport);
      $('member').textContent = msg.member;
      $('bus').textContent = `${msg.bus}${msg.status && msg.status !== 'ok' ? ` (${msg.status})` : ''}`;
      setState(`open — on ${msg.backend}`);
      addLine('notice', [[null, `joined ${msg.room} as ${msg.member}, on backend ${msg.backend}, over ${msg.transport}`]]);
      break;
    }
    case 'message': {
      state.messages.push(msg);
      const mine = state.welcome && msg.from === state.welcome.member;
      const li = addLine(mine ? 'mine' : '', [
        ['offset', msg.offset ?? ''],
        ['who', mine ? 'you' : msg.from],
        ['via', `@${msg.backend}`],
        ['text', msg.text],
      ]);
      li.dataset.offset = msg.offset ?? '';
      li.dataset.testid = 'message';
      break;
    }
    case 'join':
    case 'leave':
      if (typeof msg.members === 'number') $('members').textContent = ` · ${msg.members} member${msg.members === 1 ? '' : 's'}`;
      addLine('notice', [[null, `${msg.from} ${msg.type === 'join' ? 'joined' : 'left'} (on ${msg.backend})`]]);
      break;
    case 'history-too-old':
    case 'history-unavailable':
      addLine('notice', [[null, `could not replay everything missed (${msg.type})`]]);
      break;
    case 'error':
      addLine('notice error', [[null, `server: ${msg.message ?? msg.code}`]]);
      break;
  }
}

function setConnected(connected) {
  $('text').disabled = !connected;
  $('send-button').disabled = !connected;
  $('leave').disabled = !state.room;
}

async function warmUpTls() {
  // Chrome carries a WebSocket over HTTP/2 only on an HTTP/2 connection it already has to that origin
  // (credentialed, like the WebSocket): make one. A self-signed certificate must be trusted first.
  try {
    await fetch(`${config.frontTlsHttps}/healthz`, { mode: 'no-cors', credentials: 'include', cache: 'no-store' });
  } catch (err) {
    addLine('notice error', [[null, `could not reach ${config.frontTlsHttps} (${err.message}); open it once in a tab and accept its certificate`]]);
  }
}

async function connect(isReconnect) {
  const via = document.querySelector('input[name=via]:checked')?.value ?? 'plain';
  const base = via === 'tls' && config.frontTlsWss ? config.frontTlsWss : config.frontWs;
  if (via === 'tls' && !isReconnect) await warmUpTls();
  const url = new URL(`${base}/chat/${encodeURIComponent(state.room)}`);
  if (isReconnect && state.lastOffset) url.searchParams.set('since', state.lastOffset);
  $('ws-url').textContent = url.href;
  $('room-label').textContent = state.room;
  setState(isReconnect ? 'reconnecting…' : 'connecting…');
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.addEventListener('open', () => {
    setState('handshake done, waiting for welcome');
    setConnected(true);
  });
  ws.addEventListener('message', onMessage);
  ws.addEventListener('close', (event) => {
    if (state.ws !== ws) return;
    state.closes.push({ code: event.code, reason: event.reason, at: Date.now() });
    setConnected(false);
    state.ws = null;
    if (state.leaving || !REOPEN_CODES.has(event.code)) {
      setState(`closed (${event.code}${event.reason ? ` ${event.reason}` : ''})`);
      if (!state.leaving) addLine('notice', [[null, `session closed with ${event.code}; not reconnecting`]]);
      return;
    }
    state.reconnects++;
    $('reconnects').textContent = String(state.reconnects);
    const delay = Math.random() * Math.min(5000, 250 * 2 ** Math.min(state.reconnects, 5));
    addLine('notice', [[null, `session closed with ${event.code} (${event.reason || 'no reason'}); reconnecting in ${Math.round(delay)} ms`]]);
    setState(`closed (${event.code}), reconnecting`);
    setTimeout(() => {
      if (!state.leaving && state.room) void connect(true);
    }, delay);
  });
}

$('join').addEventListener('submit', (event) => {
  event.preventDefault();
  const room = $('room').value.trim();
  if (!ROOM_NAME.test(room)) {
    addLine('notice error', [[null, 'room name: 1-64 characters of A-Z a-z 0-9 _ . -']]);
    return;
  }
  leave();
  state.leaving = false;
  state.room = room;
  state.welcome = null;
  state.lastOffset = null;
  state.reconnects = 0;
  $('messages').innerHTML = '';
  $('members').textContent = '';
  history.replaceState(null, '', `?room=${encodeURIComponent(room)}`);
  void connect(false);
});

function leave() {
  state.leaving = true;
  state.room = null;
  state.ws?.close(1000, 'left the room');
  setConnected(false);
}
$('leave').addEventListener('click', () => {
  leave();
  setState('left');
});

$('send').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('text').value;
  if (!text || !state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  state.ws.send(JSON.stringify({ text }));
  $('text').value = '';
});

// ?room=<name> joins at once (links from the dashboard, and tests).
const initial = new URLSearchParams(location.search).get('room');
if (initial && ROOM_NAME.test(initial)) {
  $('room').value = initial;
  $('join').requestSubmit();
}
