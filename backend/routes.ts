import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import { CloseCode } from '../lib/errors.js';
import type { BackendConfig } from '../lib/config.js';
import type { BackendMetrics, Transport } from './metrics.js';
import type { OutboundGuard, SessionOutbound } from './outbound-guard.js';
import { compareOffsets, isOffset, type RoomBus, type RoomEvent } from './room-bus.js';

// The WebSocket applications a backend serves. They see a `ws` WebSocket and never know whether it
// arrived as an HTTP/1.1 Upgrade or an RFC 8441 stream: that is the point of the adapter.
//
// Chat protocol (/chat/<room>[?since=<offset>]):
//   server → client: {"type":"welcome", room, member, backend, transport: "h1"|"h2" (what the client spoke), bus}, then (with ?since) the missed
//                    messages in order, or {"type":"history-too-old", oldest} / {"type":"history-unavailable"},
//                    then live {"type":"message", room, offset, text, from, backend} and join/leave notices.
//   client → server: JSON text frames {"text": "..."} (at most MAX_CHAT_TEXT bytes of text).
//                    A frame that is not such JSON gets {"type":"error","code":"bad-frame"}; a binary
//                    frame closes the session with 1003 (unsupported data).

export interface Session {
  ws: WebSocket;
  /** How the session reached this backend. */
  transport: Transport;
  /** What the client spoke to the front (x-front-http-version), or `transport` when reached directly. */
  clientTransport: Transport;
  route: string;
  /** Query string parameters of the handshake path. */
  params: URLSearchParams;
  /** What the session holds unsent (OutboundGuard.track). */
  outbound: SessionOutbound;
}

export interface RouteContext {
  backendId: string;
  log: Logger;
  metrics: BackendMetrics;
  bus: RoomBus;
  limits: Pick<BackendConfig, 'feedRateHz' | 'maxMessagesPerSecond' | 'maxRoomSize'>;
  /** Slow consumers, per-connection unsent bytes, stalled writes. */
  outbound: OutboundGuard;
}

export type RouteMatch = { name: 'echo' } | { name: 'chat'; room: string } | { name: 'feed' };
export type RouteResult = RouteMatch | { error: { status: number; message: string } } | undefined;

const ROOM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_CHAT_TEXT = 4096;

/** Map a handshake path to a route; an error (bad room name, bad ?since) is answered at the handshake. */
export function matchRoute(pathname: string, params?: URLSearchParams): RouteResult {
  if (pathname === '/echo') return { name: 'echo' };
  if (pathname === '/feed') return { name: 'feed' };
  if (pathname.startsWith('/chat/')) {
    let room: string;
    try {
      room = decodeURIComponent(pathname.slice('/chat/'.length));
    } catch {
      return { error: { status: 400, message: 'room name is not valid percent-encoding' } };
    }
    if (!ROOM_NAME.test(room)) {
      return { error: { status: 400, message: 'room name must be 1-64 characters of A-Z a-z 0-9 _ . -' } };
    }
    const since = params?.get('since');
    if (since !== null && since !== undefined && !isOffset(since)) {
      return { error: { status: 400, message: 'since must be a message offset such as 1732390000000-0' } };
    }
    return { name: 'chat', room };
  }
  return undefined;
}

function rawLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}

export class Routes {
  readonly #ctx: RouteContext;
  /** Local members per room: for counts and for /healthz; delivery goes through the bus. */
  readonly #rooms = new Map<string, Set<WebSocket>>();

  constructor(ctx: RouteContext) {
    this.#ctx = ctx;
  }

  roomSizes(): Record<string, number> {
    return Object.fromEntries([...this.#rooms].map(([room, members]) => [room, members.size]));
  }

  attach(session: Session, route: RouteMatch): void {
    const { limits, metrics } = this.#ctx;
    // Token bucket: maxMessagesPerSecond sustained, twice that in a burst.
    const capacity = limits.maxMessagesPerSecond * 2;
    let tokens = capacity;
    let refilledAt = performance.now();
    const traffic = metrics.traffic[session.transport];
    session.ws.on('message', (data) => {
      traffic.messagesIn++;
      traffic.bytesIn += rawLength(data);
      const now = performance.now();
      tokens = Math.min(capacity, tokens + ((now - refilledAt) / 1000) * limits.maxMessagesPerSecond);
      refilledAt = now;
      if (--tokens < 0 && session.ws.readyState === session.ws.OPEN) {
        metrics.limitHits.inc({ limit: 'rate' });
        session.ws.close(CloseCode.POLICY_VIOLATION, `more than ${limits.maxMessagesPerSecond} messages/s`);
      }
    });
    switch (route.name) {
      case 'echo':
        return this.#echo(session);
      case 'chat':
        return void this.#chat(session, route.room).catch((err: Error) => {
          this.#ctx.log.error({ err: err.message, room: route.room }, 'chat session failed');
          session.ws.close(CloseCode.INTERNAL_ERROR, 'internal error');
        });
      case 'feed':
        return this.#feed(session);
    }
  }

  /** Every outgoing message goes through here: metrics count it once, the outbound bounds apply once. */
  #send(session: Session, data: string | Buffer, binary = false): void {
    if (session.ws.readyState !== session.ws.OPEN) return;
    if (!this.#ctx.outbound.send(session.outbound, data, binary)) return;
    const traffic = this.#ctx.metrics.traffic[session.transport];
    traffic.messagesOut++;
    traffic.bytesOut += typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  }

  #echo(session: Session): void {
    session.ws.on('message', (data, isBinary) => this.#send(session, data as Buffer, isBinary));
  }

  async #chat(session: Session, room: string): Promise<void> {
    const { ws, params } = session;
    const { bus, backendId } = this.#ctx;
    const member = randomUUID().slice(0, 8);
    const since = params.get('since') ?? undefined;
    let last = since;
    let replaying = true;
    const buffered: RoomEvent[] = [];

    const deliver = (event: RoomEvent) => {
      // Live messages that history already delivered (or the client had) are skipped: never twice.
      if (event.offset && last && compareOffsets(event.offset, last) <= 0) return;
      if (event.offset) last = event.offset;
      this.#send(session, JSON.stringify(event));
    };
    // Frames the client sends while we subscribe and replay history wait here, in order.
    const early: Array<[RawData, boolean]> = [];
    let onFrame = (data: RawData, isBinary: boolean) => void early.push([data, isBinary]);
    ws.on('message', (data, isBinary) => onFrame(data, isBinary));

    const subscription = bus.subscribe(room, (event) => (replaying ? buffered.push(event) : deliver(event)));
    ws.once('close', () => subscription.unsubscribe());
    await subscription.ready;

    this.#send(
      session,
      JSON.stringify({ type: 'welcome', room, member, backend: backendId, transport: session.clientTransport, bus: bus.kind, status: bus.status() }),
    );
    if (since) {
      const history = await bus.history(room, since);
      if (history.ok) history.events.forEach(deliver);
      else if (history.reason === 'too-old') this.#send(session, JSON.stringify({ type: 'history-too-old', room, since, oldest: history.oldest }));
      else this.#send(session, JSON.stringify({ type: 'history-unavailable', room, since }));
    }
    replaying = false;
    buffered.forEach(deliver);
    if (ws.readyState !== ws.OPEN) return;

    let local = this.#rooms.get(room);
    if (!local) this.#rooms.set(room, (local = new Set()));
    local.add(ws);
    const members = await bus.setPresence(room, member, backendId);
    if ((bus.kind === 'local' ? local.size : members) > this.#ctx.limits.maxRoomSize) {
      this.#ctx.metrics.limitHits.inc({ limit: 'room_size' });
      local.delete(ws);
      await bus.setPresence(room, member, null);
      ws.close(CloseCode.POLICY_VIOLATION, `room ${room} is full (${this.#ctx.limits.maxRoomSize} members)`);
      return;
    }
    await bus.publish({ type: 'join', room, from: member, backend: backendId, members: bus.kind === 'local' ? local.size : members });

    onFrame = (data, isBinary) => {
      if (isBinary) {
        ws.close(CloseCode.UNSUPPORTED_DATA, 'chat accepts JSON text frames only');
        return;
      }
      let text: unknown;
      try {
        text = (JSON.parse(data.toString()) as { text?: unknown }).text;
      } catch {
        text = undefined;
      }
      if (typeof text !== 'string' || text.length === 0 || Buffer.byteLength(text) > MAX_CHAT_TEXT) {
        this.#send(session, JSON.stringify({ type: 'error', code: 'bad-frame', message: `send {"text": "<1..${MAX_CHAT_TEXT} bytes>"}` }));
        return;
      }
      void bus.publish({ type: 'message', room, text, from: member, backend: backendId });
    };
    for (const [data, isBinary] of early.splice(0)) onFrame(data, isBinary);
    ws.once('close', () => {
      local.delete(ws);
      if (local.size === 0) this.#rooms.delete(room);
      void bus
        .setPresence(room, member, null)
        .then((n) => bus.publish({ type: 'leave', room, from: member, backend: backendId, members: bus.kind === 'local' ? local.size : n }));
    });
  }

  #feed(session: Session): void {
    const { ws, params } = session;
    const requested = Number(params.get('rate') ?? this.#ctx.limits.feedRateHz);
    if (!Number.isFinite(requested) || requested <= 0 || requested > 1000) {
      ws.close(CloseCode.POLICY_VIOLATION, 'rate must be between 0 and 1000 ticks/s');
      return;
    }
    let seq = 0;
    const timer = setInterval(() => {
      this.#send(session, JSON.stringify({ type: 'tick', seq: seq++, t: Date.now(), backend: this.#ctx.backendId }));
    }, 1000 / requested);
    ws.on('close', () => clearInterval(timer));
  }
}
