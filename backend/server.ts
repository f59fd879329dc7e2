import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import client from 'prom-client';
import { WebSocketServer, type ServerOptions, type WebSocket } from 'ws';
import type { BackendConfig } from '../lib/config.js';
import { CloseCode } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { createSniffingServer } from '../lib/protocol-sniffer.js';
import { parseRequestTarget } from '../lib/request-target.js';
import { acceptExtendedConnect, type ReceiveLimits } from '../lib/ws-h2-adapter.js';
import { BackendMetrics, type Transport } from './metrics.js';
import { OutboundGuard, type TrackOptions } from './outbound-guard.js';
import { HandshakeAuth } from './handshake-auth.js';
import { LocalBus, RedisBus, type RoomBus } from './room-bus.js';
import { LocalIpSessions, SharedIpSessions, type IpReservation, type IpSessionLimiter } from './ip-sessions.js';
import { matchRoute, Routes, type RouteMatch } from './routes.js';
import { checkWsVersion } from './ws-version.js';

/** Subprotocols every route speaks, in server preference order. */
export const SUBPROTOCOLS = ['chat.v2', 'chat.v1'] as const;

export interface Backend {
  readonly id: string;
  readonly port: number;
  readonly metrics: BackendMetrics;
  readonly routes: Routes;
  sessionCount(): number;
  /** Stop accepting, close every session with 1001, wait up to the drain timeout, then force. */
  close(): Promise<void>;
}

/**
 * The client's address for per-IP limits. Behind the front every connection comes from the proxy,
 * which appends the address it saw to X-Forwarded-For (HAProxy `option forwardfor`, Envoy
 * `use_remote_address`); both keep whatever the client sent in front of it. So only the LAST entry
 * is the front's word: the first is the client's own, and trusting it let any client lift its
 * per-IP limit (or spend another address's) with a made-up header. (For a client on loopback Envoy
 * appends its own interface address instead of 127.0.0.1.) A backend reached directly has no front
 * to vouch for the header: backends listen where only the front reaches them.
 */
export function clientAddress(forwardedFor: string | string[] | undefined, remote: string | undefined): string {
  const hops = [forwardedFor ?? []].flat().flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  return hops.at(-1) ?? remote ?? 'unknown';
}

export async function startBackend(config: BackendConfig, log: Logger = logger('backend', { backend: config.id })): Promise<Backend> {
  const metrics = new BackendMetrics(config.id);
  const bus: RoomBus = config.redisUrl
    ? new RedisBus(config.redisUrl, config.roomHistory, log.child({ bus: 'redis' }))
    : new LocalBus(config.roomHistory);
  if (bus instanceof RedisBus) await bus.ready();
  // The per-IP limit across every backend on the room bus's Redis (backend/ip-sessions.ts).
  const ipSessions: IpSessionLimiter = config.redisUrl
    ? new SharedIpSessions({ redisUrl: config.redisUrl, backendId: config.id, limit: config.maxSessionsPerIp, log: log.child({ limiter: 'per-ip' }) })
    : new LocalIpSessions(config.maxSessionsPerIp);
  if (ipSessions instanceof SharedIpSessions) await ipSessions.ready();
  new client.Gauge({
    name: 'room_bus_up',
    help: '1 when the room bus (Redis) is connected, 0 when degraded to local delivery',
    labelNames: ['kind'],
    registers: [metrics.registry],
    collect() {
      this.set({ kind: bus.kind }, bus.status() === 'ok' ? 1 : 0);
    },
  });
  const outbound = new OutboundGuard(config, (limit) => metrics.limitHits.inc({ limit }));
  const routes = new Routes({ backendId: config.id, log, metrics, bus, limits: config, outbound });
  /** What a session accepts from its peer, the same on both transports. */
  const receiveLimits: ReceiveLimits = {
    maxPayload: config.maxPayloadBytes,
    maxFragments: config.maxFragments,
    maxBufferedChunks: config.maxBufferedChunks,
    maxPendingPongs: config.maxPendingPongs,
  };
  const sessions = new Set<WebSocket>();
  /** Sessions by the CLIENT's transport: the front reports it in x-front-http-version ("2.0" / "1.1"),
   *  since with HTTP/1.1 upstream every session reaches us as an Upgrade whatever the client spoke. */
  const byClientTransport: Record<Transport, number> = { h1: 0, h2: 0 };
  const clientTransport = (header: string | string[] | undefined, own: Transport): Transport =>
    // HAProxy sends "2.0" / "1.1", Envoy "HTTP/2" / "HTTP/1.1".
    header === undefined ? own : String(header).replace(/^HTTP\//i, '').startsWith('2') ? 'h2' : 'h1';
  const h2Sessions = new Set<http2.ServerHttp2Session>();
  const h1Sockets = new Set<net.Socket | Duplex>();
  let draining = false;

  const idHeader = { 'x-backend-id': config.id };

  const auth = new HandshakeAuth({ jwtSecret: config.jwtSecret, allowedOrigins: config.allowedOrigins });
  const alive = new WeakMap<WebSocket, boolean>();

  /** Admitted: a per-IP slot is held until the session, or its transport (socket, stream), ends. */
  type Admission = { ok: true; route: RouteMatch; slot: IpReservation } | { ok: false; status: number; reason: string; route?: RouteMatch };

  /** Everything checked before a 101/200 is sent, the same for both transports; the per-IP slot last. */
  async function admit(path: string, params: URLSearchParams, headers: http.IncomingHttpHeaders, remote: string | undefined): Promise<Admission> {
    const matched = matchRoute(path, params);
    if (draining) return { ok: false, status: 503, reason: 'backend is draining' };
    if (matched && 'error' in matched) return { ok: false, status: matched.error.status, reason: matched.error.message };
    if (!matched) return { ok: false, status: 404, reason: `no WebSocket route for ${path}` };
    const verdict = await auth.check(headers, matched.name === 'chat' ? matched.room : undefined);
    if (!verdict.ok) {
      metrics.limitHits.inc({ limit: verdict.status === 401 ? 'auth' : 'forbidden' });
      return { ok: false, status: verdict.status, reason: verdict.reason, route: matched };
    }
    const ip = clientAddress(headers['x-forwarded-for'], remote);
    const slot = await ipSessions.acquire(ip);
    if (!slot) {
      metrics.limitHits.inc({ limit: 'per_ip' });
      const where = ipSessions.shared() ? 'across the backends' : 'on this backend';
      return { ok: false, status: 429, reason: `more than ${config.maxSessionsPerIp} sessions from ${ip} ${where}`, route: matched };
    }
    return { ok: true, route: matched, slot };
  }

  function begin(
    ws: WebSocket,
    transport: Transport,
    client: Transport,
    route: RouteMatch,
    params: URLSearchParams,
    slot: IpReservation,
    link: TrackOptions,
  ): void {
    sessions.add(ws);
    // The session's end frees its per-IP slot (the transport's close does too, for handshakes that fail).
    ws.once('close', slot.release);
    alive.set(ws, true);
    ws.on('pong', () => alive.set(ws, true));
    byClientTransport[client]++;
    metrics.sessions.inc({ transport, route: route.name });
    metrics.handshakes.inc({ transport, route: route.name, result: 'ok' });
    // A WebSocket without an 'error' listener takes the process down on the first bad frame;
    // ws has already answered with the right close code (1002/1007/1008/1009) by the time this fires.
    ws.on('error', (err) => {
      const code = (err as { code?: string }).code;
      // Too many fragments in one message, or too many chunks held for an incomplete frame (1008).
      if (code === 'WS_ERR_TOO_MANY_BUFFERED_PARTS') metrics.limitHits.inc({ limit: 'buffered_parts' });
      log.debug({ err: err.message, code, transport }, 'session error');
    });
    ws.on('close', (code) => {
      sessions.delete(ws);
      byClientTransport[client]--;
      metrics.sessions.dec({ transport, route: route.name });
      metrics.closes.inc({ code: String(code) });
    });
    routes.attach({ ws, transport, clientTransport: client, route: route.name, params, outbound: outbound.track(ws, link) }, route);
  }

  /** The gateway's drain deadline: close what is left with 1001 so clients reconnect elsewhere. */
  function closeAllSessions(): number {
    const n = sessions.size;
    for (const ws of sessions) ws.close(CloseCode.GOING_AWAY, 'endpoint drained');
    log.info({ sessions: n }, 'drain deadline: closed sessions with 1001');
    return n;
  }

  function plainResponse(path: string, method: string): { status: number; type: string; body: () => Promise<string> } {
    if (path === '/close-sessions') {
      if (method !== 'POST') return { status: 405, type: 'text/plain', body: async () => 'use POST\n' };
      const closed = closeAllSessions();
      return { status: 200, type: 'application/json', body: async () => JSON.stringify({ closed }) };
    }
    if (path === '/healthz') {
      return {
        status: draining ? 503 : 200,
        type: 'application/json',
        // A degraded bus still answers 200: the backend serves its local members and must stay in rotation.
        body: async () =>
          JSON.stringify({
            status: draining ? 'draining' : bus.status(),
            backend: config.id,
            sessions: sessions.size,
            transports: byClientTransport,
            // Messages since start, both directions and transports: the dashboard charts their rate.
            messages: metrics.traffic.h1.messagesIn + metrics.traffic.h2.messagesIn + metrics.traffic.h1.messagesOut + metrics.traffic.h2.messagesOut,
            bus: { kind: bus.kind, status: bus.status() },
            rooms: routes.roomSizes(),
          }),
      };
    }
    if (path === '/rooms') return { status: 200, type: 'application/json', body: async () => JSON.stringify(await bus.presence()) };
    if (path === '/metrics') return { status: 200, type: metrics.registry.contentType, body: () => metrics.registry.metrics() };
    const route = matchRoute(path);
    if (route && 'name' in route) return { status: 426, type: 'text/plain', body: async () => 'this is a WebSocket endpoint: send an Upgrade (HTTP/1.1) or an extended CONNECT (HTTP/2)\n' };
    return { status: 404, type: 'text/plain', body: async () => `no route for ${path}\n` };
  }

  /**
   * The last resort around each request, upgrade and stream handler: whatever escapes `handler`
   * (thrown or rejected) is logged and `answer`ed (500 or a reset) instead of reaching the process,
   * where a single request would end every session on this backend.
   */
  function guarded(handler: 'h1-request' | 'h1-upgrade' | 'h2-stream', run: () => void | Promise<void>, answer: () => void): void {
    const fail = (err: unknown) => {
      metrics.handlerErrors.inc({ handler });
      log.error({ err, handler }, 'request handler failed; answered with an internal error');
      try {
        answer();
      } catch (answerErr) {
        log.error({ err: answerErr, handler }, 'could not answer the failed request');
      }
    };
    try {
      void run()?.catch(fail);
    } catch (err) {
      fail(err);
    }
  }

  // ---- HTTP/1.1: plain requests and Upgrade ------------------------------------------------
  // @types/ws 8.18 does not know maxPendingAutoPongs (ws 8.23 does): typed here, passed as is.
  const serverOptions: ServerOptions & { maxPendingAutoPongs: number } = {
    noServer: true,
    maxPayload: receiveLimits.maxPayload,
    maxFragments: receiveLimits.maxFragments,
    maxBufferedChunks: receiveLimits.maxBufferedChunks,
    maxPendingAutoPongs: receiveLimits.maxPendingPongs,
    handleProtocols: (offered) => SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
  };
  const wss = new WebSocketServer(serverOptions);
  wss.on('headers', (headers) => headers.push(`x-backend-id: ${config.id}`));

  // Node's headersTimeout is enforced by a sweep that starts in listen(); this server never listens
  // itself (the sniffer hands it sockets), so the handshake deadline is kept here: a socket that has
  // not completed a request (or an Upgrade) within handshakeTimeoutMs is dropped (slowloris).
  const handshakeTimers = new WeakMap<object, NodeJS.Timeout>();
  const handshakeDone = (socket: object) => clearTimeout(handshakeTimers.get(socket));
  const h1 = http.createServer(
    { headersTimeout: config.handshakeTimeoutMs, requestTimeout: config.handshakeTimeoutMs },
    (req, res) => {
      handshakeDone(req.socket);
      guarded(
        'h1-request',
        async () => {
          const target = parseRequestTarget(req.url);
          if (!target.ok) {
            res.writeHead(400, { 'content-type': 'text/plain', connection: 'close', ...idHeader }).end(`${target.error.message}\n`);
            return;
          }
          const answer = plainResponse(target.url.pathname, req.method ?? 'GET');
          const body = await answer.body();
          res.writeHead(answer.status, { 'content-type': answer.type, ...idHeader }).end(body);
        },
        () => (res.headersSent ? res.destroy() : res.writeHead(500, { 'content-type': 'text/plain', connection: 'close', ...idHeader }).end('internal error\n')),
      );
    },
  );
  h1.on('connection', (socket: net.Socket) => {
    h1Sockets.add(socket);
    handshakeTimers.set(
      socket,
      setTimeout(() => {
        metrics.limitHits.inc({ limit: 'handshake_timeout' });
        socket.destroy();
      }, config.handshakeTimeoutMs).unref(),
    );
    socket.once('close', () => h1Sockets.delete(socket));
  });
  h1.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    handshakeDone(req.socket);
    socket.on('error', () => socket.destroy());
    /** Once a status line is on the wire (a refusal or the 101), a failure can only drop the socket. */
    let answered = false;
    const refuse = (status: number, reason: string, route?: RouteMatch, headers: Record<string, string> = {}) => {
      answered = true;
      metrics.handshakes.inc({ transport: 'h1', route: route?.name ?? 'none', result: String(status) });
      const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      // Destroyed once written: the connection is done, and a client that never closes its side
      // would otherwise keep it open.
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nx-backend-id: ${config.id}\r\ncontent-type: text/plain\r\n${extra}connection: close\r\n\r\n${reason}\n`,
        () => socket.destroy(),
      );
    };
    guarded(
      'h1-upgrade',
      async () => {
        const target = parseRequestTarget(req.url);
        if (!target.ok) return refuse(400, target.error.message);
        const { url } = target;
        if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return refuse(400, 'only "Upgrade: websocket" is served');
        const version = checkWsVersion(req.headers['sec-websocket-version']);
        if (version) return refuse(version.status, version.reason, undefined, version.headers);
        const admission = await admit(url.pathname, url.searchParams, req.headers, req.socket.remoteAddress);
        if (!admission.ok) return refuse(admission.status, admission.reason, admission.route);
        // Freed by the session's end (begin), or by the socket's if the handshake fails after this.
        socket.once('close', admission.slot.release);
        answered = true; // ws writes the 101 (or its own 400) from here on
        wss.handleUpgrade(req, socket, head, (ws) =>
          begin(ws, 'h1', clientTransport(req.headers['x-front-http-version'], 'h1'), admission.route, url.searchParams, admission.slot, {
            drop: () => ws.terminate(),
          }),
        );
      },
      () => (answered || socket.destroyed ? socket.destroy() : refuse(500, 'internal error')),
    );
  });

  // ---- HTTP/2: extended CONNECT (RFC 8441) and plain requests ---------------------------------
  // Everything goes through 'stream': a compatibility 'request' listener next to it resets
  // extended CONNECT streams right after the 200.
  const h2 = http2.createServer({
    settings: { enableConnectProtocol: true, maxConcurrentStreams: config.h2MaxConcurrentStreams },
    maxSessionMemory: config.maxSessionMemoryMb,
  });
  h2.on('session', (session) => {
    h2Sessions.add(session);
    session.on('error', (err) => log.debug({ err: err.message }, 'h2 session error'));
    session.once('close', () => h2Sessions.delete(session));
    if (draining) session.close();
  });
  h2.on('stream', (stream, headers) => {
    stream.on('error', (err) => log.debug({ err: err.message }, 'h2 stream error'));
    const connect = headers[':method'] === 'CONNECT';
    const respond = (status: number, type: string, body: string, headers: Record<string, string> = {}) => {
      if (stream.destroyed) return;
      stream.respond({ ':status': status, 'content-type': type, ...idHeader, ...headers });
      stream.end(body);
    };
    const refuse = (status: number, reason: string, route?: RouteMatch, headers: Record<string, string> = {}) => {
      if (connect) metrics.handshakes.inc({ transport: 'h2', route: route?.name ?? 'none', result: String(status) });
      respond(status, 'text/plain', reason + '\n', headers);
    };
    guarded(
      'h2-stream',
      async () => {
        const target = parseRequestTarget(headers[':path']);
        if (!target.ok) return refuse(400, target.error.message);
        const { url } = target;
        if (connect) {
          const version = checkWsVersion(headers['sec-websocket-version']);
          if (version) return refuse(version.status, version.reason, undefined, version.headers);
          const admission = await admit(url.pathname, url.searchParams, headers, stream.session?.socket?.remoteAddress);
          if (!admission.ok) return refuse(admission.status, admission.reason, admission.route);
          if (stream.destroyed) return admission.slot.release();
          stream.once('close', admission.slot.release);
          const result = acceptExtendedConnect(stream, headers, { protocols: SUBPROTOCOLS, responseHeaders: idHeader, limits: receiveLimits });
          if (!result.ok) {
            metrics.handshakes.inc({ transport: 'h2', route: admission.route.name, result: String(result.status) });
            return;
          }
          // A stalled stream is reset with CANCEL: "no longer needed" (RFC 9113 §7), and the other
          // streams of its connection go on.
          begin(result.ws, 'h2', clientTransport(headers['x-front-http-version'], 'h2'), admission.route, url.searchParams, admission.slot, {
            connection: stream.session,
            drop: () => stream.close(http2.constants.NGHTTP2_CANCEL),
          });
          return;
        }
        const answer = plainResponse(url.pathname, String(headers[':method']));
        respond(answer.status, answer.type, await answer.body());
      },
      () =>
        stream.headersSent || stream.destroyed
          ? stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)
          : respond(500, 'text/plain', 'internal error\n'),
    );
  });

  // ---- One port for all of it ----------------------------------------------------------------
  const tlsOptions =
    config.tlsCert && config.tlsKey ? { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) } : undefined;
  const listener = createSniffingServer({ h1, h2, tls: tlsOptions, firstByteTimeoutMs: config.handshakeTimeoutMs });

  // Heartbeat: a session that did not answer the previous ping is gone (dead peer, half-open TCP).
  const heartbeat =
    config.pingIntervalMs > 0
      ? setInterval(() => {
          for (const ws of sessions) {
            if (!alive.get(ws)) {
              metrics.limitHits.inc({ limit: 'heartbeat' });
              ws.terminate();
              continue;
            }
            alive.set(ws, false);
            ws.ping();
          }
        }, config.pingIntervalMs)
      : undefined;
  heartbeat?.unref();
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(config.port, config.host, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  listener.on('error', (err) => log.error({ err }, 'listener error'));
  const port = (listener.address() as net.AddressInfo).port;
  log.info({ host: config.host, port, tls: Boolean(tlsOptions) }, 'backend listening (HTTP/1.1 Upgrade + h2c extended CONNECT on one port)');

  let closing: Promise<void> | undefined;
  async function drainAndClose(): Promise<void> {
    draining = true;
    clearInterval(heartbeat);
    outbound.stop();
    listener.close();
    for (const session of h2Sessions) session.close(); // GOAWAY: no new streams on existing connections
    log.info({ sessions: sessions.size, timeoutMs: config.drainTimeoutMs }, 'draining: closing sessions with 1001');
    for (const ws of sessions) ws.close(CloseCode.GOING_AWAY, 'backend shutting down');
    const deadline = Date.now() + config.drainTimeoutMs;
    while (sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (sessions.size > 0) log.warn({ sessions: sessions.size }, 'drain timeout: terminating remaining sessions');
    for (const ws of sessions) ws.terminate();
    for (const session of h2Sessions) session.destroy();
    for (const socket of h1Sockets) socket.destroy();
    wss.close();
    await Promise.all([bus.close(), ipSessions.close()]);
    log.info('backend stopped');
  }

  return {
    id: config.id,
    port,
    metrics,
    routes,
    sessionCount: () => sessions.size,
    close: () => (closing ??= drainAndClose()),
  };
}
