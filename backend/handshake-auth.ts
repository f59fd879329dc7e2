import { jwtVerify, errors as joseErrors } from 'jose';
import type { IncomingHttpHeaders } from 'node:http';

// Who may open a session, decided before the upgrade succeeds (101 / 200 is never sent otherwise).
//
// Token (HS256 JWT signed with the shared secret), looked for in this order:
//   Authorization: Bearer <jwt>                 Node clients (MuxClient/H1Client `headers`)
//   Cookie: gw_token=<jwt>                      browsers on the same site
//   Sec-WebSocket-Protocol: ..., bearer.<jwt>   browsers (the page must also offer a real
//                                               subprotocol, which is the one the server picks)
// Claims: `exp` (checked), `rooms`: ["lobby", ...] or "*" (which /chat/<room> it may join).
// Answers: 401 missing/invalid/expired token, 403 room not granted or Origin not allowed.

export interface AuthOptions {
  /** Shared HS256 secret; undefined = no authentication (loopback demo). */
  jwtSecret?: string;
  /** Browser origins allowed to open sessions; empty = any. Requests without Origin (non-browser) pass. */
  allowedOrigins: readonly string[];
}

export type AuthResult = { ok: true; subject?: string } | { ok: false; status: 401 | 403; reason: string };

const BEARER_PROTOCOL_PREFIX = 'bearer.';

function tokenFrom(headers: IncomingHttpHeaders): string | undefined {
  const auth = /^Bearer\s+(\S+)$/i.exec(String(headers.authorization ?? ''))?.[1];
  if (auth) return auth;
  const cookie = /(?:^|;\s*)gw_token=([^;]+)/.exec(String(headers.cookie ?? ''))?.[1];
  if (cookie) return cookie;
  const protocols = String(headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  return protocols.find((p) => p.startsWith(BEARER_PROTOCOL_PREFIX))?.slice(BEARER_PROTOCOL_PREFIX.length);
}

export class HandshakeAuth {
  readonly #secret: Uint8Array | undefined;
  readonly #origins: ReadonlySet<string>;

  constructor(options: AuthOptions) {
    this.#secret = options.jwtSecret ? new TextEncoder().encode(options.jwtSecret) : undefined;
    this.#origins = new Set(options.allowedOrigins);
  }

  get enabled(): boolean {
    return this.#secret !== undefined;
  }

  async check(headers: IncomingHttpHeaders, room: string | undefined): Promise<AuthResult> {
    const origin = headers.origin;
    if (origin !== undefined && this.#origins.size > 0 && !this.#origins.has(String(origin))) {
      return { ok: false, status: 403, reason: `origin ${origin} is not allowed` };
    }
    if (!this.#secret) return { ok: true };
    const token = tokenFrom(headers);
    if (!token) return { ok: false, status: 401, reason: 'missing token (Authorization: Bearer, gw_token cookie, or a bearer.<jwt> subprotocol)' };
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.#secret, { algorithms: ['HS256'] }));
    } catch (err) {
      const reason = err instanceof joseErrors.JWTExpired ? 'token expired' : 'invalid token';
      return { ok: false, status: 401, reason };
    }
    if (room !== undefined) {
      const rooms = payload.rooms;
      const granted = rooms === '*' || (Array.isArray(rooms) && rooms.includes(room));
      if (!granted) return { ok: false, status: 403, reason: `token does not grant room ${room}` };
    }
    return { ok: true, subject: payload.sub };
  }
}
