import { EventEmitter } from 'node:events';
import type http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { Agent, type PromiseListeners } from 'http2-wrapper';
import { ConnectionError, ExtendedConnectUnsupportedError, GatewayError, StreamResetError, TimeoutError } from '../lib/errors.js';
import { logger } from '../lib/log.js';

// The HTTP/2 connection pool under MuxClient: http2-wrapper's Agent, which tracks each session's
// open streams against the peer's SETTINGS_MAX_CONCURRENT_STREAMS, shares one dial among everyone
// waiting and opens another session when the open ones are full; plus what the Agent does not do
// for an RFC 8441 client (each one reproduced in scripts/http2-wrapper-gaps.ts):
//   - a session the peer sent GOAWAY(NO_ERROR) is closed to new streams, but the Agent keeps handing
//     it out until its last stream ends (for WebSockets: minutes), so every open would fail with
//     ERR_HTTP2_GOAWAY_SESSION: we mark it with the Agent's own "gracefully closing" flag;
//   - it sends :protocol whether or not the peer's SETTINGS allowed it: we check
//     ENABLE_CONNECT_PROTOCOL on the session it hands us, before request();
//   - over h2c its origin set reads https://undefined:<port>, so no session is ever reused: we key
//     plain-text sessions as https:// and name the host on the socket, where the Agent reads it;
//   - it has no SETTINGS timeout: the sockets are ours (createConnection), so we bound the wait.

const log = logger('mux-client');

const ONE_ORIGIN_KEY = '';
/** One pool serves one origin with one set of options, so the Agent's key for them is a constant:
 *  its own normalizeOptions() stringifies every option (the CA's PEM included) on each open. */
class OneOriginAgent extends Agent {
  override normalizeOptions(): string {
    return ONE_ORIGIN_KEY;
  }
}

// Exported by http2-wrapper at runtime, not in its typings.
const { kCurrentStreamCount, kGracefullyClosing } = Agent as unknown as { kCurrentStreamCount: symbol; kGracefullyClosing: symbol };
type PooledSession = http2.ClientHttp2Session & Record<symbol, unknown>;
/** The dial record stamped on each socket we create; read back through `session.socket`. */
const kDial = Symbol('dial');
interface Dial {
  settingsTimer: NodeJS.Timeout;
}
type DialSocket = net.Socket & { [kDial]?: Dial };

export interface ExtendedConnectPoolOptions {
  /** CA certificate(s) (PEM) to trust for https:// in addition to the system store. */
  ca?: string | Buffer;
  /** Node's per-session memory cap (MB). Its 10 MB default stops one session at about 12k streams. */
  maxSessionMemoryMb?: number;
  settingsTimeoutMs?: number;
  /** The local address to connect from, on a host with several (a front counts per client address). */
  localAddress?: string;
}

export interface PooledConnection {
  id: number;
  streams: number;
  limit: number;
  goingAway: boolean;
}

function connectionError(origin: URL, err: Error): GatewayError {
  if (err instanceof GatewayError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'HTTP2WRAPPER_NOSETTINGS') return new ConnectionError(`HTTP/2 connection to ${origin.href} closed before SETTINGS`, err);
  return new ConnectionError(`HTTP/2 connection to ${origin.href} failed: ${err.message}`, err);
}

/**
 * One open() waiting for the Agent: its listener, called as `listener.resolve(session)` or
 * `listener.reject(err)` (methods, not closures: one of these per session opened).
 */
class PendingOpen<T> {
  readonly #origin: URL;
  readonly #headers: http2.OutgoingHttpHeaders;
  readonly #use: (stream: http2.ClientHttp2Stream, session: http2.ClientHttp2Session) => Promise<T>;
  readonly #resolve: (value: T) => void;
  readonly #reject: (err: Error) => void;

  constructor(
    origin: URL,
    headers: http2.OutgoingHttpHeaders,
    use: (stream: http2.ClientHttp2Stream, session: http2.ClientHttp2Session) => Promise<T>,
    resolve: (value: T) => void,
    reject: (err: Error) => void,
  ) {
    this.#origin = origin;
    this.#headers = headers;
    this.#use = use;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  // The Agent serves its listeners one after the other from one session while it has free
  // slots, counting a slot taken only when request() runs: so it must run right here.
  resolve(session: PooledSession): void {
    if (!session.remoteSettings.enableConnectProtocol) {
      this.#reject(new ExtendedConnectUnsupportedError(this.#origin.href));
      return;
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(this.#headers, { endStream: false });
    } catch (err) {
      // The session stopped taking streams (GOAWAY) between being chosen and now: nothing sent.
      this.#reject(new StreamResetError(undefined, `could not open stream: ${(err as Error).message}`));
      return;
    }
    this.#use(stream, session).then(this.#resolve, this.#reject);
  }

  reject(err: Error): void {
    this.#reject(connectionError(this.#origin, err));
  }
}

/** Events: 'connection' (id), 'goaway' (id, errorCode, lastStreamID), 'connection-closed' (id). */
export class ExtendedConnectPool extends EventEmitter {
  readonly #origin: URL;
  /** The key the Agent pools under: always https:// (see the h2c note above). */
  readonly #agentOrigin: URL;
  readonly #agent = new OneOriginAgent();
  readonly #connectOptions: http2.SecureClientSessionOptions;
  readonly #settingsTimeoutMs: number;
  readonly #localAddress: string | undefined;
  readonly #sessions = new Map<PooledSession, number>();
  readonly #sockets = new Set<net.Socket>();
  #opened = 0;
  #nextId = 1;

  constructor(origin: URL, options: ExtendedConnectPoolOptions = {}) {
    super();
    this.#origin = origin;
    this.#agentOrigin = new URL(`https://${origin.host}`);
    this.#settingsTimeoutMs = options.settingsTimeoutMs ?? 5_000;
    this.#localAddress = options.localAddress;
    this.#connectOptions = {
      maxSessionMemory: options.maxSessionMemoryMb ?? 100,
      // Given explicitly: without `settings` the Agent announces a 32 MB stream window, which for
      // thousands of long-lived streams is a promise of buffer space we do not mean to make.
      settings: { enablePush: false },
      ca: options.ca,
      createConnection: this.#connect,
    };
    this.#agent.on('session', (session: PooledSession) => this.#adopt(session));
  }

  /**
   * Open a stream with `headers` (an extended CONNECT) on a session whose peer allows RFC 8441 and
   * has a free stream slot, dialing one when none has. `use` gets the stream in the tick it was
   * created, so its listeners are attached before any event of the stream can fire.
   */
  open<T>(headers: http2.OutgoingHttpHeaders, use: (stream: http2.ClientHttp2Stream, session: http2.ClientHttp2Session) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const pending = new PendingOpen(this.#origin, headers, use, resolve, reject);
      const sole = this.#soleFreeSession();
      if (sole) {
        pending.resolve(sole);
        return;
      }
      // An array of listeners, as the Agent's own request() passes: its typings and README describe
      // a single listener object, which the code silently ignores (the promise resolves, nobody is called).
      void this.#agent.getSession(this.#agentOrigin, this.#connectOptions, [pending] as unknown as PromiseListeners);
    });
  }

  /**
   * The Agent's pick, without its lookup per stream (a promise, a copy of the listener array, the
   * origin serialised), when the pick is plain: it holds ONE session for us, and that one takes
   * streams and has a free slot. With several sessions the Agent's own choice applies (it packs
   * streams onto the fullest one with room). The slot is counted by the Agent's request() shim
   * on the session, whichever path called it.
   */
  #soleFreeSession(): PooledSession | undefined {
    const sessions = this.#agent.sessions[ONE_ORIGIN_KEY];
    if (sessions === undefined || sessions.length !== 1) return undefined;
    const session = sessions[0] as PooledSession;
    if (session[kGracefullyClosing] === true || session.destroyed || session.closed) return undefined;
    const limit = session.remoteSettings.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER;
    return (session[kCurrentStreamCount] as number) < limit ? session : undefined;
  }

  /** The session has stopped taking new streams (GOAWAY received, or closing). */
  isGoingAway(session: http2.ClientHttp2Session): boolean {
    return session.closed || session.destroyed || (session as PooledSession)[kGracefullyClosing] === true;
  }

  connections(): PooledConnection[] {
    return [...this.#sessions].map(([session, id]) => ({
      id,
      streams: Number(session[kCurrentStreamCount] ?? 0),
      limit: session.remoteSettings.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER,
      goingAway: this.isGoingAway(session),
    }));
  }

  /** Sessions that passed SETTINGS with RFC 8441, since the pool was created. */
  get connectionsOpened(): number {
    return this.#opened;
  }

  async close(): Promise<void> {
    // Sessions still waiting for SETTINGS are not the Agent's yet: their sockets are ours.
    this.#agent.destroy();
    await Promise.all(
      [...this.#sockets].map(
        (socket) =>
          new Promise<void>((resolve) => {
            if (socket.destroyed) return resolve();
            // A session's destroy() (by the Agent, above) waits for its GOAWAY to be written; against
            // a peer that stopped reading it never is, so the socket itself goes after a grace period.
            const force = setTimeout(() => socket.destroy(), 1_000);
            socket.once('close', () => {
              clearTimeout(force);
              resolve();
            });
          }),
      ),
    );
  }

  /** The Agent's createConnection: plain TCP for h2c, TLS with ALPN h2 otherwise. */
  #connect = (): net.Socket => {
    const { hostname, port, protocol } = this.#origin;
    const host = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
    const tlsOn = protocol === 'https:';
    const tcp: net.TcpNetConnectOpts = { host, port: Number(port || (tlsOn ? 443 : 80)), localAddress: this.#localAddress };
    const socket: DialSocket = tlsOn
      ? tls.connect({
          // tls.connect hands socket.connect() options on (localAddress too); its types omit them.
          ...(tcp as tls.ConnectionOptions),
          ca: this.#connectOptions.ca,
          ALPNProtocols: ['h2'],
          // RFC 6066 has no IP server names (and Node warns, DEP0123); the Agent then names the
          // origin by the peer's address, which is the host we dialed.
          servername: net.isIP(host) ? undefined : host,
        })
      : net.connect(tcp);
    // The Agent builds a plain socket's origin from `servername`, left undefined by net.Socket.
    if (!tlsOn) (socket as unknown as { servername: string }).servername = hostname;
    const settingsTimer = setTimeout(() => {
      socket.destroy(new TimeoutError(`SETTINGS from ${this.#origin.href}`, this.#settingsTimeoutMs));
    }, this.#settingsTimeoutMs);
    socket[kDial] = { settingsTimer };
    this.#sockets.add(socket);
    socket.once('close', () => {
      clearTimeout(settingsTimer);
      this.#sockets.delete(socket);
    });
    return socket;
  };

  /** Called by the Agent once a session has the peer's SETTINGS, before it serves anyone from it. */
  #adopt(session: PooledSession): void {
    clearTimeout((session.socket as DialSocket)[kDial]?.settingsTimer);
    if (!session.remoteSettings.enableConnectProtocol) {
      // Everyone waiting gets ExtendedConnectUnsupportedError from open(); the session is of no use.
      session[kGracefullyClosing] = true;
      session.close();
      return;
    }
    const id = this.#nextId++;
    this.#opened++;
    this.#sessions.set(session, id);
    // Node stops the session taking streams on GOAWAY(NO_ERROR) and lets open ones finish; the Agent
    // does not look at `closed`, only at its own flag, so new streams go to a new session only with it.
    session.on('goaway', (errorCode: number, lastStreamID: number) => {
      session[kGracefullyClosing] = true;
      log.info({ connection: id, errorCode, lastStreamID, streams: session[kCurrentStreamCount] }, 'GOAWAY received');
      this.emit('goaway', id, errorCode, lastStreamID);
    });
    session.on('error', (err) => log.debug({ connection: id, err: err.message }, 'connection error'));
    session.once('close', () => {
      this.#sessions.delete(session);
      this.emit('connection-closed', id);
    });
    log.debug({ connection: id, limit: session.remoteSettings.maxConcurrentStreams }, 'connection ready');
    this.emit('connection', id);
  }

}
