import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { z } from 'zod';
import { GatewayError } from '../../lib/errors.js';
import { logger } from '../../lib/log.js';
import { parseRequestTarget } from '../../lib/request-target.js';
import type { BackendProcess } from '../core/backend-process.js';
import type { DrainController } from '../core/drain.js';
import type { EndpointPolicy } from '../core/endpoint-policy.js';
import { HttpError, parseBody, readJsonBody } from './http-json.js';
import type { HealthChecker } from '../core/health.js';
import { HaproxyConfigRejectedError } from '../haproxy/front.js';
import type { HotRestartEngine } from '../core/hot-restart.js';
import type { RestartEvent } from '../core/supervisor.js';
import type { XdsServer } from '../envoy/xds/index.js';
import {
  addressSchema,
  endpointIdSchema,
  EndpointConflictError,
  EndpointNotFoundError,
  parseAddress,
  weightSchema,
  type EndpointRegistry,
  type RegistryEvent,
} from '../core/registry.js';

// The gateway's admin API (JSON over HTTP, loopback by default):
//   GET    /endpoints              list, with health and session counts
//   POST   /endpoints              {id?, address, weight?}          → 201
//   PATCH  /endpoints/:id          {weight?, state?: "active"}      → 200 (state=active cancels a drain)
//   POST   /endpoints/:id/drain    {deadlineMs?}                    → 202
//   DELETE /endpoints/:id          drain, then remove               → 202
//   POST   /hot-restart            start a new proxy generation → {generation, oldPids, newPids}
//   GET    /hot-restart            live generations and the sessions each still holds
//   GET    /xds                    xDS clients (Envoy, gRPC): versions sent, ACKed, NACKed per type
//   GET    /front                  client TCP connections vs WebSocket sessions at the proxy
//   GET    /rooms                  chat presence: room → member → backend, across backends
//   GET    /events                 Server-Sent Events of registry changes, drains, hot restarts and
//                                  backend restarts: first a `snapshot`, then `history` (the last
//                                  100 events), then live ones
//   GET    /healthz
// Bad input → 400 naming the field; unknown id → 404; conflicts → 409.
// Every route but GET /healthz needs the admin token: `Authorization: Bearer <token>`, or the
// `gw_admin` cookie that a visit to any page with `?token=<token>` sets (for the dashboard).

const HISTORY_LENGTH = 100;

export interface AdminDeps {
  /** Required on every request (see above). */
  token: string;
  /** Where a user finds it, for the 401 text: the token file of this stack's state dir, or ADMIN_TOKEN. */
  tokenFrom?: string;
  registry: EndpointRegistry;
  drain: DrainController;
  health: HealthChecker;
  hotRestart?: HotRestartEngine;
  /** Which addresses POST /endpoints may register (gateway/core/endpoint-policy.ts); unset: any. */
  endpointPolicy?: EndpointPolicy;
  xds?: Pick<XdsServer, 'versions'>;
  /** Client TCP connections vs WebSocket sessions at the front, as the proxy itself counts them. */
  front?: () => Promise<FrontCounts>;
  /** Backend processes this gateway runs: each restart after a crash becomes a `backend-restarted` event. */
  backends?: readonly Pick<BackendProcess, 'id' | 'keeper'>[];
  /** More routes (the web page and dashboard): return true when the request was handled. */
  extraRoutes?: (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => Promise<boolean>;
  log?: Logger;
}

export interface FrontCounts {
  engine: 'haproxy' | 'envoy';
  version: string;
  /** Client TCP connections open now (all generations). */
  connections: number;
  /** WebSocket sessions (HTTP/2 streams + HTTP/1.1 upgrades) open now. */
  sessions: number;
  /** Cumulative client connections and sessions since the front started. */
  connectionsTotal: number;
  sessionsTotal: number;
}


const addBody = z.strictObject({ id: endpointIdSchema.optional(), address: addressSchema, weight: weightSchema.optional() });
const patchBody = z
  .strictObject({ weight: weightSchema.optional(), state: z.literal('active').optional() })
  .refine((b) => b.weight !== undefined || b.state !== undefined, { message: 'give "weight" and/or "state"', path: ['weight'] });
const drainBody = z.strictObject({ deadlineMs: z.number().int().min(0).max(24 * 3600_000).optional() });



export interface AdminServer {
  port: number;
  url: string;
  server: http.Server;
  /** Broadcast an extra event to SSE subscribers (hot restarts, drains, ...). */
  publish(event: string, data: unknown): void;
  close(): Promise<void>;
}

export async function startAdminApi(deps: AdminDeps, host: string, port: number): Promise<AdminServer> {
  const log = deps.log ?? logger('admin-api');
  const { registry, drain, health } = deps;
  const subscribers = new Set<http.ServerResponse>();

  // The last events, replayed to every new /events subscriber, so a dashboard opened (or reloaded)
  // after a drain or a hot restart still shows it. Ids let a reconnecting page skip what it has.
  const history: Array<{ id: number; type: string; at: number; data: unknown }> = [];
  let lastId = 0;
  const publish = (event: string, data: unknown) => {
    const id = ++lastId;
    history.push({ id, type: event, at: Date.now(), data });
    if (history.length > HISTORY_LENGTH) history.shift();
    const frame = `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of subscribers) res.write(frame);
  };
  const onChange = (e: RegistryEvent) => publish('endpoint', e);
  registry.on('change', onChange);
  drain.on('drained', (r) => publish('drained', r));
  const onBackendRestart = (id: string) => (e: RestartEvent) =>
    publish('backend-restarted', { id, pid: e.pid, previousPid: e.previousPid, exit: e.exit, restarts: e.restarts, downMs: e.downMs });
  const restartListeners = (deps.backends ?? []).map((b) => {
    const listener = onBackendRestart(b.id);
    b.keeper.on('restarted', listener);
    return () => b.keeper.off('restarted', listener);
  });

  /** Merge each live endpoint's view (with Redis every backend sees all; without, each its own). */
  async function roomPresence(): Promise<Record<string, Record<string, string>>> {
    const merged: Record<string, Record<string, string>> = {};
    const answers = await Promise.all(
      registry
        .list()
        .filter((e) => e.state !== 'down')
        .map((e) =>
          fetch(`http://${e.host}:${e.port}/rooms`, { signal: AbortSignal.timeout(2_000) })
            .then((r) => r.json() as Promise<Record<string, Record<string, string>>>)
            .catch(() => ({})),
        ),
    );
    for (const rooms of answers) for (const [room, members] of Object.entries(rooms)) Object.assign((merged[room] ??= {}), members);
    return merged;
  }

  const expected = Buffer.from(deps.token);
  const tokenMatches = (candidate: string) => {
    const given = Buffer.from(candidate);
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
  const authorized = (req: http.IncomingMessage) => {
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const cookie = /(?:^|;\s*)gw_admin=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    return [bearer, cookie].some((t) => t !== undefined && tokenMatches(t));
  };

  const view = () => ({
    version: registry.version,
    endpoints: registry.list().map((e) => ({ ...e, address: `${e.host}:${e.port}`, health: health.status(e.id) ?? null })),
  });

  /**
   * A write must come from the admin's own pages (Origin = this server) or from a client that sends
   * no Origin (CLI, scripts), and a body must be JSON: the admin cookie alone is no proof of intent,
   * since SameSite does not tell ports apart on 127.0.0.1 and a foreign page can POST text/plain or
   * a form without a CORS preflight.
   */
  function refuseCrossSiteWrite(req: http.IncomingMessage, method: string): void {
    if (method === 'GET' || method === 'HEAD') return;
    const origin = req.headers.origin;
    if (origin !== undefined && !ownOrigins.has(origin.toLowerCase())) {
      throw new HttpError(403, 'GW_ERR_ORIGIN', `refused ${method} from Origin ${origin}: the admin API takes writes from its own pages (${[...ownOrigins][0]}) or from clients that send no Origin`);
    }
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (hasBody && !/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
      throw new HttpError(415, 'GW_ERR_CONTENT_TYPE', `${method} bodies must be application/json (got ${req.headers['content-type'] ?? 'no content-type'})`);
    }
  }
  let ownOrigins = new Set<string>();

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const target = parseRequestTarget(req.url);
    if (!target.ok) throw new HttpError(400, target.error.code, target.error.message);
    const { url } = target;
    const parts = url.pathname.split('/').filter(Boolean);
    const method = req.method ?? 'GET';
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body, null, 2) + '\n');
    };

    if (url.pathname === '/healthz' && method === 'GET') return json(200, { status: 'ok' });
    const offered = url.searchParams.get('token');
    if (offered !== null && method === 'GET' && tokenMatches(offered)) {
      // Trade the token in the URL for a cookie, and drop it from the address bar.
      url.searchParams.delete('token');
      res.writeHead(303, {
        'set-cookie': `gw_admin=${deps.token}; HttpOnly; SameSite=Strict; Path=/`,
        location: url.pathname + url.search,
      });
      res.end();
      return;
    }
    if (!authorized(req)) {
      res.setHeader('www-authenticate', 'Bearer realm="gateway admin"');
      throw new HttpError(401, 'GW_ERR_UNAUTHORIZED', `admin API needs the admin token (Authorization: Bearer <token>); see ${deps.tokenFrom ?? 'ADMIN_TOKEN'}`);
    }
    refuseCrossSiteWrite(req, method);
    if (url.pathname === '/events' && method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      res.write(`event: snapshot\ndata: ${JSON.stringify(view())}\n\n`);
      res.write(`event: history\ndata: ${JSON.stringify(history)}\n\n`);
      subscribers.add(res);
      req.once('close', () => subscribers.delete(res));
      return;
    }
    if (url.pathname === '/rooms' && method === 'GET') return json(200, await roomPresence());
    if (url.pathname === '/xds' && method === 'GET' && deps.xds) return json(200, deps.xds.versions());
    if (url.pathname === '/front' && method === 'GET' && deps.front) return json(200, await deps.front());
    if (deps.extraRoutes && (await deps.extraRoutes(req, res, url))) return;
    if (url.pathname === '/hot-restart' && deps.hotRestart) {
      if (method === 'GET') return json(200, { engine: deps.hotRestart.engine, generations: await deps.hotRestart.generations() });
      if (method === 'POST') {
        const result = await deps.hotRestart.restart().catch((err: unknown) => {
          // A refused restart (config rejected, restarter stopping) leaves the running generation
          // serving: a conflict with the current state, not a server fault. Unreachable → 502.
          if (!(err instanceof GatewayError) || err instanceof HttpError) throw err;
          throw new HttpError(err.code === 'GW_ERR_RESTARTER_UNREACHABLE' ? 502 : 409, err.code, err.message);
        });
        publish('hot-restart', result);
        return json(200, result);
      }
    }
    if (parts[0] !== 'endpoints') throw new HttpError(404, 'GW_ERR_NOT_FOUND', `no route ${method} ${url.pathname}`);
    const id = parts[1];
    if (id !== undefined && !endpointIdSchema.safeParse(id).success) throw new HttpError(400, 'GW_ERR_BAD_REQUEST', 'invalid field "id": bad endpoint id in path');

    if (parts.length === 1 && method === 'GET') return json(200, view());
    if (parts.length === 1 && method === 'POST') {
      const body = parseBody(addBody, await readJsonBody(req));
      const address = parseAddress(body.address);
      await deps.endpointPolicy?.(address.host, address.port);
      const endpoint = registry.add({ id: body.id, ...address, weight: body.weight });
      return json(201, endpoint);
    }
    if (parts.length === 2 && id && method === 'GET') return json(200, registry.get(id));
    if (parts.length === 2 && id && method === 'PATCH') {
      const body = parseBody(patchBody, await readJsonBody(req));
      registry.get(id); // 404 before anything changes
      return json(200, registry.update(id, { ...(body.weight !== undefined && { weight: body.weight }), ...(body.state && { state: body.state }) }));
    }
    if (parts.length === 2 && id && method === 'DELETE') {
      return json(202, drain.drain(id, { remove: true }));
    }
    if (parts.length === 3 && id && parts[2] === 'drain' && method === 'POST') {
      const body = parseBody(drainBody, await readJsonBody(req));
      return json(202, drain.drain(id, { deadlineMs: body.deadlineMs }));
    }
    throw new HttpError(405, 'GW_ERR_METHOD', `${method} ${url.pathname} is not supported`);
  }

  // Every exception of a route, thrown or rejected, ends here as an answer (route is async): none
  // reaches the process, which also runs the registry, health checks and the front.
  // requestTimeout is enforced by a sweep every connectionsCheckingInterval (default 30 s).
  const server = http.createServer({ connectionsCheckingInterval: 1_000 }, (req, res) => {
    route(req, res).catch((err: unknown) => {
      const status =
        err instanceof HttpError
          ? err.status
          : err instanceof EndpointNotFoundError
            ? 404
            : err instanceof EndpointConflictError || err instanceof HaproxyConfigRejectedError
              ? 409
              : 500;
      if (status === 500) log.error({ err }, 'admin API error');
      const code = err instanceof GatewayError ? err.code : 'GW_ERR_INTERNAL';
      if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code, message: (err as Error).message } }) + '\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  const url = `http://${host}:${actual}`;
  // The origins a browser shows for this server's own pages.
  ownOrigins = new Set([url, `http://127.0.0.1:${actual}`, `http://localhost:${actual}`, `http://[::1]:${actual}`].map((o) => o.toLowerCase()));
  // A client that promises a body and never sends it must not hold a connection (and its buffers).
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  log.info({ url }, 'admin API listening');
  return {
    port: actual,
    url,
    server,
    publish,
    close: async () => {
      registry.off('change', onChange);
      for (const off of restartListeners) off();
      for (const res of subscribers) res.end();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
