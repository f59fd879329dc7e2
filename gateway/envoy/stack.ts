import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { upstreamProtocolFor, type GatewayConfig } from '../../lib/config.js';
import { logger } from '../../lib/log.js';
import { dialHost } from '../../lib/loopback.js';
import { startConfiguredBackends, type BackendProcess } from '../core/backend-process.js';
import { openRegistry, startControlPlane, startRoomBus } from '../core/control-plane.js';
import { Teardown } from '../core/teardown.js';
import { type StackOptions } from '../core/stack.js';
import { RemoteRestarter } from './restarter-control.js';
import { EnvoyHotRestart } from './restarter.js';
import { localRestarterUrl, startLocalRestarter, type LocalRestarter } from './local-restarter.js';
import { requireEnvoy } from './binary.js';
import { renderAdsEnvoyConfig } from './local.js';
import { sampledAroundRestarts, totalsAcrossRestarts } from '../core/running-totals.js';
import { readEnvoyClusterHosts, readEnvoyFrontCounts, readEnvoyVersion } from './stats.js';
import { GatewayError } from '../../lib/errors.js';
import { assembleStack, UPSTREAM_LABEL } from '../core/stack.js';
import type { Front, Stack } from '../core/stack.js';
import { assertPortFree, canConnect, waitFor } from '../../lib/ports.js';
import { ensureCertificate } from '../core/tls.js';

// The stack with Envoy in front (the default front). The control plane is the same as with HAProxy
// (registry, health, drain, admin API, dashboard); Envoy follows the registry over xDS
// (envoy/envoy.yaml, ADS) and hot restarts go through the Envoy restarter:
//   - local: the Envoy binary scripts/install-deps installed (gateway/envoy/binary.ts), run by the
//     restarter in a process of its own that outlives this one (gateway/envoy/local-restarter.ts);
//   - remote (--envoy-restarter-url): the restarter is another process, e.g. the Envoy container of
//     docker compose, reached over its loopback control API; the backends are containers too
//     (--manage-backends false).

/** Stopping or starting Envoy itself is for whoever runs its restarter; here that is another container. */
class EnvoyRemoteError extends GatewayError {
  constructor(what: string, restarterUrl: string) {
    super('GW_ERR_ENVOY_REMOTE', `${what}: this Envoy runs under a remote restarter (${restarterUrl}); stop and start it where it runs (docker compose)`);
  }
}

export async function startEnvoyStack(config: GatewayConfig, options: StackOptions = {}): Promise<Stack> {
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
    // TLS needs PEM files Envoy can read: on this machine (local mode), not in another container.
    const certificate =
      envoyBin && config.frontTlsPort
        ? await ensureCertificate(config.stateDir, { cert: config.tlsCert, key: config.tlsKey }, [config.host, 'localhost'])
        : undefined;

    let bootstrap: string | undefined;
    if (envoyBin) {
      const dir = path.join(path.resolve(config.stateDir), 'envoy');
      mkdirSync(dir, { recursive: true });
      bootstrap = renderAdsEnvoyConfig(
        { adminHost: config.host, adminPort: config.envoyAdminPort, xdsHost: dialHost(config.host), xdsPort: config.xdsPort },
        dir,
      );
    }
    const backends: BackendProcess[] = [];
    let redisUrl = config.redisUrl;
    if (config.manageBackends) {
      const bus = await startRoomBus(config, log);
      teardown.add(() => bus.stop());
      redisUrl = bus.redisUrl;
      backends.push(...(await startConfiguredBackends(config, log, options.childOutput ?? 'inherit', redisUrl, teardown)));
    }

    // Local: the restarter process this gateway starts (or finds running); remote: compose's Envoy container.
    const restarterUrl = config.envoyRestarterUrl ?? localRestarterUrl(config);
    let version: string | undefined;
    const host = dialHost(config.host);
    const counts = totalsAcrossRestarts(async () => {
      version ??= await readEnvoyVersion(envoyAdminUrl).catch(() => undefined);
      return { ...(await readEnvoyFrontCounts(envoyAdminUrl)), version: version ?? 'unknown' };
    });
    const hotRestart = sampledAroundRestarts(new EnvoyHotRestart(new RemoteRestarter(restarterUrl), { adminUrl: envoyAdminUrl }), counts);
    const plane = await startControlPlane(config, registry, {
      hotRestart,
      front: counts,
      extraRoutes: options.extraRoutes,
      backends,
      xdsFront: {
        address: config.host,
        port: config.frontPort,
        ...(certificate && { tls: { listenerName: 'front_tls', port: config.frontTlsPort, certFile: path.resolve(certificate.cert), keyFile: path.resolve(certificate.key) } }),
      },
    });
    teardown.add(() => plane.stop());

    // Envoy waits for its first listener and cluster from the xDS server before it is LIVE, so the
    // server must be up first. Stopped last (Teardown runs in reverse): the backends' 1001 closes
    // travel through it.
    let local: LocalRestarter | undefined;
    const startLocal = async () => {
      local = await startLocalRestarter(config, envoyBin!, bootstrap!, log);
      // Ready (workers running) comes a moment before the workers accept on the xDS listener.
      await waitFor('Envoy front listener', () => canConnect(host, config.frontPort), 20_000);
    };
    if (envoyBin && bootstrap) {
      teardown.addFirst(() => local?.stop());
      await startLocal();
    }
    const localOnly = (what: string) => {
      if (!envoyBin) throw new EnvoyRemoteError(what, restarterUrl);
    };
    // Envoy never routes to an endpoint the registry holds down (no panic mode), and a state dir
    // from an earlier run may hold every endpoint down until the health checks see it again.
    if (registry.list().length > 0) {
      await waitFor('a healthy backend', async () => registry.list().some((e) => e.state === 'active'), config.healthIntervalMs * (config.healthRise + 2) + 5_000);
    }

    version = await readEnvoyVersion(envoyAdminUrl).catch(() => undefined);
    const front: Front = {
      engine: 'envoy',
      label: `Envoy ${version ?? '(version unknown: admin not reachable)'}, ${UPSTREAM_LABEL[upstreamProtocolFor(config)]}`,
      url: `http://${host}:${config.frontPort}`,
      tlsUrl: certificate ? `https://${host}:${config.frontTlsPort}` : undefined,
      statsUrl: `${envoyAdminUrl}/`,
      counts,
      settled: () => plane.xds.settled(),
      endpoints: () => readEnvoyClusterHosts(envoyAdminUrl),
      // The restarter and every epoch with it; a new restarter starts epoch 0, which fetches
      // everything over xDS again.
      stop: async () => {
        localOnly('stop the front');
        await local?.stop();
      },
      start: async () => {
        localOnly('start the front');
        await startLocal();
      },
    };
    return {
      ...assembleStack({ config, front, caFile: certificate?.selfSigned ? certificate.cert : undefined, registry, plane, hotRestart, backends, redisUrl, stop }),
      // Getters: front.stop()/start() replace the local restarter.
      envoy: {
        adminUrl: envoyAdminUrl,
        restarterUrl,
        get restarterPid() {
          return local?.pid;
        },
        get logFile() {
          return local?.logFile;
        },
        get attached() {
          return local?.attached ?? false;
        },
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
