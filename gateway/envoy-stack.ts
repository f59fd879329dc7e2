import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { GatewayConfig } from '../lib/config.js';
import { logger } from '../lib/log.js';
import { dialHost } from '../lib/loopback.js';
import type { FrontCounts } from './admin-api.js';
import { startConfiguredBackends, type BackendProcess } from './backend-process.js';
import { openRegistry, startControlPlane, startRoomBus, Teardown, type ControlPlane, type StackOptions } from './control-plane.js';
import { RemoteRestarter } from './envoy-restarter-control.js';
import { EnvoyHotRestart, EnvoyRestarter, workerThreadsReadiness } from './envoy-restarter.js';
import { requireEnvoy } from './envoy/binary.js';
import { renderAdsEnvoyConfig } from './envoy/local.js';
import { readEnvoyFrontCounts, readEnvoyVersion } from './envoy/stats.js';
import type { EndpointRegistry } from './registry.js';
import { assertPortFree, canConnect, waitFor } from './supervisor.js';

// `npm start -- --front envoy`: the gateway with Envoy in front instead of HAProxy. The control plane
// is the same (registry, health, drain, admin API, dashboard); Envoy follows the registry over xDS
// (envoy/envoy.yaml, ADS) and hot restarts go through the Envoy restarter:
//   - local: an `envoy` binary on PATH, run by an EnvoyRestarter in this process (epochs, SIGHUP);
//   - remote (--envoy-restarter-url): the restarter is another process, e.g. the Envoy container of
//     docker compose, reached over its loopback control API; the backends are containers too
//     (--manage-backends false).

export interface EnvoyStack {
  config: GatewayConfig;
  frontUrl: string;
  envoyAdminUrl: string;
  adminUrl: string;
  registry: EndpointRegistry;
  plane: ControlPlane;
  hotRestart: EnvoyHotRestart;
  /** The in-process restarter (local mode only). */
  restarter: EnvoyRestarter | undefined;
  /** Backend processes this gateway started (none with manageBackends=false). */
  backends: BackendProcess[];
  redisUrl: string | undefined;
  stop(): Promise<void>;
}

export async function startEnvoyStack(
  config: GatewayConfig,
  options: StackOptions = {},
): Promise<EnvoyStack> {
  const log = options.log ?? logger('gateway');
  // Fail before anything starts when there is neither a remote restarter nor a local binary.
  const envoyBin = config.envoyRestarterUrl ? undefined : requireEnvoy();
  // Undone in reverse: control plane first, then the backends (their 1001 closes reach clients
  // through Envoy), Envoy last.
  const teardown = new Teardown();
  const stop = () => teardown.run();

  try {
    await assertPortFree(config.host, config.adminPort, 'admin API');
    const registry = openRegistry(config);
    const envoyAdminUrl = `http://${dialHost(config.host)}:${config.envoyAdminPort}`;

    let restarter: EnvoyRestarter | undefined;
    if (envoyBin) {
      const dir = path.join(path.resolve(config.stateDir), 'envoy');
      mkdirSync(dir, { recursive: true });
      const file = renderAdsEnvoyConfig(
        { adminHost: config.host, adminPort: config.envoyAdminPort, xdsHost: dialHost(config.host), xdsPort: config.xdsPort },
        dir,
      );
      restarter = new EnvoyRestarter({
        envoyBin,
        // Envoy's info lines (every extension it links, every xDS update) would drown the gateway's own.
        args: ['-c', file, '--log-level', 'warn'],
        // One base id per admin port, so two local stacks (tests) keep their shared memory apart.
        baseId: config.envoyAdminPort,
        drainTimeS: 20,
        parentShutdownTimeS: config.hardStopAfterS,
        isReady: workerThreadsReadiness(),
        log: logger('envoy-restarter'),
      });
      teardown.add(() => restarter!.stop());
    }

    const backends: BackendProcess[] = [];
    let redisUrl = config.redisUrl;
    if (config.manageBackends) {
      const bus = await startRoomBus(config, log);
      teardown.add(() => bus.stop());
      redisUrl = bus.redisUrl;
      backends.push(...(await startConfiguredBackends(config, log, options.childOutput ?? 'inherit', redisUrl, teardown)));
    }

    const hotRestart = new EnvoyHotRestart(restarter ?? new RemoteRestarter(config.envoyRestarterUrl!), { adminUrl: envoyAdminUrl });
    let version: string | undefined;
    const front = async (): Promise<FrontCounts> => {
      version ??= await readEnvoyVersion(envoyAdminUrl).catch(() => undefined);
      return { ...(await readEnvoyFrontCounts(envoyAdminUrl)), version: version ?? 'unknown' };
    };
    const plane = await startControlPlane(config, registry, {
      hotRestart,
      front,
      extraRoutes: options.extraRoutes,
      xdsFront: { address: config.host, port: config.frontPort },
      backends,
    });
    teardown.add(() => plane.stop());

    // Envoy waits for its first listener and cluster from the xDS server before it is LIVE, so the
    // server must be up first.
    if (restarter) {
      await restarter.start();
      // LIVE on the admin port comes a moment before the workers accept on the xDS listener.
      await waitFor('Envoy front listener', () => canConnect(dialHost(config.host), config.frontPort), 20_000);
    }
    // Envoy never routes to an endpoint the registry holds down (no panic mode), and a state dir
    // from an earlier run may hold every endpoint down until the health checks see it again.
    if (registry.list().length > 0) {
      await waitFor('a healthy backend', async () => registry.list().some((e) => e.state === 'active'), config.healthIntervalMs * (config.healthRise + 2) + 5_000);
    }

    return {
      config,
      frontUrl: `http://${dialHost(config.host)}:${config.frontPort}`,
      envoyAdminUrl,
      adminUrl: plane.admin.url,
      registry,
      plane,
      hotRestart,
      restarter,
      backends,
      redisUrl,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
