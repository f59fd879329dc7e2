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
import { DeadlineQueue, type DeadlineTicket, type Expirable } from './deadline-queue.js';
import {
  ExtendedConnectUnsupportedError,
  HandshakeRejectedError,
  StreamResetError,
  SubprotocolError,
  TimeoutError,
  WsInternalsChangedError,
} from './errors.js';

const { HTTP2_HEADER_METHOD, HTTP2_HEADER_AUTHORITY, HTTP2_HEADER_STATUS } = http2.constants;
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

let lastSetSocketOptions: SetSocketOptions | undefined;

/** setSocket() reads its options once (into the Receiver it builds), so one object serves many. */
function setSocketOptions(limits: ReceiveLimits): SetSocketOptions {
  const last = lastSetSocketOptions;
  if (
    last &&
    last.maxPayload === limits.maxPayload &&
    last.maxFragments === limits.maxFragments &&
    last.maxBufferedChunks === limits.maxBufferedChunks
  ) {
    return last;
  }
  return (lastSetSocketOptions = {
    allowSynchronousEvents: true,
    maxPayload: limits.maxPayload,
    maxFragments: limits.maxFragments,
    maxBufferedChunks: limits.maxBufferedChunks,
    skipUTF8Validation: false,
  });
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
  /** Client side: hand the WebSocket over paused (`ws.isPaused`), reading nothing from the stream
   *  until `ws.resume()`, so that listeners attached later miss no message. */
  paused?: boolean;
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
  // Literal keys (not the http2.constants names): V8 then clones the literal instead of building it
  // key by key, once per session opened.
  const requestHeaders: http2.OutgoingHttpHeaders = {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': opts.scheme ?? 'http',
    ':path': opts.path,
    'sec-websocket-version': '13',
  };
  if (opts.headers) Object.assign(requestHeaders, opts.headers);
  if (opts.authority) requestHeaders[HTTP2_HEADER_AUTHORITY] = opts.authority;
  if (opts.protocols && opts.protocols.length > 0) requestHeaders['sec-websocket-protocol'] = opts.protocols.join(', ');
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

/** One handshake bound per duration (a handful in practice: one per client's option), shared by
 *  every stream opened with it (lib/deadline-queue.ts). */
const handshakeDeadlines = new Map<number, DeadlineQueue>();

function deadlinesOf(ms: number): DeadlineQueue {
  let queue = handshakeDeadlines.get(ms);
  if (!queue) handshakeDeadlines.set(ms, (queue = new DeadlineQueue(ms)));
  return queue;
}

/** The receive bounds of a client session, by maxPayload (one value per client in practice). */
let clientLimits: ReceiveLimits = { ...WS_RECEIVE_DEFAULTS, maxPayload: 100 * 1024 * 1024 };

function clientLimitsFor(maxPayload: number): ReceiveLimits {
  // The other bounds are the ones ws's own HTTP/1.1 client applies.
  if (clientLimits.maxPayload !== maxPayload) clientLimits = { ...WS_RECEIVE_DEFAULTS, maxPayload };
  return clientLimits;
}

const kHandshake = Symbol('ws-h2-handshake');
type HandshakeStream = http2.ClientHttp2Stream & { [kHandshake]?: ClientHandshake | undefined };

// The stream's listeners are shared functions that find their handshake on the stream: a storm
// opens thousands of streams a second, and closures per stream (named ones, under tsx, with a
// defineProperty each) were a visible part of the client's CPU per session.

function onHandshakeResponse(this: HandshakeStream, headers: http2.IncomingHttpHeaders): void {
  this[kHandshake]?.response(headers);
}

function onHandshakeClose(this: HandshakeStream): void {
  this[kHandshake]?.closed();
}

// 'error' always precedes 'close' for resets with an error code; the 'close' listener rejects.
// This one stays attached for good: a stream abandoned below (refused, timed out) still gets the
// session's error when the peer later ends the connection with GOAWAY(error), and an 'error'
// without a listener would take the whole process down.
function ignoreStreamError(): void {}

/** One client handshake in flight: HEADERS sent, waiting for the peer's answer or the deadline. */
class ClientHandshake implements Expirable {
  readonly #stream: HandshakeStream;
  readonly #opts: OpenOptions;
  readonly #resolve: (opened: OpenedStream) => void;
  readonly #reject: (err: Error) => void;
  readonly #deadlines: DeadlineQueue;
  readonly #ticket: DeadlineTicket;

  constructor(stream: HandshakeStream, opts: OpenOptions, resolve: (opened: OpenedStream) => void, reject: (err: Error) => void) {
    this.#stream = stream;
    this.#opts = opts;
    this.#resolve = resolve;
    this.#reject = reject;
    stream[kHandshake] = this;
    stream.on('response', onHandshakeResponse);
    stream.on('close', onHandshakeClose);
    stream.on('error', ignoreStreamError);
    this.#deadlines = deadlinesOf(opts.timeoutMs ?? 10_000);
    this.#ticket = this.#deadlines.add(this);
  }

  #cleanup(): void {
    const stream = this.#stream;
    this.#deadlines.cancel(this.#ticket);
    stream[kHandshake] = undefined;
    stream.off('response', onHandshakeResponse);
    stream.off('close', onHandshakeClose);
  }

  onDeadline(): void {
    this.#cleanup();
    this.#stream.close(http2.constants.NGHTTP2_CANCEL);
    this.#reject(new TimeoutError(`WebSocket handshake for ${this.#opts.path}`, this.#deadlines.durationMs));
  }

  closed(): void {
    this.#cleanup();
    this.#reject(new StreamResetError(this.#stream.rstCode, `stream for ${this.#opts.path} closed before the handshake answered`));
  }

  response(headers: http2.IncomingHttpHeaders): void {
    this.#cleanup();
    const stream = this.#stream;
    const opts = this.#opts;
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
      this.#reject(new HandshakeRejectedError(status, opts.path));
      return;
    }
    const protocols = opts.protocols ?? [];
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
      this.#reject(new SubprotocolError(problem));
      return;
    }
    // From here the WebSocket listens for the stream's errors.
    stream.off('error', ignoreStreamError);
    const limits = clientLimitsFor(opts.maxPayload ?? 100 * 1024 * 1024);
    // Paused before ws attaches its 'data' listener, which would otherwise set the stream flowing
    // (a read scheduled on the next tick) only for ws.pause() to stop it again.
    if (opts.paused) stream.pause();
    const ws = wrapStream(stream, 'client', chosen, limits);
    if (opts.paused) ws.pause();
    this.#resolve({ ws, headers, protocol: chosen, stream });
  }
}

/**
 * Client side, once the extended CONNECT's HEADERS are sent (`extendedConnectHeaders`): wait for
 * the 200 and turn the stream into a WebSocket. Call it in the same tick as `request()`, so no
 * event of the stream can fire before its listeners are attached.
 */
export function completeExtendedConnect(stream: http2.ClientHttp2Stream, opts: OpenOptions): Promise<OpenedStream> {
  return new Promise<OpenedStream>((resolve, reject) => void new ClientHandshake(stream, opts, resolve, reject));
}
