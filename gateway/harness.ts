import type { Logger } from 'pino';
import type { GatewayConfig } from '../lib/config.js';
import { startConfiguredBackends, type BackendProcess } from './core/backend-process.js';
import { startRoomBus } from './core/control-plane.js';
import { Teardown } from './core/teardown.js';

// What bench/, scripts/ and tests start, in one place: the whole stack (startStack), backends on
// their own (with their room bus), or an extra front beside a stack (a HAProxy with other settings,
// a StandaloneEnvoy with its own xDS server). Code outside gateway/ imports the gateway from here,
// so the gateway's folders can change without touching the bench.

export { startStack } from './stack.js';
export type { Front, FrontEndpoint, Stack, StackOptions } from './core/stack.js';
export type { BackendProcess } from './core/backend-process.js';
export type { Generation, HotRestartEngine, RestartResult } from './core/hot-restart.js';
export { HaproxyFront } from './haproxy/front.js';
export { StandaloneEnvoy, type StandaloneEnvoyOptions } from './envoy/standalone.js';
export { ENVOY_VERSION, findEnvoyBinary } from './envoy/binary.js';
export { startBackendProcess } from './core/backend-process.js';
export { readAdminToken } from './admin/token.js';
export { findAdmin } from './core/stack-file.js';

export interface BackendsOnly {
  backends: BackendProcess[];
  /** The room bus they share (Redis), if any. */
  redisUrl: string | undefined;
  stop(): Promise<void>;
}

/** The configured backends and their room bus, without a front or a control plane. */
export async function startBackendsOnly(config: GatewayConfig, log: Logger): Promise<BackendsOnly> {
  const teardown = new Teardown();
  try {
    const bus = await startRoomBus(config, log);
    teardown.add(() => bus.stop());
    const backends = await startConfiguredBackends(config, log, 'lines', bus.redisUrl, teardown);
    return { backends, redisUrl: bus.redisUrl, stop: () => teardown.run() };
  } catch (err) {
    await teardown.run();
    throw err;
  }
}
