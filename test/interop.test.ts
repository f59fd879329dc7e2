import { WebSocket } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type Backend } from '../backend/server.js';
import { backendSchema, defaults } from '../lib/config.js';
import { logger } from '../lib/log.js';
import { peerSkipReason, runPeer } from './helpers/python-peer.js';

// Interop: the backend against clients that share NO code with it.
//   - test/peers/rfc8441_client.py: hyper-h2 + wsproto, RFC 8441 over h2c on one TCP connection;
//   - undici's WebSocket (the implementation behind Node's global WebSocket) over HTTP/1.1.
// Our own MuxClient/H1Client reuse lib/ws-h2-adapter.ts and `ws`, so a misreading of the RFCs
// shared by client and server would pass their tests; it cannot pass these.
//
// Not covered: undici's experimental RFC 8441 client (`Agent({ allowH2: true })`). In undici 7 it
// insists on `sec-websocket-accept` in the 200, which RFC 8441 §5 says is not used, so it fails
// (1006) against any compliant server, this one included (nodejs/undici#5681).

/** Sum of a prom-client counter's samples whose labels match `labels`. */
async function counterValue(counter: Backend['metrics']['handshakes'], labels: Record<string, string>): Promise<number> {
  const { values } = await counter.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k as keyof typeof v.labels]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}

let backend: Backend;
/** Every undici socket a test opened, so afterAll can close what a failed test left behind. */
const openSockets = new Set<WebSocket>();
beforeAll(async () => {
  const log = logger('backend', { backend: 'b1' });
  log.level = process.env.LOG_LEVEL ?? 'warn';
  backend = await startBackend(defaults(backendSchema, { id: 'b1', port: 0 }), log);
});
afterAll(async () => {
  for (const ws of openSockets) if (ws.readyState !== WebSocket.CLOSED) ws.close();
  await backend?.close();
});

describe('RFC 8441 peer: hyper-h2 + wsproto over h2c', () => {
  const common = () => ['--host', '127.0.0.1', '--port', String(backend.port), '--timeout', '30'];

  it.skipIf(peerSkipReason !== undefined)('200 WebSockets × 3 echoes on ONE TCP connection, chat.v1 negotiated, all closed 1000', async () => {
    const before = await counterValue(backend.metrics.handshakes, { transport: 'h2', route: 'echo', result: 'ok' });
    const { exitCode, stderr, report } = await runPeer([...common(), '--path', '/echo', '--streams', '200', '--messages', '3', '--protocol', 'chat.v1']);

    expect(report.errors).toEqual([]);
    expect(exitCode, stderr).toBe(0);
    expect(report).toMatchObject({
      streams_opened: 200,
      echoes_ok: 600,
      echoes_expected: 600,
      backends: { b1: 200 },
      protocol: 'chat.v1',
      close_codes: { '1000': 200 },
      tcp_connections: 1,
    });
    // The server's own count agrees: these really were HTTP/2 streams, not a silent H1 fallback.
    const after = await counterValue(backend.metrics.handshakes, { transport: 'h2', route: 'echo', result: 'ok' });
    expect(after - before).toBe(200);
  });

  it.skipIf(peerSkipReason !== undefined)('server preference decides between several offered subprotocols; none offered → none', async () => {
    const both = await runPeer([...common(), '--streams', '3', '--messages', '1', '--protocol', 'chat.v1,chat.v2']);
    expect(both.report.errors).toEqual([]);
    expect(both.exitCode, both.stderr).toBe(0);
    expect(both.report.protocol).toBe('chat.v2');

    const none = await runPeer([...common(), '--streams', '3', '--messages', '1']);
    expect(none.report.errors).toEqual([]);
    expect(none.exitCode, none.stderr).toBe(0);
    expect(none.report.protocol).toBe('');
  });

  it.skipIf(peerSkipReason !== undefined)('an unknown path is refused per stream with 404, and the peer reports failure', async () => {
    const { exitCode, report } = await runPeer([...common(), '--path', '/nope', '--streams', '2', '--messages', '1']);
    expect(exitCode).toBe(1);
    expect(report.streams_opened).toBe(0);
    expect(report.backends).toEqual({ b1: 2 });
    expect(report.stream_endings).toEqual({ 'refused:404': 2 });
  });
});

// ---- undici over HTTP/1.1 -------------------------------------------------------------------------

/** Messages in arrival order, so nothing sent before a listener is attached gets lost. */
class Inbox {
  readonly #queue: unknown[] = [];
  readonly #waiters: { match: (m: unknown) => boolean; resolve: (m: unknown) => void }[] = [];

  constructor(ws: WebSocket) {
    ws.addEventListener('message', (event) => {
      const data: unknown = event.data;
      const waiter = this.#waiters.findIndex((w) => w.match(data));
      if (waiter >= 0) this.#waiters.splice(waiter, 1)[0]!.resolve(data);
      else this.#queue.push(data);
    });
  }

  /** The first message (queued or future) that satisfies `match`; earlier non-matching ones stay queued. */
  take<T>(match: (m: unknown) => boolean = () => true): Promise<T> {
    const i = this.#queue.findIndex(match);
    if (i >= 0) return Promise.resolve(this.#queue.splice(i, 1)[0] as T);
    return new Promise((resolve) => this.#waiters.push({ match, resolve: resolve as (m: unknown) => void }));
  }
}

type Opened = { ws: WebSocket; inbox: Inbox };

function open(path: string, protocols?: string[]): Promise<Opened> {
  const ws = new WebSocket(`ws://127.0.0.1:${backend.port}${path}`, protocols);
  openSockets.add(ws);
  ws.binaryType = 'arraybuffer';
  const inbox = new Inbox(ws);
  return new Promise((resolve, reject) => {
    ws.addEventListener('open', () => resolve({ ws, inbox }), { once: true });
    ws.addEventListener('close', (e) => reject(new Error(`${path}: closed before open (${e.code} ${e.reason})`)), { once: true });
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string; wasClean: boolean }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.reject(new Error('already closed; its close event is gone'));
  return new Promise((resolve) =>
    ws.addEventListener('close', (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean }), { once: true }),
  );
}

interface ChatEvent {
  type: string;
  room: string;
  text?: string;
  members?: number;
  binary?: boolean;
  backend: string;
}

const chat = (type: string, text?: string) => (m: unknown) => {
  if (typeof m !== 'string') return false;
  const event = JSON.parse(m) as ChatEvent;
  return event.type === type && (text === undefined || event.text === text);
};
const parse = (m: string) => JSON.parse(m) as ChatEvent;

describe('undici WebSocket over HTTP/1.1 Upgrade', () => {
  it('echoes text and binary, and round-trips close code 4001 with its reason', async () => {
    const { ws, inbox } = await open('/echo');
    expect(ws.protocol).toBe('');

    ws.send('héllo, ☃');
    expect(await inbox.take<string>()).toBe('héllo, ☃');

    const bytes = new Uint8Array([0, 1, 2, 127, 128, 255]);
    ws.send(bytes);
    const echoed = await inbox.take<ArrayBuffer>();
    expect(echoed).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(echoed)]).toEqual([...bytes]);

    const done = closed(ws);
    ws.close(4001, 'bye');
    expect(await done).toEqual({ code: 4001, reason: 'bye', wasClean: true });
  });

  it('negotiates the server-preferred subprotocol (offered chat.v1, chat.v2 → chat.v2)', async () => {
    const { ws, inbox } = await open('/echo', ['chat.v1', 'chat.v2']);
    expect(ws.protocol).toBe('chat.v2');
    ws.send('still echoing');
    expect(await inbox.take<string>()).toBe('still echoing');
    const done = closed(ws);
    ws.close(1000);
    expect((await done).code).toBe(1000);
  });

  it('two clients in /chat/room1 see each other’s messages', async () => {
    const a = await open('/chat/room1');
    expect(parse(await a.inbox.take<string>(chat('join')))).toMatchObject({ type: 'join', room: 'room1', members: 1, backend: 'b1' });

    const b = await open('/chat/room1');
    expect(parse(await b.inbox.take<string>(chat('join')))).toMatchObject({ type: 'join', members: 2 });
    expect(parse(await a.inbox.take<string>(chat('join')))).toMatchObject({ type: 'join', members: 2 });

    a.ws.send(JSON.stringify({ text: 'hello from a' }));
    for (const who of [a, b]) {
      expect(parse(await who.inbox.take<string>(chat('message', 'hello from a')))).toMatchObject({
        type: 'message',
        room: 'room1',
        text: 'hello from a',
        backend: 'b1',
      });
    }
    b.ws.send(JSON.stringify({ text: 'hello from b' }));
    expect(parse(await a.inbox.take<string>(chat('message', 'hello from b')))).toMatchObject({ type: 'message', text: 'hello from b' });
    expect(parse(await b.inbox.take<string>(chat('message', 'hello from b')))).toMatchObject({ type: 'message', text: 'hello from b' });

    const bClosed = closed(b.ws);
    b.ws.close(1000);
    expect((await bClosed).code).toBe(1000);
    expect(parse(await a.inbox.take<string>(chat('leave')))).toMatchObject({ type: 'leave', room: 'room1', members: 1 });

    const aClosed = closed(a.ws);
    a.ws.close(1000);
    expect((await aClosed).code).toBe(1000);
  });
});
