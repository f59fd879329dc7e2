// WebSocket over HTTP/2 (RFC 8441) on top of the `ws` package.
//
// `ws` frames WebSockets over any Duplex through `websocket.setSocket(socket, head, opts)`, and an
// Http2Stream is a Duplex. What `ws` has no public API for is building a WebSocket around a socket
// it did not handshake itself (ws issue 1458), so this module is the ONLY place in the project that
// touches `ws` internals:
//   - `new WebSocket(null, undefined, opts)` builds an un-handshaked instance (server role);
//   - `_isServer` decides masking: clients mask, servers do not (RFC 6455 §5.1);
//   - `_protocol` holds the negotiated subprotocol that `ws.protocol` returns;
//   - `_bufferedAmount` is only initialised for client instances by ws's own constructor;
//   - `setSocket()` attaches the Receiver/Sender to the stream and emits 'open';
//   - the receive bounds ws's server and client pass by themselves (`maxFragments`,
//     `maxBufferedChunks` to setSocket, `maxPendingAutoPongs` to the constructor): ws defaults them
//     to 0, unbounded, for an instance built this way, and silently ignores an option it no longer
//     knows, so they are checked on ws's Receiver and WebSocket fields.
// `checkWsInternals()` verifies each of these and is run before first use and by the tests, so a
// `ws` upgrade that changes them fails loudly instead of corrupting frames or dropping a bound.

import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { WS_RECEIVE_DEFAULTS } from './config.js';
import {
  ExtendedConnectUnsupportedError,
  HandshakeRejectedError,
  StreamResetError,
  SubprotocolError,
  TimeoutError,
  WsInternalsChangedError,
} from './errors.js';

const { HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH, HTTP2_HEADER_SCHEME, HTTP2_HEADER_AUTHORITY, HTTP2_HEADER_STATUS } = http2.constants;
// @types/node lacks this constant (RFC 8441 pseudo-header).
const HTTP2_HEADER_PROTOCOL = ':protocol';

/**
 * What one WebSocket accepts from its peer. HTTP/1.1 sessions get the same values from ws's own
 * server or client options; the backend takes both from lib/config.ts.
 */
export interface ReceiveLimits {
  /** Largest message in bytes; bigger → close 1009. */
  maxPayload: number;
  /** Fragments per message; more → close 1008. */
  maxFragments: number;
  /** Chunks (DATA frames here) held while a frame is incomplete; more → close 1008. */
  maxBufferedChunks: number;
  /** Pongs owed but not yet written; one more ping → the stream is destroyed (RST_STREAM NO_ERROR). */
  maxPendingPongs: number;
}

/** The shape of the `ws` internals we use; everything else goes through the public API. */
interface WsInternals {
  _isServer: boolean;
  _protocol: string;
  _bufferedAmount: number;
  _maxPendingAutoPongs: number;
  _receiver: { _maxFragments: number; _maxBufferedChunks: number; _maxPayload: number };
  setSocket(socket: NodeJS.ReadWriteStream, head: Buffer, opts: SetSocketOptions): void;
}

interface SetSocketOptions {
  allowSynchronousEvents: boolean;
  maxPayload: number;
  maxFragments: number;
  maxBufferedChunks: number;
  skipUTF8Validation: boolean;
}

interface ConstructorOptions {
  autoPong: boolean;
  closeTimeout: number;
  maxPendingAutoPongs: number;
}

type WsConstructorInternal = new (address: null, protocols: undefined, options: ConstructorOptions) => WebSocket;

const EMPTY = Buffer.alloc(0);
const CLOSE_TIMEOUT_MS = 30_000;

let internalsChecked = false;

/** Throws WsInternalsChangedError if the installed `ws` lacks an internal this module relies on. */
export function checkWsInternals(): void {
  if (internalsChecked) return;
  const proto = WebSocket.prototype as unknown as Partial<WsInternals>;
  if (typeof proto.setSocket !== 'function') throw new WsInternalsChangedError('WebSocket.prototype.setSocket is gone');
  if (proto.setSocket.length !== 3) {
    throw new WsInternalsChangedError(`setSocket() now takes ${proto.setSocket.length} arguments, expected (socket, head, options)`);
  }
  const probe = construct({ ...WS_RECEIVE_DEFAULTS, maxPayload: 1 });
  const internals = probe as unknown as Record<string, unknown>;
  if (internals._isServer !== true) throw new WsInternalsChangedError('`new WebSocket(null)` no longer sets _isServer = true');
  if (internals._protocol !== '') throw new WsInternalsChangedError('_protocol is no longer initialised to ""');
  if (probe.readyState !== WebSocket.CONNECTING) throw new WsInternalsChangedError('an un-handshaked WebSocket is not CONNECTING');
  checkReceiveLimitsReachWs();
  internalsChecked = true;
}

/** Each bound, given with a distinct value, must land on the field ws enforces it from. */
function checkReceiveLimitsReachWs(): void {
  const limits: ReceiveLimits = { maxPayload: 1001, maxFragments: 1002, maxBufferedChunks: 1003, maxPendingPongs: 1004 };
  const probe = construct(limits) as unknown as WsInternals;
  const socket = new Duplex({ read() {}, write: (_chunk, _encoding, done) => done() });
  try {
    probe.setSocket(socket, EMPTY, setSocketOptions(limits));
    const found = {
      maxPayload: probe._receiver?._maxPayload,
      maxFragments: probe._receiver?._maxFragments,
      maxBufferedChunks: probe._receiver?._maxBufferedChunks,
      maxPendingPongs: probe._maxPendingAutoPongs,
    };
    for (const [name, value] of Object.entries(found)) {
      if (value !== limits[name as keyof ReceiveLimits]) {
        throw new WsInternalsChangedError(`the ${name} bound no longer reaches ws (expected ${limits[name as keyof ReceiveLimits]}, found ${String(value)})`);
      }
    }
  } finally {
    socket.destroy();
  }
}

function construct(limits: ReceiveLimits): WebSocket {
  return new (WebSocket as unknown as WsConstructorInternal)(null, undefined, {
    autoPong: true,
    closeTimeout: CLOSE_TIMEOUT_MS,
    maxPendingAutoPongs: limits.maxPendingPongs,
  });
}

function setSocketOptions(limits: ReceiveLimits): SetSocketOptions {
  return {
    allowSynchronousEvents: true,
    maxPayload: limits.maxPayload,
    maxFragments: limits.maxFragments,
    maxBufferedChunks: limits.maxBufferedChunks,
    skipUTF8Validation: false,
  };
}

function wrapStream(stream: http2.Http2Stream, role: 'client' | 'server', protocol: string, limits: ReceiveLimits): WebSocket {
  checkWsInternals();
  const ws = construct(limits);
  const internals = ws as unknown as WsInternals;
  internals._isServer = role === 'server';
  internals._protocol = protocol;
  internals._bufferedAmount = 0;
  internals.setSocket(stream, EMPTY, setSocketOptions(limits));
  return ws;
}

/** Parse a `sec-websocket-protocol` header value into its tokens, in offer order. */
export function parseSubprotocols(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const joined = Array.isArray(value) ? value.join(',') : value;
  return joined
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/;

/** RFC 6455 §4.2.2: base64(SHA-1(key + the protocol's GUID)). */
export function websocketAccept(key: string): string {
  return createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
}

export interface AcceptOptions {
  /** Subprotocols this server speaks, in preference order. The first one the client offered wins. */
  protocols?: readonly string[];
  /** Extra response headers on the 200 (e.g. x-backend-id). */
  responseHeaders?: Record<string, string>;
  limits: ReceiveLimits;
}

export type AcceptResult = { ok: true; ws: WebSocket; protocol: string } | { ok: false; status: number; reason: string };

/**
 * Server side: answer an extended CONNECT (`:method CONNECT`, `:protocol websocket`) and turn the
 * stream into a WebSocket. On a bad request it answers the error status itself and returns why.
 */
export function acceptExtendedConnect(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  opts: AcceptOptions,
): AcceptResult {
  const reject = (status: number, reason: string, extra: Record<string, string> = {}): AcceptResult => {
    if (!stream.destroyed && !stream.headersSent) {
      stream.respond({ [HTTP2_HEADER_STATUS]: status, 'content-type': 'text/plain', ...opts.responseHeaders, ...extra });
      stream.end(reason + '\n');
    }
    return { ok: false, status, reason };
  };

  if (headers[HTTP2_HEADER_METHOD] !== 'CONNECT' || headers[HTTP2_HEADER_PROTOCOL] !== 'websocket') {
    return reject(400, 'expected :method CONNECT with :protocol websocket (RFC 8441)');
  }
  // RFC 8441 §5: the version header stays; 426 + supported version per RFC 6455 §4.4.
  if (headers['sec-websocket-version'] !== '13') {
    return reject(426, 'sec-websocket-version must be 13', { 'sec-websocket-version': '13' });
  }

  const offered = parseSubprotocols(headers['sec-websocket-protocol']);
  const protocol = offered.length > 0 ? ((opts.protocols ?? []).find((p) => offered.includes(p)) ?? '') : '';

  const response: http2.OutgoingHttpHeaders = { [HTTP2_HEADER_STATUS]: 200, ...opts.responseHeaders };
  if (protocol) response['sec-websocket-protocol'] = protocol;
  // A proxy that turns an HTTP/1.1 Upgrade into this CONNECT (Envoy with an HTTP/2 upstream) passes
  // the client's Sec-WebSocket-Key along and turns this 200 back into a 101, which the client only
  // accepts with the matching Sec-WebSocket-Accept (RFC 6455 §4.2.2): answer it when a key came.
  // A key that came along is held to RFC 6455 §4.1 (base64 of 16 bytes), as `ws` holds an HTTP/1.1
  // Upgrade's: the HTTP/1.1 client would otherwise get a 101 for a handshake it got wrong.
  const key = headers['sec-websocket-key'];
  if (key !== undefined) {
    if (typeof key !== 'string' || !WEBSOCKET_KEY.test(key)) return reject(400, 'sec-websocket-key must be the base64 of 16 bytes (RFC 6455 §4.1)');
    response['sec-websocket-accept'] = websocketAccept(key);
  }
  stream.respond(response, { endStream: false });
  return { ok: true, ws: wrapStream(stream, 'server', protocol, opts.limits), protocol };
}

export interface OpenOptions {
  path: string;
  /** `:authority`; defaults to the session's origin host. */
  authority?: string;
  scheme?: 'http' | 'https';
  protocols?: readonly string[];
  headers?: Record<string, string>;
  maxPayload?: number;
  /** Bound on the handshake (HEADERS out → 200 in). */
  timeoutMs?: number;
}

export interface OpenedStream {
  ws: WebSocket;
  /** Response headers of the 200, e.g. `x-backend-id`. */
  headers: http2.IncomingHttpHeaders;
  protocol: string;
  stream: http2.ClientHttp2Stream;
}

/** The request headers of an extended CONNECT that opens a WebSocket (RFC 8441 §4-5). */
export function extendedConnectHeaders(opts: OpenOptions): http2.OutgoingHttpHeaders {
  const protocols = opts.protocols ?? [];
  const requestHeaders: http2.OutgoingHttpHeaders = {
    [HTTP2_HEADER_METHOD]: 'CONNECT',
    [HTTP2_HEADER_PROTOCOL]: 'websocket',
    [HTTP2_HEADER_SCHEME]: opts.scheme ?? 'http',
    [HTTP2_HEADER_PATH]: opts.path,
    'sec-websocket-version': '13',
    ...opts.headers,
  };
  if (opts.authority) requestHeaders[HTTP2_HEADER_AUTHORITY] = opts.authority;
  if (protocols.length > 0) requestHeaders['sec-websocket-protocol'] = protocols.join(', ');
  return requestHeaders;
}

/**
 * Client side: open a WebSocket as an extended CONNECT stream on an established session. The caller
 * must have waited for the peer's SETTINGS ('remoteSettings'); without SETTINGS_ENABLE_CONNECT_PROTOCOL
 * this fails with ExtendedConnectUnsupportedError before sending anything.
 */
export function openExtendedConnect(session: http2.ClientHttp2Session, opts: OpenOptions): Promise<OpenedStream> {
  const origin = session.originSet?.[0] ?? 'peer';
  if (!session.remoteSettings?.enableConnectProtocol) {
    return Promise.reject(new ExtendedConnectUnsupportedError(origin));
  }
  let stream: http2.ClientHttp2Stream;
  try {
    stream = session.request(extendedConnectHeaders(opts), { endStream: false });
  } catch (err) {
    return Promise.reject(new StreamResetError(undefined, `could not open stream: ${(err as Error).message}`));
  }
  return completeExtendedConnect(stream, opts);
}

/**
 * Client side, once the extended CONNECT's HEADERS are sent (`extendedConnectHeaders`): wait for
 * the 200 and turn the stream into a WebSocket. Call it in the same tick as `request()`, so no
 * event of the stream can fire before its listeners are attached.
 */
export function completeExtendedConnect(stream: http2.ClientHttp2Stream, opts: OpenOptions): Promise<OpenedStream> {
  const protocols = opts.protocols ?? [];
  return new Promise<OpenedStream>((resolve, reject) => {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const timer = setTimeout(() => {
      cleanup();
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new TimeoutError(`WebSocket handshake for ${opts.path}`, timeoutMs));
    }, timeoutMs);

    const onClose = () => {
      cleanup();
      reject(new StreamResetError(stream.rstCode, `stream for ${opts.path} closed before the handshake answered`));
    };
    // 'error' always precedes 'close' for resets with an error code; the 'close' handler rejects.
    // It stays attached for good: a stream abandoned below (refused, timed out) still gets the
    // session's error when the peer later ends the connection with GOAWAY(error), and an 'error'
    // without a listener would take the whole process down.
    const onError = () => {};
    const onResponse = (headers: http2.IncomingHttpHeaders) => {
      cleanup();
      const status = Number(headers[HTTP2_HEADER_STATUS]);
      if (status !== 200) {
        // Finish the refused stream rather than reset it: fronts count a client's resets of young
        // streams as a rapid-reset attack, and Envoy closed a connection holding 30,000 sessions
        // after ~2,700 handshakes refused (503) and reset in a row. A peer that never ends its
        // side still gets a reset, later.
        stream.resume();
        stream.end();
        const giveUp = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), 5_000);
        giveUp.unref();
        stream.once('close', () => clearTimeout(giveUp));
        reject(new HandshakeRejectedError(status, opts.path));
        return;
      }
      const chosen = typeof headers['sec-websocket-protocol'] === 'string' ? headers['sec-websocket-protocol'] : '';
      // Same rule as ws's HTTP/1.1 client, so both transports fail alike.
      const problem =
        chosen && !protocols.includes(chosen)
          ? `server selected subprotocol "${chosen}", which was not offered (${protocols.join(', ') || 'none'})`
          : !chosen && protocols.length > 0
            ? `server selected no subprotocol (offered ${protocols.join(', ')})`
            : undefined;
      if (problem) {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        reject(new SubprotocolError(problem));
        return;
      }
      // From here the WebSocket listens for the stream's errors.
      stream.off('error', onError);
      // The other bounds are the ones ws's own HTTP/1.1 client applies.
      const limits = { ...WS_RECEIVE_DEFAULTS, maxPayload: opts.maxPayload ?? 100 * 1024 * 1024 };
      resolve({ ws: wrapStream(stream, 'client', chosen, limits), headers, protocol: chosen, stream });
    };
    function cleanup() {
      clearTimeout(timer);
      stream.off('response', onResponse);
      stream.off('close', onClose);
    }
    stream.on('response', onResponse);
    stream.on('close', onClose);
    stream.on('error', onError);
  });
}
