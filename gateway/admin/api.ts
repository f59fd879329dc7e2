import fastifySseModule, { type SSEReplyInterface } from '@fastify/sse';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyPluginAsync } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { z } from 'zod';
import { GatewayError } from '../../lib/errors.js';
import { logger } from '../../lib/log.js';
import type { BackendProcess } from '../core/backend-process.js';
import type { DrainController } from '../core/drain.js';
import type { EndpointPolicy } from '../core/endpoint-policy.js';
import type { HealthChecker } from '../core/health.js';
import type { HotRestartEngine } from '../core/hot-restart.js';
import { addressSchema, endpointIdSchema, parseAddress, weightSchema, type EndpointRegistry, type RegistryEvent } from '../core/registry.js';
import type { RestartEvent } from '../core/supervisor.js';
import type { XdsServer } from '../envoy/xds/index.js';
import { guardAdminAccess } from './access.js';
import { createAdminHttpServer, HttpError, type AdminHttpServer } from './http-server.js';

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
// Bad input → 400 naming the field; unknown id → 404; known path, other method → 405; conflicts → 409.
// Every route but GET /healthz needs the admin token (access.ts); bodies are JSON (http-server.ts).

const HISTORY_LENGTH = 100;

// @fastify/sse is CommonJS: its module.exports is the plugin wrapped in fastify-plugin, so routes of
// the whole server get `reply.sse`; its `default` export is the bare function, which would only see
// routes inside its own encapsulated context. The default import here is module.exports.
const fastifySse = fastifySseModule as unknown as FastifyPluginAsync;

export interface AdminDeps {
  /** Required on every request (see above). */
  token: string;
  /** Where a user finds it, for the 401 text and the login page: this stack's token file, or ADMIN_TOKEN. */
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
  /** More routes (the web page and dashboard), registered behind the same token and error handling. */
  extraRoutes?: AdminRoutes;
  log?: Logger;
}

/** A fastify plugin with more routes for the admin server. */
export type AdminRoutes = FastifyPluginAsyncZod;

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
const idParams = z.strictObject({ id: endpointIdSchema });

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
  const app = createAdminHttpServer(log);
  const subscribers = new Set<SSEReplyInterface>();

  // The last events, replayed to every new /events subscriber, so a dashboard opened (or reloaded)
  // after a drain or a hot restart still shows it. Ids let a reconnecting page skip what it has.
  const history: Array<{ id: number; type: string; at: number; data: unknown }> = [];
  let lastId = 0;
  const publish = (event: string, data: unknown) => {
    const id = ++lastId;
    history.push({ id, type: event, at: Date.now(), data });
    if (history.length > HISTORY_LENGTH) history.shift();
    for (const subscriber of subscribers) subscriber.send({ id: String(id), event, data }).catch(() => subscribers.delete(subscriber));
  };
  const onChange = (e: RegistryEvent) => publish('endpoint', e);
  registry.on('change', onChange);
  const onDrained = (r: unknown) => publish('drained', r);
  drain.on('drained', onDrained);
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

  const view = () => ({
    version: registry.version,
    endpoints: registry.list().map((e) => ({ ...e, address: `${e.host}:${e.port}`, health: health.status(e.id) ?? null })),
  });

  let ownOrigins = new Set<string>();
  guardAdminAccess(app, { token: deps.token, tokenFrom: deps.tokenFrom, openPaths: new Set(['/healthz', '/assets/app.css']), ownOrigins: () => ownOrigins });
  const methodsFor = trackRouteMethods(app);
  await app.register(fastifySse);

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/events', { sse: 'only' }, async (_request, reply) => {
    const subscriber = reply.sse;
    subscriber.keepAlive();
    await subscriber.send({ event: 'snapshot', data: view() });
    await subscriber.send({ event: 'history', data: history });
    subscribers.add(subscriber);
    subscriber.onClose(() => subscribers.delete(subscriber));
  });
  app.get('/rooms', async () => roomPresence());
  const { xds, front, hotRestart } = deps;
  if (xds) app.get('/xds', async () => xds.versions());
  if (front) app.get('/front', async () => front());
  if (hotRestart) {
    app.get('/hot-restart', async () => ({ engine: hotRestart.engine, generations: await hotRestart.generations() }));
    app.post('/hot-restart', async () => {
      const result = await hotRestart.restart().catch((err: unknown) => {
        // A refused restart (config rejected, restarter stopping) leaves the running generation
        // serving: a conflict with the current state, not a server fault. Unreachable → 502.
        if (!(err instanceof GatewayError) || err instanceof HttpError) throw err;
        throw new HttpError(err.code === 'GW_ERR_RESTARTER_UNREACHABLE' ? 502 : 409, err.code, err.message);
      });
      publish('hot-restart', result);
      return result;
    });
  }

  app.get('/endpoints', async () => view());
  app.post('/endpoints', { schema: { body: addBody } }, async (request, reply) => {
    const address = parseAddress(request.body.address);
    await deps.endpointPolicy?.(address.host, address.port);
    return reply.code(201).send(registry.add({ id: request.body.id, ...address, weight: request.body.weight }));
  });
  app.get('/endpoints/:id', { schema: { params: idParams } }, async (request) => registry.get(request.params.id));
  app.patch('/endpoints/:id', { schema: { params: idParams, body: patchBody } }, async (request) => {
    const { id } = request.params;
    const { weight, state } = request.body;
    registry.get(id); // 404 before anything changes
    return registry.update(id, { ...(weight !== undefined && { weight }), ...(state && { state }) });
  });
  app.delete('/endpoints/:id', { schema: { params: idParams } }, async (request, reply) => reply.code(202).send(drain.drain(request.params.id, { remove: true })));
  app.post('/endpoints/:id/drain', { schema: { params: idParams, body: drainBody } }, async (request, reply) =>
    reply.code(202).send(drain.drain(request.params.id, { deadlineMs: request.body.deadlineMs })),
  );

  if (deps.extraRoutes) await app.register(deps.extraRoutes);
  app.setNotFoundHandler(async (request, reply) => {
    const { pathname } = request.target;
    const methods = methodsFor(pathname);
    if (methods.length > 0 && !methods.includes(request.method)) {
      reply.header('allow', methods.join(', '));
      throw new HttpError(405, 'GW_ERR_METHOD', `${request.method} ${pathname} is not supported`);
    }
    throw new HttpError(404, 'GW_ERR_NOT_FOUND', `no route ${request.method} ${pathname}`);
  });

  await app.listen({ port, host });
  const actual = (app.server.address() as AddressInfo).port;
  const url = `http://${host}:${actual}`;
  // The origins a browser shows for this server's own pages.
  ownOrigins = new Set([url, `http://127.0.0.1:${actual}`, `http://localhost:${actual}`, `http://[::1]:${actual}`].map((o) => o.toLowerCase()));
  log.info({ url }, 'admin API listening');
  return {
    port: actual,
    url,
    server: app.server,
    publish,
    close: async () => {
      registry.off('change', onChange);
      drain.off('drained', onDrained);
      for (const off of restartListeners) off();
      for (const subscriber of subscribers) subscriber.close();
      await app.close();
    },
  };
}

/** Which methods the server answers on a path (its routes' patterns), so a wrong method is a 405, not a 404. */
function trackRouteMethods(app: AdminHttpServer): (path: string) => string[] {
  const routes: Array<{ pattern: RegExp; methods: string[] }> = [];
  app.addHook('onRoute', (route) => {
    const source = route.url.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/:[^/]+/g, '[^/]+').replace(/\*/g, '.*');
    routes.push({ pattern: new RegExp(`^${source}$`), methods: [route.method].flat() });
  });
  return (path) => [...new Set(routes.filter((r) => r.pattern.test(path)).flatMap((r) => r.methods))];
}
