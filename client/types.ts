import type { IncomingHttpHeaders } from 'node:http';
import type { WebSocket } from 'ws';

/**
 * One WebSocket session, whichever transport carries it.
 * Reading is paused until the next macrotask after `open()` resolves, so listeners attached right
 * after `await client.open()` see the first messages (e.g. a chat join notice sent with the 101/200).
 */
export interface WsSession {
  /** A plain `ws` WebSocket: send/ping/close/bufferedAmount behave the same on both transports. */
  ws: WebSocket;
  transport: 'h1' | 'h2';
  /** The `x-backend-id` the backend put on its handshake response, if any. */
  backendId: string | undefined;
  /** Negotiated subprotocol, '' when none. */
  protocol: string;
  /** Handshake response headers (101 for h1, 200 for h2). */
  headers: IncomingHttpHeaders;
  /** Our port of the TCP connection that carries the session (shared by every stream of one HTTP/2
   *  connection): tells which connection — and so which proxy process or generation — holds it. */
  localPort: number | undefined;
}

export interface OpenSessionOptions {
  protocols?: readonly string[];
  headers?: Record<string, string>;
}

export interface ClientStats {
  /** TCP connections open right now. */
  connections: number;
  /** WebSocket sessions open (or opening) right now. */
  openStreams: number;
  /** TCP connections opened since the client was created. */
  connectionsOpened: number;
}

/** What bench and tests program against, so the two transports swap freely. */
export interface WsClient {
  readonly transport: 'h1' | 'h2';
  open(path: string, options?: OpenSessionOptions): Promise<WsSession>;
  stats(): ClientStats;
  close(): Promise<void>;
}

/** Paused WebSockets to resume together, by one setImmediate. */
let held: WebSocket[] | undefined;

function resumeHeld(): void {
  const batch = held!;
  held = undefined;
  for (const ws of batch) ws.resume();
}

/**
 * Resume the paused `ws` in the next macrotask: promise continuations (the caller's
 * `await open()`) run first, so the listeners they attach see the first messages. One immediate
 * serves every session opened in a tick, not one each.
 */
export function resumeInNextMacrotask(ws: WebSocket): void {
  if (held === undefined) {
    held = [];
    setImmediate(resumeHeld);
  }
  held.push(ws);
}

/** Hold incoming messages until the caller's `await open()` continuation has run. */
export function deliverAfterResolve(session: WsSession, resolve: (s: WsSession) => void): void {
  session.ws.pause();
  resumeInNextMacrotask(session.ws);
  resolve(session);
}
