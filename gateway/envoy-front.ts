import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../lib/config.js';
import { logger } from '../lib/log.js';
import { adminReadiness, EnvoyRestarter } from './envoy-restarter.js';
import { renderStaticEnvoyConfig, requireEnvoy } from './envoy/local.js';
import { backendId, startBackendProcess, type BackendProcess } from './stack.js';

// `npm start -- --front envoy`: the backends with a local Envoy in front instead of HAProxy, from
// envoy/envoy-static.yaml with this run's ports, under the hot-restart orchestrator (SIGHUP → new
// epoch). Needs an `envoy` binary; without one it says how to use docker compose instead.
// The dynamic-endpoint control plane drives Envoy over xDS (envoy/envoy.yaml); this local mode
// keeps the static config so it runs with nothing else.

export interface EnvoyFrontStack {
  frontUrl: string;
  adminUrl: string;
  backends: BackendProcess[];
  restarter: EnvoyRestarter;
  stop(): Promise<void>;
}

export async function startEnvoyFrontStack(config: GatewayConfig, log: Logger = logger('gateway')): Promise<EnvoyFrontStack> {
  const bin = requireEnvoy();
  const backends = await Promise.all(config.backendPorts.map((port, i) => startBackendProcess(config, backendId(i), port, log, 'inherit')));
  const dir = path.join(path.resolve(config.stateDir), 'envoy');
  mkdirSync(dir, { recursive: true });
  const file = renderStaticEnvoyConfig({ host: config.host, frontPort: config.frontPort, adminPort: config.envoyAdminPort, backends }, dir);
  const adminUrl = `http://${config.host}:${config.envoyAdminPort}`;
  const restarter = new EnvoyRestarter({
    envoyBin: bin,
    args: ['-c', file],
    baseId: config.envoyAdminPort,
    drainTimeS: 20,
    parentShutdownTimeS: config.hardStopAfterS,
    isReady: adminReadiness(adminUrl),
    log: logger('envoy-restarter'),
  });
  try {
    await restarter.start();
  } catch (err) {
    await Promise.all(backends.map((b) => b.process.stop(5_000)));
    throw err;
  }
  return {
    frontUrl: `http://${config.host}:${config.frontPort}`,
    adminUrl,
    backends,
    restarter,
    stop: async () => {
      await restarter.stop();
      await Promise.all(backends.map((b) => b.process.stop(config.drainTimeoutMs + 2_000)));
    },
  };
}
