import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import { ConnectionError, ExtendedConnectUnsupportedError, StreamResetError } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { completeExtendedConnect, extendedConnectHeaders, type OpenOptions } from '../lib/ws-h2-adapter.js';
import { ExtendedConnectPool, type PooledConnection } from './extended-connect-pool.js';
import { H1Client } from './h1-client.js';
import { resumeInNextMacrotask, type ClientStats, type OpenSessionOptions, type WsClient, type WsSession } from './types.js';

// Many WebSocket sessions as RFC 8441 streams over as few HTTP/2 connections as the peer allows.
// The connections are http2-wrapper's Agent's (client/extended-connect-pool.ts, with what RFC 8441
// adds on top); this module opens the WebSocket on a stream, retries a stream that raced a GOAWAY,
// and falls back to HTTP/1.1 Upgrade when asked to.

const log = logger('mux-client');

export interface MuxClientOptions {
  /** CA certificate(s) (PEM) to trust for https:// in addition to the system store. */
  ca?: string | Buffer;
  /** Node's per-session memory cap (MB). Its 10 MB default stops one session at about 12k streams. */
  maxSessionMemoryMb?: number;
  /** When the peer does not offer extended CONNECT, use HTTP/1.1 Upgrade instead of failing. */
  fallbackToH1?: boolean;
  settingsTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  maxPayload?: number;
  /** The local address to connect from, on a host with several (a front counts per client address). */
  localAddress?: string;
}

/** Events: 'connection' (id), 'goaway' (id, errorCode), 'connection-closed' (id). */
export class MuxClient extends EventEmitter implements WsClient {
  readonly transport = 'h2' as const;
  readonly #origin: URL;
  readonly #options: MuxClientOptions;
  readonly #pool: ExtendedConnectPool;
  readonly #scheme: 'http' | 'https';
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
    this.#scheme = origin.protocol === 'https:' ? 'https' : 'http';
    this.#options = options;
    this.#pool = new ExtendedConnectPool(this.#origin, {
      ca: options.ca,
      maxSessionMemoryMb: options.maxSessionMemoryMb,
      settingsTimeoutMs: options.settingsTimeoutMs,
      localAddress: options.localAddress,
    });
    this.#pool.on('connection', (id: number) => this.emit('connection', id));
    this.#pool.on('goaway', (id: number, errorCode: number) => this.emit('goaway', id, errorCode));
    this.#pool.on('connection-closed', (id: number) => this.emit('connection-closed', id));
  }

  /** True once the peer turned out not to speak RFC 8441 and fallbackToH1 sent us to HTTP/1.1. */
  get usingFallback(): boolean {
    return this.#fallback !== undefined;
  }

  async open(path: string, options: OpenSessionOptions = {}): Promise<WsSession> {
    if (this.#closed) throw new ConnectionError('MuxClient is closed');
    for (let attempt = 1; ; attempt++) {
      if (this.#fallback) return this.#fallback.open(path, options);
      const handshake: OpenOptions = {
        path,
        scheme: this.#scheme,
        protocols: options.protocols,
        headers: options.headers,
        maxPayload: this.#options.maxPayload,
        timeoutMs: this.#options.handshakeTimeoutMs,
        // Held until the caller's continuation has run (the promise open() returns settles first).
        paused: true,
      };
      let session: http2.ClientHttp2Session | undefined;
      try {
        const opened = await this.#pool.open(extendedConnectHeaders(handshake), (stream, on) => {
          session = on;
          return completeExtendedConnect(stream, handshake);
        });
        opened.ws.on('error', (err) => log.debug({ err: err.message, path }, 'session error'));
        const backend = opened.headers['x-backend-id'];
        resumeInNextMacrotask(opened.ws);
        return {
          ws: opened.ws,
          transport: 'h2',
          backendId: typeof backend === 'string' ? backend : undefined,
          protocol: opened.protocol,
          headers: opened.headers,
          localPort: opened.stream.session?.socket?.localPort,
        };
      } catch (err) {
        if (err instanceof ExtendedConnectUnsupportedError && this.#options.fallbackToH1) {
          this.#fallBack();
          continue;
        }
        // A stream that raced a GOAWAY (refused, or the session stopped taking streams before it
        // was sent) was never processed by the peer, so it is safe to try once more elsewhere.
        const refused =
          err instanceof StreamResetError &&
          (session === undefined || err.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM || this.#pool.isGoingAway(session));
        if (refused && attempt < 3) continue;
        throw err;
      }
    }
  }

  stats(): ClientStats {
    const connections = this.#pool.connections();
    const h1 = this.#fallback?.stats();
    return {
      connections: connections.length + (h1?.connections ?? 0),
      openStreams: connections.reduce((n, c) => n + c.streams, 0) + (h1?.openStreams ?? 0),
      connectionsOpened: this.#pool.connectionsOpened + (h1?.connectionsOpened ?? 0),
    };
  }

  /** Per-connection view, for dashboards and tests. */
  connections(): PooledConnection[] {
    return this.#pool.connections();
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([this.#fallback?.close(), this.#pool.close()]);
  }

  #fallBack(): void {
    if (this.#fallback) return;
    log.warn({ origin: this.#origin.href }, 'peer does not offer extended CONNECT; falling back to HTTP/1.1 Upgrade');
    this.#fallback = new H1Client(this.#origin, {
      ca: this.#options.ca,
      maxPayload: this.#options.maxPayload,
      handshakeTimeoutMs: this.#options.handshakeTimeoutMs,
      localAddress: this.#options.localAddress,
    });
  }
}
