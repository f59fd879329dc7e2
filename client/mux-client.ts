import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { ConnectionError, ExtendedConnectUnsupportedError, StreamResetError, TimeoutError } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { openExtendedConnect } from '../lib/ws-h2-adapter.js';
import { H1Client } from './h1-client.js';
import { deliverAfterResolve, type ClientStats, type OpenSessionOptions, type WsClient, type WsSession } from './types.js';

// Many WebSocket sessions as RFC 8441 streams over as few HTTP/2 connections as the peer allows.
//
// Built directly on node:http2 rather than http2-wrapper: http2-wrapper's Agent pools sessions for
// request/response traffic, but a WebSocket client needs what it hides — waiting for the peer's
// SETTINGS to see ENABLE_CONNECT_PROTOCOL before the first CONNECT, the per-connection stream count
// against SETTINGS_MAX_CONCURRENT_STREAMS, maxSessionMemory, and per-connection GOAWAY handling so
// that in-flight sessions keep running while new ones go elsewhere.

const log = logger('mux-client');

export interface MuxClientOptions {
  /** CA certificate(s) (PEM) to trust for https:// in addition to the system store. */
  ca?: string | Buffer;
  /** Cap streams per connection below the peer's SETTINGS_MAX_CONCURRENT_STREAMS. */
  maxStreamsPerConnection?: number;
  /** Node's per-session memory cap (MB). Its 10 MB default stops one session at about 12k streams. */
  maxSessionMemoryMb?: number;
  /** When the peer does not offer extended CONNECT, use HTTP/1.1 Upgrade instead of failing. */
  fallbackToH1?: boolean;
  settingsTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  maxPayload?: number;
}

interface Connection {
  readonly id: number;
  readonly session: http2.ClientHttp2Session;
  /** The TCP (or TLS) socket itself: session.socket is a proxy that throws on destroy(). */
  readonly socket: Duplex | undefined;
  /** Streams open or being opened on this connection. */
  active: number;
  limit: number;
  /** GOAWAY received or sent: carries its existing streams, takes no new ones. */
  goingAway: boolean;
}

/** Events: 'connection' (id), 'goaway' (id, errorCode), 'connection-closed' (id). */
export class MuxClient extends EventEmitter implements WsClient {
  readonly transport = 'h2' as const;
  readonly #origin: URL;
  readonly #options: MuxClientOptions;
  readonly #connections = new Set<Connection>();
  /** Resolves to undefined when the peer lacks RFC 8441 and we switched to HTTP/1.1. */
  #dialing: Promise<Connection | undefined> | undefined;
  #opened = 0;
  #nextId = 1;
  #fallback: H1Client | undefined;
  #closed = false;

  constructor(url: string | URL, options: MuxClientOptions = {}) {
    super();
    const origin = new URL(url);
    if (origin.protocol === 'ws:') origin.protocol = 'http:';
    if (origin.protocol === 'wss:') origin.protocol = 'https:';
    if (origin.protocol !== 'http:' && origin.protocol !== 'https:') {
      throw new ConnectionError(`MuxClient needs an http(s):// or ws(s):// URL, got ${origin.href}`);
    }
    this.#origin = new URL(origin.origin);
    this.#options = options;
  }

  /** True once the peer turned out not to speak RFC 8441 and fallbackToH1 sent us to HTTP/1.1. */
  get usingFallback(): boolean {
    return this.#fallback !== undefined;
  }

  async open(path: string, options: OpenSessionOptions = {}): Promise<WsSession> {
    if (this.#closed) throw new ConnectionError('MuxClient is closed');
    for (let attempt = 1; ; attempt++) {
      if (this.#fallback) return this.#fallback.open(path, options);
      const conn = await this.#acquire();
      if (!conn) continue; // fell back to HTTP/1.1 while dialing
      try {
        const opened = await openExtendedConnect(conn.session, {
          path,
          scheme: this.#origin.protocol === 'https:' ? 'https' : 'http',
          protocols: options.protocols,
          headers: options.headers,
          maxPayload: this.#options.maxPayload,
          timeoutMs: this.#options.handshakeTimeoutMs,
        });
        opened.stream.once('close', () => this.#release(conn));
        opened.ws.on('error', (err) => log.debug({ err: err.message, path }, 'session error'));
        const backend = opened.headers['x-backend-id'];
        return await new Promise<WsSession>((resolve) =>
          deliverAfterResolve(
            {
              ws: opened.ws,
              transport: 'h2',
              backendId: typeof backend === 'string' ? backend : undefined,
              protocol: opened.protocol,
              headers: opened.headers,
              localPort: conn.session.socket?.localPort,
            },
            resolve,
          ),
        );
      } catch (err) {
        this.#release(conn);
        // A stream raced a GOAWAY (refused, or the session stopped taking streams): it was never
        // processed by the peer, so it is safe to try once more on a fresh connection.
        const refused =
          err instanceof StreamResetError && (err.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM || conn.goingAway || conn.session.closed);
        if (refused && attempt < 3) continue;
        throw err;
      }
    }
  }

  stats(): ClientStats {
    let openStreams = 0;
    for (const c of this.#connections) openStreams += c.active;
    const h1 = this.#fallback?.stats();
    return {
      connections: this.#connections.size + (h1?.connections ?? 0),
      openStreams: openStreams + (h1?.openStreams ?? 0),
      connectionsOpened: this.#opened + (h1?.connectionsOpened ?? 0),
    };
  }

  /** Per-connection view, for dashboards and tests. */
  connections(): Array<{ id: number; streams: number; limit: number; goingAway: boolean }> {
    return [...this.#connections].map((c) => ({ id: c.id, streams: c.active, limit: c.limit, goingAway: c.goingAway }));
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#fallback?.close();
    await Promise.all(
      [...this.#connections].map(
        (c) =>
          new Promise<void>((resolve) => {
            // destroy() waits for its GOAWAY to be written; against a peer that stopped reading it
            // never is, so the socket itself goes after a grace period.
            const force = setTimeout(() => {
              c.socket?.destroy();
              resolve();
            }, 1_000);
            c.session.once('close', () => {
              clearTimeout(force);
              resolve();
            });
            c.session.destroy();
          }),
      ),
    );
  }

  #release(conn: Connection): void {
    conn.active--;
  }

  /** A connection with a free stream slot, dialing a new one only when every open one is full. */
  async #acquire(): Promise<Connection | undefined> {
    for (;;) {
      for (const c of this.#connections) {
        if (!c.goingAway && c.active < c.limit) {
          c.active++;
          return c;
        }
      }
      // Everyone waiting shares one dial, and its failure.
      const dial = (this.#dialing ??= this.#dial().finally(() => (this.#dialing = undefined)));
      await dial;
      if (this.#fallback) return undefined;
    }
  }

  async #dial(): Promise<Connection | undefined> {
    const origin = this.#origin.href;
    const session = http2.connect(this.#origin, {
      maxSessionMemory: this.#options.maxSessionMemoryMb ?? 100,
      settings: { enablePush: false },
      ca: this.#options.ca,
      ALPNProtocols: ['h2'],
    });
    let socket: Duplex | undefined;
    session.once('connect', (_session, raw) => {
      socket = raw;
    });
    const settingsTimeout = this.#options.settingsTimeoutMs ?? 5_000;
    try {
      // RFC 8441 §3: a client must see SETTINGS_ENABLE_CONNECT_PROTOCOL before sending one.
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new TimeoutError(`SETTINGS from ${origin}`, settingsTimeout)), settingsTimeout);
        session.once('remoteSettings', () => {
          clearTimeout(timer);
          resolve();
        });
        session.once('error', (err) => {
          clearTimeout(timer);
          reject(new ConnectionError(`HTTP/2 connection to ${origin} failed: ${err.message}`, err));
        });
        session.once('close', () => {
          clearTimeout(timer);
          reject(new ConnectionError(`HTTP/2 connection to ${origin} closed before SETTINGS`));
        });
      });
    } catch (err) {
      session.destroy();
      throw err;
    }
    if (!session.remoteSettings.enableConnectProtocol) {
      session.close();
      if (this.#options.fallbackToH1) {
        log.warn({ origin }, 'peer does not offer extended CONNECT; falling back to HTTP/1.1 Upgrade');
        this.#fallback = new H1Client(this.#origin, {
          ca: this.#options.ca,
          maxPayload: this.#options.maxPayload,
          handshakeTimeoutMs: this.#options.handshakeTimeoutMs,
        });
        return undefined;
      }
      throw new ExtendedConnectUnsupportedError(origin);
    }

    const peerLimit = session.remoteSettings.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER;
    const conn: Connection = {
      id: this.#nextId++,
      session,
      socket,
      active: 0,
      limit: Math.min(peerLimit, this.#options.maxStreamsPerConnection ?? Number.MAX_SAFE_INTEGER),
      goingAway: false,
    };
    this.#opened++;
    this.#connections.add(conn);
    session.on('remoteSettings', (settings) => {
      conn.limit = Math.min(settings.maxConcurrentStreams ?? peerLimit, this.#options.maxStreamsPerConnection ?? Number.MAX_SAFE_INTEGER);
    });
    // Node closes the session gracefully on GOAWAY(NO_ERROR): open streams continue, new ones must
    // go to another connection, which #acquire dials on demand.
    session.on('goaway', (errorCode, lastStreamID) => {
      conn.goingAway = true;
      log.info({ connection: conn.id, errorCode, lastStreamID, streams: conn.active }, 'GOAWAY received');
      this.emit('goaway', conn.id, errorCode);
    });
    session.on('error', (err) => log.debug({ connection: conn.id, err: err.message }, 'connection error'));
    session.once('close', () => {
      conn.goingAway = true;
      this.#connections.delete(conn);
      this.emit('connection-closed', conn.id);
    });
    log.debug({ connection: conn.id, limit: conn.limit }, 'connection ready');
    this.emit('connection', conn.id);
    return conn;
  }
}
