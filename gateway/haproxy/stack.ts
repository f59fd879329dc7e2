import { upstreamProtocolFor, type GatewayConfig } from '../../lib/config.js';
import { logger } from '../../lib/log.js';
import { dialHost } from '../../lib/loopback.js';
import { startConfiguredBackends, type BackendProcess } from '../core/backend-process.js';
import { openRegistry, startControlPlane, startRoomBus } from '../core/control-plane.js';
import { Teardown } from '../core/teardown.js';
import { type StackOptions } from '../core/stack.js';
import { HaproxyDriver } from './runtime-api.js';
import { haproxyEndpoints, HaproxyFront } from './front.js';
import { sampledAroundRestarts, totalsAcrossRestarts } from '../core/running-totals.js';
import { HaproxyHotRestart } from './reload.js';
import { assembleStack, UPSTREAM_LABEL } from '../core/stack.js';
import type { Front, Stack } from '../core/stack.js';
import { assertPortFree } from '../../lib/ports.js';
import { ensureCertificate } from '../core/tls.js';

// The stack with HAProxy in front (`--front haproxy`): N backend processes, HAProxy in master-worker
// mode in front of them, and the control plane driving HAProxy over its runtime API.

export async function startHaproxyStack(config: GatewayConfig, options: StackOptions = {}): Promise<Stack> {
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

    const haproxy = new HaproxyFront({ ...config, upstreamProtocol: upstreamProtocolFor(config) }, registry.list(), logger('haproxy'));
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
    const counts = totalsAcrossRestarts(async () => ({ engine: 'haproxy' as const, version: haproxy.version, ...(await haproxy.frontCounts()) }));
    const hotRestart = sampledAroundRestarts(new HaproxyHotRestart(haproxy, driver), counts);
    const front: Front = {
      engine: 'haproxy',
      label: `HAProxy ${haproxy.version}, ${UPSTREAM_LABEL[haproxy.settings.upstreamProtocol]}`,
      url: haproxy.frontUrl,
      tlsUrl: haproxy.frontTlsUrl,
      statsUrl: `http://${dialHost(config.host)}:${config.haproxyStatsPort}/`,
      counts,
      settled: () => driver.settled(),
      endpoints: async () => haproxyEndpoints(await haproxy.stats()),
      stop: () => driver.stopFront(),
      start: () => driver.startFront(),
    };
    // The xDS server runs here too: an Envoy front (docker compose, or an `envoy` binary with
    // envoy/envoy.yaml) can follow the same registry alongside HAProxy.
    const plane = await startControlPlane(config, registry, { hotRestart, front: front.counts, extraRoutes: options.extraRoutes, backends });
    teardown.add(() => plane.stop());

    return {
      ...assembleStack({ config, front, caFile: certificate?.selfSigned ? certificate.cert : undefined, registry, plane, hotRestart, backends, redisUrl, stop }),
      haproxy,
      haproxyDriver: driver,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
