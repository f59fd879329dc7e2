import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { WS_RECEIVE_DEFAULTS } from '../lib/config.js';
import { acceptExtendedConnect, checkWsInternals, openExtendedConnect, parseSubprotocols, type ReceiveLimits } from '../lib/ws-h2-adapter.js';
import { frame, rawH2, serverCloseCode } from './helpers/raw-ws.js';
import { closed } from './helpers/stack.js';

const LIMITS: ReceiveLimits = { ...WS_RECEIVE_DEFAULTS, maxPayload: 1024 * 1024 };

// The adapter against a bare node:http2 server and client: no backend, no proxy, nothing else in
// the way. If a `ws` upgrade changes an internal we rely on, the first block fails by name.

describe('ws internals the adapter relies on (fails loudly on a ws upgrade that changes them)', () => {
  it('checkWsInternals() accepts the installed ws', () => {
    expect(() => checkWsInternals()).not.toThrow();
  });
  it('WebSocket.prototype.setSocket(socket, head, options) exists', () => {
    const proto = WebSocket.prototype as unknown as { setSocket?: (...a: unknown[]) => void };
    expect(typeof proto.setSocket).toBe('function');
    expect(proto.setSocket!.length).toBe(3);
  });
  it('new WebSocket(null) is an un-handshaked server-role instance with _isServer/_protocol fields', () => {
    const ws = new (WebSocket as unknown as new (a: null, p: undefined, o: object) => WebSocket)(null, undefined, { autoPong: true });
    const internals = ws as unknown as Record<string, unknown>;
    expect(internals._isServer).toBe(true);
    expect(internals._protocol).toBe('');
    expect(ws.readyState).toBe(WebSocket.CONNECTING);
  });
  it('the receive bounds reach the fields ws enforces them from (an unknown option would be ignored silently)', () => {
    const ws = new (WebSocket as unknown as new (a: null, p: undefined, o: object) => WebSocket)(null, undefined, { autoPong: true, maxPendingAutoPongs: 7 });
    const internals = ws as unknown as { _maxPendingAutoPongs: number; setSocket(s: Duplex, h: Buffer, o: object): void; _receiver: Record<string, number> };
    expect(internals._maxPendingAutoPongs).toBe(7);
    const socket = new Duplex({ read() {}, write: (_c, _e, done) => done() });
    internals.setSocket(socket, Buffer.alloc(0), { maxPayload: 5, maxFragments: 6, maxBufferedChunks: 8 });
    expect({ maxPayload: internals._receiver._maxPayload, maxFragments: internals._receiver._maxFragments, maxBufferedChunks: internals._receiver._maxBufferedChunks }).toEqual({
      maxPayload: 5,
      maxFragments: 6,
      maxBufferedChunks: 8,
    });
    socket.destroy();
  });
});

interface Pair {
  server: http2.Http2Server;
  client: http2.ClientHttp2Session;
  serverSockets: WebSocket[];
}

let pair: Pair | undefined;
afterEach(async () => {
  pair?.client.destroy();
  await new Promise((r) => pair?.server.close(r) ?? r(undefined));
  pair = undefined;
});

async function startPair(
  opts: { enableConnect?: boolean; status?: number; reset?: boolean; hold?: 'silent' | 503; limits?: Partial<ReceiveLimits> } = {},
): Promise<Pair> {
  const serverSockets: WebSocket[] = [];
  const server = http2.createServer({ settings: { enableConnectProtocol: opts.enableConnect ?? true } });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    if (opts.reset) return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    // Keep the stream open: never answer, or answer 503 without ending it (as a proxy may).
    if (opts.hold === 'silent') return;
    if (opts.hold === 503) return stream.respond({ ':status': 503 });
    if (opts.status) {
      stream.respond({ ':status': opts.status });
      return stream.end();
    }
    const result = acceptExtendedConnect(stream, headers, { protocols: ['b', 'a'], responseHeaders: { 'x-backend-id': 't1' }, limits: { ...LIMITS, maxPayload: 1024, ...opts.limits } });
    if (!result.ok) return;
    result.ws.on('error', () => {});
    result.ws.on('message', (data, isBinary) => result.ws.send(data as Buffer, { binary: isBinary }));
    serverSockets.push(result.ws);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  client.on('error', () => {});
  await new Promise((r) => client.once('remoteSettings', r));
  pair = { server, client, serverSockets };
  return pair;
}

describe('WebSocket over an HTTP/2 stream', () => {
  it('echoes text and binary, negotiates a subprotocol and surfaces response headers', async () => {
    const { client } = await startPair();
    const opened = await openExtendedConnect(client, { path: '/x', protocols: ['a', 'b'] });
    expect(opened.protocol).toBe('b'); // server preference order
    expect(opened.ws.protocol).toBe('b');
    expect(opened.headers['x-backend-id']).toBe('t1');
    const { ws } = opened;
    const text = await new Promise<[string, boolean]>((r) => {
      ws.once('message', (d, bin) => r([d.toString(), bin]));
      ws.send('hello');
    });
    expect(text).toEqual(['hello', false]);
    const binary = await new Promise<[Buffer, boolean]>((r) => {
      ws.once('message', (d, bin) => r([d as Buffer, bin]));
      ws.send(Buffer.from([0, 1, 2, 255]));
    });
    expect(binary).toEqual([Buffer.from([0, 1, 2, 255]), true]);
    const pong = await new Promise<string>((r) => {
      ws.once('pong', (d) => r(d.toString()));
      ws.ping('are you there');
    });
    expect(pong).toBe('are you there');
    expect(typeof ws.bufferedAmount).toBe('number');
  });

  // What a proxy that turns an HTTP/1.1 Upgrade into extended CONNECT (Envoy, HTTP/2 upstream) passes on.
  it('answers a Sec-WebSocket-Key that came along with its accept, and refuses a malformed one with 400', async () => {
    const { client } = await startPair();
    const answer = (key: string) =>
      new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const stream = client.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': '/x', ':scheme': 'http', ':authority': 'x', 'sec-websocket-version': '13', 'sec-websocket-key': key });
        stream.on('response', (h) => (resolve(h), stream.close()));
        stream.on('error', reject);
      });
    const good = await answer('dGhlIHNhbXBsZSBub25jZQ==');
    expect(good[':status']).toBe(200);
    expect(good['sec-websocket-accept']).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo='); // RFC 6455 §1.3's example
    expect((await answer('short'))[':status']).toBe(400);
  });

  it('paused: true hands the WebSocket over paused; a message sent with the 200 waits for resume()', async () => {
    const server = http2.createServer({ settings: { enableConnectProtocol: true } });
    server.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      const result = acceptExtendedConnect(stream, headers, { limits: LIMITS });
      if (!result.ok) return;
      result.ws.on('error', () => {});
      result.ws.send('welcome');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    client.on('error', () => {});
    pair = { server, client, serverSockets: [] };
    await new Promise((r) => client.once('remoteSettings', r));
    const { ws } = await openExtendedConnect(client, { path: '/x', paused: true });
    expect(ws.isPaused).toBe(true);
    // Long enough for the greeting to have arrived and, were the stream flowing, been emitted to nobody.
    await new Promise((r) => setTimeout(r, 50));
    const first = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
    ws.resume();
    expect(await first).toBe('welcome');
  });

  it('propagates close code and reason client → server', async () => {
    const p = await startPair();
    const { ws } = await openExtendedConnect(p.client, { path: '/x' });
    await new Promise((r) => setTimeout(r, 20));
    const serverClosed = closed(p.serverSockets[0]!);
    const clientClosed = closed(ws);
    ws.close(4000, 'client says bye');
    expect(await serverClosed).toEqual({ code: 4000, reason: 'client says bye' });
    // The server echoes the close frame: the client sees its own code back (RFC 6455 §5.5.1).
    expect(await clientClosed).toEqual({ code: 4000, reason: 'client says bye' });
  });

  it('propagates close code and reason server → client', async () => {
    const p = await startPair();
    const { ws } = await openExtendedConnect(p.client, { path: '/x' });
    await new Promise((r) => setTimeout(r, 20));
    const clientClosed = closed(ws);
    p.serverSockets[0]!.close(1001, 'going away');
    expect(await clientClosed).toEqual({ code: 1001, reason: 'going away' });
  });

  it('closes with 1009 when a message exceeds maxPayload', async () => {
    const { client } = await startPair();
    const { ws } = await openExtendedConnect(client, { path: '/x' });
    const done = closed(ws);
    ws.send(Buffer.alloc(4096));
    expect((await done).code).toBe(1009);
  });

  it('many sessions on one connection stay independent', async () => {
    const { client } = await startPair();
    const sessions = await Promise.all(Array.from({ length: 200 }, () => openExtendedConnect(client, { path: '/x' })));
    const replies = await Promise.all(
      sessions.map(
        ({ ws }, i) =>
          new Promise<string>((r) => {
            ws.once('message', (d) => r(d.toString()));
            ws.send(`s${i}`);
          }),
      ),
    );
    expect(replies).toEqual(sessions.map((_, i) => `s${i}`));
  });
});

describe('receive bounds on an HTTP/2 stream, as ws gives an HTTP/1.1 session', () => {
  const port = (p: Pair) => (p.server.address() as AddressInfo).port;

  it('one fragment more than maxFragments closes with 1008', async () => {
    const p = await startPair({ limits: { maxFragments: 10 } });
    const { stream } = await rawH2(port(p), '/x');
    stream.write(frame({ opcode: 2, fin: false, payload: Buffer.from('x') }));
    for (let i = 0; i < 10; i++) stream.write(frame({ opcode: 0, fin: false, payload: Buffer.from('x') }));
    expect(await serverCloseCode(stream)).toBe(1008);
  });

  it('maxFragments fragments are accepted: the message completes and echoes', async () => {
    const p = await startPair({ limits: { maxFragments: 10 } });
    const { stream } = await rawH2(port(p), '/x');
    const echoed = new Promise<Buffer>((r) => stream.once('data', r));
    stream.write(frame({ opcode: 2, fin: false, payload: Buffer.from('x') }));
    for (let i = 0; i < 8; i++) stream.write(frame({ opcode: 0, fin: false, payload: Buffer.from('x') }));
    stream.write(frame({ opcode: 0, payload: Buffer.from('x') }));
    expect((await echoed).subarray(2).toString()).toBe('x'.repeat(10));
    stream.destroy();
  });

  it('more DATA frames than maxBufferedChunks held for one incomplete frame closes with 1008', async () => {
    const p = await startPair({ limits: { maxBufferedChunks: 8 } });
    const { stream } = await rawH2(port(p), '/x');
    const code = serverCloseCode(stream);
    // Each write waits for the one before to go out, so each is a DATA frame (a chunk) of its own.
    const bytes = frame({ opcode: 2, payload: Buffer.alloc(64) });
    for (let i = 0; i < 20 && !stream.destroyed; i++) await new Promise((r) => stream.write(bytes.subarray(i, i + 1), r));
    expect(await code).toBe(1008);
  });

  it('a ping flood from a peer that does not read ends with the stream reset once maxPendingPongs is passed', async () => {
    const p = await startPair({ limits: { maxPendingPongs: 5 } });
    const session = http2.connect(`http://127.0.0.1:${port(p)}`, { settings: { initialWindowSize: 0 } });
    session.on('error', () => {});
    await new Promise((r) => session.once('remoteSettings', r));
    const stream = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http', ':path': '/x', 'sec-websocket-version': '13' }, { endStream: false });
    stream.on('error', () => {});
    await new Promise((r) => stream.once('response', r));
    const ended = new Promise<number>((r) => stream.once('close', () => r(stream.rstCode ?? -1)));
    stream.write(Buffer.concat(Array.from({ length: 6 }, () => frame({ opcode: 9, payload: Buffer.from('p') }))));
    // ws terminates the session: Node resets the stream with NO_ERROR, no close frame.
    expect(await ended).toBe(http2.constants.NGHTTP2_NO_ERROR);
    session.destroy();
  });
});

describe('typed failures', () => {
  it('peer without SETTINGS_ENABLE_CONNECT_PROTOCOL → GW_ERR_NO_EXTENDED_CONNECT, nothing sent', async () => {
    const { client } = await startPair({ enableConnect: false });
    await expect(openExtendedConnect(client, { path: '/x' })).rejects.toMatchObject({ code: 'GW_ERR_NO_EXTENDED_CONNECT' });
  });
  it('non-200 :status → GW_ERR_HANDSHAKE_REJECTED with the status', async () => {
    const { client } = await startPair({ status: 403 });
    await expect(openExtendedConnect(client, { path: '/x' })).rejects.toMatchObject({ code: 'GW_ERR_HANDSHAKE_REJECTED', status: 403 });
  });
  it('stream reset → GW_ERR_STREAM_RESET with the RST_STREAM code', async () => {
    const { client } = await startPair({ reset: true });
    await expect(openExtendedConnect(client, { path: '/x' })).rejects.toMatchObject({
      code: 'GW_ERR_STREAM_RESET',
      rstCode: http2.constants.NGHTTP2_REFUSED_STREAM,
    });
  });
  it('a subprotocol the client never offered → GW_ERR_SUBPROTOCOL', async () => {
    const { client } = await startPair();
    await expect(openExtendedConnect(client, { path: '/x', protocols: ['zzz'] })).rejects.toMatchObject({ code: 'GW_ERR_SUBPROTOCOL' });
  });
  it.each(['silent', 503] as const)('a stream given up on (%s) does not end the process when the session then dies with an error', async (hold) => {
    // Seen against Envoy at 40,000 streams on one connection: handshakes given up on, then a GOAWAY
    // with INTERNAL_ERROR; Node destroys every stream left with that error, and one without an
    // 'error' listener took the load generator down.
    const { client } = await startPair({ hold });
    await expect(openExtendedConnect(client, { path: '/x', timeoutMs: 100 })).rejects.toMatchObject({
      code: hold === 'silent' ? 'GW_ERR_TIMEOUT' : 'GW_ERR_HANDSHAKE_REJECTED',
    });
    client.destroy(new Error('GOAWAY with INTERNAL_ERROR'));
    await new Promise((r) => setTimeout(r, 100));
    expect(client.destroyed).toBe(true);
  });
  it('server refuses a wrong sec-websocket-version with 426', async () => {
    const { client } = await startPair();
    await expect(openExtendedConnect(client, { path: '/x', headers: { 'sec-websocket-version': '8' } })).rejects.toMatchObject({
      status: 426,
    });
  });
});

describe('parseSubprotocols', () => {
  it('splits, trims and keeps order', () => {
    expect(parseSubprotocols(' a, b ,c')).toEqual(['a', 'b', 'c']);
    expect(parseSubprotocols(['a', 'b, c'])).toEqual(['a', 'b', 'c']);
    expect(parseSubprotocols(undefined)).toEqual([]);
  });
});
