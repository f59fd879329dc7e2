import type { Logger } from 'pino';
import type { GatewayConfig, UpstreamProtocol } from '../../lib/config.js';
import type { AdminDeps, AdminServer, FrontCounts } from '../admin/api.js';
import type { XdsServer } from '../envoy/xds/index.js';
import type { HaproxyFront } from '../haproxy/front.js';
import type { HaproxyDriver } from '../haproxy/runtime-api.js';
import type { BackendProcess } from './backend-process.js';
import type { ControlPlane } from './control-plane.js';
import type { DrainController } from './drain.js';
import type { HealthChecker } from './health.js';
import type { HotRestartEngine } from './hot-restart.js';
import type { EndpointRegistry } from './registry.js';

// The stack `npm start` runs, whichever proxy is in front (config `front`: envoy by default, or
// haproxy): N backend processes, the front, and the control plane (endpoint registry, health
// checks, drain, xDS, admin API). Callers — main, demos, bench, tests — use this one shape; what
// only one front has (HAProxy's runtime driver, Envoy's restarter) hangs off `haproxy` / `envoy`.

/** One endpoint as the proxy itself sees it now (which may lag the registry, or differ from it). */
export interface FrontEndpoint {
  /** The registry id (HAProxy server name, Envoy EDS hostname). */
  id: string;
  /** The proxy would pick it for a new stream now. */
  routable: boolean;
  weight: number;
  /** The proxy's own word: HAProxy `show stat` status (UP, DRAIN, MAINT, DOWN, ...), Envoy health flags (healthy, /eds_status_draining, /failed_eds_health, ...). */
  status: string;
}

/** How a front's label names the protocol it speaks to the backends. */
export const UPSTREAM_LABEL: Readonly<Record<UpstreamProtocol, string>> = Object.freeze({ h1: 'HTTP/1.1 upstream', h2: 'HTTP/2 upstream' });

/** The proxy in front, in terms both fronts share. */
export interface Front {
  readonly engine: 'haproxy' | 'envoy';
  /** What runs, for people: "Envoy 1.40.0, HTTP/2 upstream", "HAProxy 2.6.12, HTTP/1.1 upstream". */
  readonly label: string;
  /** http:// front: HTTP/1.1 Upgrade and h2c prior knowledge on one port. */
  readonly url: string;
  /** https:// front (ALPN h2, http/1.1), when TLS is on. */
  readonly tlsUrl: string | undefined;
  /** The proxy's own page: HAProxy's stats page, Envoy's admin. */
  readonly statsUrl: string;
  /** Client TCP connections vs WebSocket sessions, as the proxy counts them. */
  counts(): Promise<FrontCounts>;
  /** Resolves once the front routes by the registry as it is now (HAProxy: runtime API applied; Envoy: xDS ACKed). */
  settled(): Promise<void>;
  /** The backends' endpoints as the proxy sees them (HAProxy: `show stat`; Envoy: admin `/clusters`). */
  endpoints(): Promise<FrontEndpoint[]>;
  /**
   * Stop the proxy itself, every generation: its client connections drop (a crash or an operator's
   * stop, not a hot restart). The control plane and the backends keep running.
   */
  stop(): Promise<void>;
  /** Start it again after stop(), routing by the registry as it is then. */
  start(): Promise<void>;
}

export interface Stack {
  config: GatewayConfig;
  front: Front;
  /** Same as front.url / front.tlsUrl. */
  frontUrl: string;
  frontTlsUrl: string | undefined;
  /** PEM to trust for a self-signed front certificate. */
  caFile: string | undefined;
  adminUrl: string;
  registry: EndpointRegistry;
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
  /** HAProxy front only: the process and its runtime-API driver. */
  haproxy?: HaproxyFront;
  haproxyDriver?: HaproxyDriver;
  /** Envoy front only: its admin, and the restarter process that runs its epochs. */
  envoy?: {
    adminUrl: string;
    restarterUrl: string;
    /** The local restarter's pid and log (absent when a remote one, e.g. compose's, runs Envoy). */
    restarterPid: number | undefined;
    logFile: string | undefined;
    /** It was already running (a gateway before this one started it) and was reused. */
    attached: boolean;
  };
  stop(): Promise<void>;
}

/** What startStack takes besides the config. */
export interface StackOptions {
  log?: Logger;
  /** Children's output: straight to this terminal, or as log lines. */
  childOutput?: 'inherit' | 'lines';
  /** More admin-server routes (the web page and dashboard). */
  extraRoutes?: AdminDeps['extraRoutes'];
}

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
