import path from 'node:path';
import type { Logger } from 'pino';
import { upstreamProtocolFor, type GatewayConfig } from '../../lib/config.js';
import { MissingToolError } from '../../lib/errors.js';
import { dialHost } from '../../lib/loopback.js';
import { adminTokenFile, ensureAdminToken } from '../admin/token.js';
import { startAdminApi, type AdminDeps, type AdminServer } from '../admin/api.js';
import { backendId, type BackendProcess } from './backend-process.js';
import { DrainController } from './drain.js';
import { createEndpointPolicy } from './endpoint-policy.js';
import { HealthChecker } from './health.js';
import type { HotRestartEngine } from './hot-restart.js';
import { startLocalRedis } from './redis.js';
import { EndpointRegistry } from './registry.js';
import { Teardown } from './teardown.js';
import { assertPortFree } from '../../lib/ports.js';
import { startXdsServer, type XdsServer } from '../envoy/xds/index.js';
import type { FrontOptions } from '../envoy/xds/resources.js';

// The front-independent half of the gateway, the same whichever proxy runs in front: the endpoint
// registry, health checks, drain, the xDS server (Envoy follows the registry through it), and the
// admin API. The HAProxy stack (stack.ts) and the Envoy stack (envoy-stack.ts) each add their front.

/** The registry, seeded with the configured backend ports (kept across restarts in the state file). */
export function openRegistry(config: GatewayConfig): EndpointRegistry {
  return new EndpointRegistry({
    stateFile: path.join(path.resolve(config.stateDir), 'registry.json'),
    // A gateway listening on 0.0.0.0 still reaches its backends on loopback.
    seed: config.backendPorts.map((port, i) => ({ id: backendId(i), host: dialHost(config.host), port })),
  });
}

/**
 * The Redis URL the backends share for rooms: the configured one, else a local redis-server this
 * gateway starts (stopped by `stop`), else none (rooms then stay per backend; said in the log).
 * Either may carry a password: it goes to the backends through their environment, never argv.
 */
export async function startRoomBus(config: GatewayConfig, log: Logger): Promise<{ redisUrl: string | undefined; stop(): Promise<void> }> {
  if (config.roomBus !== 'redis') return { redisUrl: undefined, stop: async () => {} };
  if (config.redisUrl) return { redisUrl: config.redisUrl, stop: async () => {} };
  try {
    const redis = await startLocalRedis({ host: dialHost(config.host), port: config.redisPort, dir: path.join(config.stateDir, 'redis') });
    return { redisUrl: redis.url, stop: () => redis.stop() };
  } catch (err) {
    if (!(err instanceof MissingToolError)) throw err;
    log.warn(`${err.message}. Rooms will NOT span backends until then (each backend keeps its own).`);
    return { redisUrl: undefined, stop: async () => {} };
  }
}

export interface ControlPlane {
  health: HealthChecker;
  drain: DrainController;
  xds: XdsServer;
  admin: AdminServer;
  /** The admin API with the admin token attached. */
  adminFetch(path: string, init?: RequestInit): Promise<Response>;
  stop(): Promise<void>;
}

export interface ControlPlaneOptions {
  hotRestart: HotRestartEngine;
  front: AdminDeps['front'];
  extraRoutes?: AdminDeps['extraRoutes'];
  /** Where the xDS server tells an Envoy front to listen (balancing and upstream protocol come from the config). */
  xdsFront?: Pick<FrontOptions, 'address' | 'port'>;
  /** Backend processes the stack started: their restarts are published on the admin API's events. */
  backends?: readonly BackendProcess[];
}

export async function startControlPlane(config: GatewayConfig, registry: EndpointRegistry, options: ControlPlaneOptions): Promise<ControlPlane> {
  const teardown = new Teardown();
  const stop = () => teardown.run();
  try {
    await assertPortFree(config.host, config.adminPort, 'admin API');
    const health = new HealthChecker(registry, {
      intervalMs: config.healthIntervalMs,
      timeoutMs: config.healthTimeoutMs,
      fall: config.healthFall,
      rise: config.healthRise,
    });
    health.start();
    teardown.add(() => health.stop());
    const drain = new DrainController(registry, health, { deadlineMs: config.drainDeadlineMs, pollMs: 250, closeGraceMs: 5_000 });
    drain.resume();
    teardown.add(() => drain.stop());
    const xds = await startXdsServer({
      registry,
      host: config.host,
      port: config.xdsPort,
      // The same balancing and upstream protocol as HAProxy is given, so either front behaves alike.
      front: { maxConcurrentStreams: config.h2MaxConcurrentStreams, balance: config.balance, upstreamProtocol: upstreamProtocolFor(config), ...options.xdsFront },
    });
    teardown.add(() => xds.close());
    const token = ensureAdminToken(config.stateDir, config.adminToken);
    const endpointPolicy = createEndpointPolicy({
      cidrs: config.endpointCidrs,
      reservedPorts: [
        { port: config.adminPort, what: 'admin API' },
        { port: config.xdsPort, what: 'xDS server' },
        { port: config.frontPort, what: 'front' },
        { port: config.frontTlsPort, what: 'TLS front' },
        { port: config.envoyAdminPort, what: 'Envoy admin' },
        { port: config.envoyRestarterPort, what: 'Envoy restarter control API' },
        { port: config.haproxyStatsPort, what: 'HAProxy stats' },
        { port: config.redisPort, what: 'Redis' },
      ].filter((r) => r.port > 0),
    });
    const admin = await startAdminApi(
      { token, tokenFrom: config.adminToken ? 'ADMIN_TOKEN' : adminTokenFile(config.stateDir), registry, drain, health, endpointPolicy, hotRestart: options.hotRestart, xds, front: options.front, extraRoutes: options.extraRoutes, backends: options.backends },
      config.host,
      config.adminPort,
    );
    teardown.add(() => admin.close());
    return {
      health,
      drain,
      xds,
      admin,
      adminFetch: (p, init = {}) =>
        fetch(`${admin.url}${p}`, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` } }),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
