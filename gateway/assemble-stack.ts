import type { GatewayConfig } from '../lib/config.js';
import type { BackendProcess } from './backend-process.js';
import type { ControlPlane } from './control-plane.js';
import type { HotRestartEngine } from './hot-restart.js';
import type { EndpointRegistry } from './registry.js';
import type { Front, Stack } from './stack.js';

// The part of a Stack both fronts fill the same way (a module of its own, so the front-specific
// stacks need nothing at run time from stack.ts, which starts them).

/** What every stack returns alike, from the parts each front's start-up made. */
export function assembleStack(parts: {
  config: GatewayConfig;
  front: Front;
  caFile: string | undefined;
  registry: EndpointRegistry;
  plane: ControlPlane;
  hotRestart: HotRestartEngine;
  backends: BackendProcess[];
  redisUrl: string | undefined;
  stop(): Promise<void>;
}): Omit<Stack, 'haproxy' | 'haproxyDriver' | 'envoy'> {
  const { plane, front } = parts;
  return {
    config: parts.config,
    front,
    frontUrl: front.url,
    frontTlsUrl: front.tlsUrl,
    caFile: parts.caFile,
    adminUrl: plane.admin.url,
    registry: parts.registry,
    health: plane.health,
    drain: plane.drain,
    hotRestart: parts.hotRestart,
    xds: plane.xds,
    admin: plane.admin,
    adminFetch: plane.adminFetch,
    backends: parts.backends,
    redisUrl: parts.redisUrl,
    stop: parts.stop,
  };
}
