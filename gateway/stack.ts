import type { GatewayConfig } from '../lib/config.js';
import { logger } from '../lib/log.js';
import type { AdminServer } from './admin-api.js';
import { startConfiguredBackends, type BackendProcess } from './backend-process.js';
import { openRegistry, startControlPlane, startRoomBus, Teardown, type StackOptions } from './control-plane.js';
import type { DrainController } from './drain.js';
import { HaproxyDriver } from './haproxy-driver.js';
import { ensureCertificate } from './tls.js';
import type { XdsServer } from './xds/index.js';
import { HaproxyFront } from './haproxy.js';
import type { HealthChecker } from './health.js';
import { HaproxyHotRestart, type HotRestartEngine } from './hot-restart.js';
import type { EndpointRegistry } from './registry.js';
import { assertPortFree } from './supervisor.js';

// The local stack `npm start` runs: N backend processes, HAProxy in front of them, and the control
// plane (endpoint registry, health checks, drain, admin API) that drives HAProxy.

export interface Stack {
  config: GatewayConfig;
  frontUrl: string;
  /** https:// front (ALPN h2, http/1.1), when TLS is on. */
  frontTlsUrl: string | undefined;
  /** PEM to trust for a self-signed front certificate. */
  caFile: string | undefined;
  statsUrl: string;
  adminUrl: string;
  haproxy: HaproxyFront;
  registry: EndpointRegistry;
  driver: HaproxyDriver;
  health: HealthChecker;
  drain: DrainController;
  hotRestart: HotRestartEngine;
  xds: XdsServer;
  admin: AdminServer;
  /** The admin API with the admin token attached. */
  adminFetch(path: string, init?: RequestInit): Promise<Response>;
  /** Backend processes this stack started (endpoints added later may run elsewhere). */
  backends: BackendProcess[];
  /** The room bus the backends share, if any. */
  redisUrl: string | undefined;
  stop(): Promise<void>;
}

export async function startStack(
  config: GatewayConfig,
  options: StackOptions = {},
): Promise<Stack> {
  const log = options.log ?? logger('gateway');
  const output = options.childOutput ?? 'inherit';
  const backends: BackendProcess[] = [];
  // Undone in reverse: control plane first (no more changes), then backends (they close their
  // sessions with 1001, which reaches clients through the front), HAProxy last.
  const teardown = new Teardown();
  const stop = () => teardown.run();

  try {
    await assertPortFree(config.host, config.adminPort, 'admin API');
    const registry = openRegistry(config);
    const bus = await startRoomBus(config, log);
    teardown.add(() => bus.stop());
    const redisUrl = bus.redisUrl;

    const haproxy = new HaproxyFront(config, registry.list(), logger('haproxy'));
    const certificate = config.frontTlsPort
      ? await ensureCertificate(config.stateDir, { cert: config.tlsCert, key: config.tlsKey }, [config.host, 'localhost'])
      : undefined;
    haproxy.tlsPem = certificate?.pem;
    teardown.add(() => haproxy.stop());
    backends.push(...(await startConfiguredBackends(config, log, output, redisUrl, teardown)));
    await haproxy.start();

    const driver = new HaproxyDriver(haproxy, registry);
    driver.start();
    teardown.add(() => driver.stop());
    const hotRestart = new HaproxyHotRestart(haproxy, driver);
    const front = async () => ({ engine: 'haproxy' as const, version: haproxy.version, ...(await haproxy.frontCounts()) });
    // The xDS server runs here too: an Envoy front (docker compose, or an `envoy` binary with
    // envoy/envoy.yaml) can follow the same registry alongside HAProxy.
    const plane = await startControlPlane(config, registry, { hotRestart, front, extraRoutes: options.extraRoutes, backends });
    teardown.add(() => plane.stop());

    return {
      config,
      frontUrl: haproxy.frontUrl,
      frontTlsUrl: haproxy.frontTlsUrl,
      caFile: certificate?.selfSigned ? certificate.cert : undefined,
      statsUrl: `http://${config.host}:${config.haproxyStatsPort}/`,
      adminUrl: plane.admin.url,
      haproxy,
      registry,
      driver,
      health: plane.health,
      drain: plane.drain,
      hotRestart,
      xds: plane.xds,
      admin: plane.admin,
      adminFetch: plane.adminFetch,
      backends,
      redisUrl,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
