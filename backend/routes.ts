import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import { CloseCode } from '../lib/errors.js';
import type { BackendMetrics, Transport } from './metrics.js';

// The WebSocket applications a backend serves. They see a `ws` WebSocket and never know whether it
// arrived as an HTTP/1.1 Upgrade or an RFC 8441 stream: that is the point of the adapter.

export interface Session {
  ws: WebSocket;
  transport: Transport;
  route: string;
  /** Query string parameters of the handshake path. */
  params: URLSearchParams;
}

export interface RouteContext {
  backendId: string;
  log: Logger;
  metrics: BackendMetrics;
  feedRateHz: number;
}

export type RouteMatch = { name: 'echo' } | { name: 'chat'; room: string } | { name: 'feed' };

const ROOM = /^[A-Za-z0-9_.-]{1,64}$/;

/** Map a handshake path to a route, or undefined for 404. */
export function matchRoute(pathname: string): RouteMatch | undefined {
  if (pathname === '/echo') return { name: 'echo' };
  if (pathname === '/feed') return { name: 'feed' };
  if (pathname.startsWith('/chat/')) {
    const room = decodeURIComponent(pathname.slice('/chat/'.length));
    return ROOM.test(room) ? { name: 'chat', room } : undefined;
  }
  return undefined;
}

function rawLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}

export class Routes {
  readonly #ctx: RouteContext;
  readonly #rooms = new Map<string, Set<WebSocket>>();

  constructor(ctx: RouteContext) {
    this.#ctx = ctx;
  }

  roomSizes(): Record<string, number> {
    return Object.fromEntries([...this.#rooms].map(([room, members]) => [room, members.size]));
  }

  /** Count every message and byte in both directions for this session. */
  #instrument(session: Session): void {
    const { metrics } = this.#ctx;
    const { ws, transport } = session;
    ws.on('message', (data) => {
      metrics.messages.inc({ direction: 'in', transport });
      metrics.bytes.inc({ direction: 'in', transport }, rawLength(data));
    });
    const send = ws.send.bind(ws);
    ws.send = ((data: Buffer | string, ...rest: unknown[]) => {
      metrics.messages.inc({ direction: 'out', transport });
      metrics.bytes.inc({ direction: 'out', transport }, typeof data === 'string' ? Buffer.byteLength(data) : data.length);
      return (send as (...a: unknown[]) => void)(data, ...rest);
    }) as WebSocket['send'];
  }

  attach(session: Session, route: RouteMatch): void {
    this.#instrument(session);
    switch (route.name) {
      case 'echo':
        return this.#echo(session);
      case 'chat':
        return this.#chat(session, route.room);
      case 'feed':
        return this.#feed(session);
    }
  }

  #echo({ ws }: Session): void {
    ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
  }

  #chat({ ws }: Session, room: string): void {
    let members = this.#rooms.get(room);
    if (!members) this.#rooms.set(room, (members = new Set()));
    members.add(ws);
    const { backendId } = this.#ctx;
    const broadcast = (payload: object) => {
      const text = JSON.stringify(payload);
      for (const member of members) if (member.readyState === member.OPEN) member.send(text);
    };
    broadcast({ type: 'join', room, members: members.size, backend: backendId });
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? Buffer.from(data as Buffer).toString('base64') : data.toString();
      broadcast({ type: 'message', room, text, binary: isBinary, backend: backendId });
    });
    ws.on('close', () => {
      members.delete(ws);
      if (members.size === 0) this.#rooms.delete(room);
      else broadcast({ type: 'leave', room, members: members.size, backend: backendId });
    });
  }

  #feed({ ws, params }: Session): void {
    const requested = Number(params.get('rate') ?? this.#ctx.feedRateHz);
    if (!Number.isFinite(requested) || requested <= 0 || requested > 1000) {
      ws.close(CloseCode.POLICY_VIOLATION, 'rate must be between 0 and 1000 ticks/s');
      return;
    }
    let seq = 0;
    const timer = setInterval(() => {
      // Slow consumer: skip ticks rather than buffer without bound.
      if (ws.bufferedAmount > 1024 * 1024) return;
      ws.send(JSON.stringify({ type: 'tick', seq: seq++, t: Date.now(), backend: this.#ctx.backendId }));
    }, 1000 / requested);
    ws.on('close', () => clearInterval(timer));
  }
}
