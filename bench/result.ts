import type { LatencySummary } from '../client/echo-probe.js';
import type { PeerSettings } from './peer-settings.js';

// The shape of a bench result file (bench/results/<name>.json). `schema` changes when a field
// changes meaning; --compare refuses files of another schema.

export const RESULT_SCHEMA = 'h2-ws-gateway-bench/1';

export const PATHS = ['h2-mux', 'h1-upgrade'] as const;
export type PathName = (typeof PATHS)[number];
// Route ids are stable across versions of the bench (--compare matches them): `front` and
// `front-h2up` are the HAProxy routes they always were; their labels say HAProxy.
// `reference` is the floor: a bare `ws` echo server (bench/reference-server.ts), not the product.
export const ROUTES = ['front', 'front-h2up', 'envoy', 'envoy-h2up', 'direct', 'reference', 'ext'] as const;
export type RouteName = (typeof ROUTES)[number];
/** Routes through a HAProxy of the bench. */
export const HAPROXY_ROUTES = ['front', 'front-h2up'] as const satisfies readonly RouteName[];
/** Routes through an Envoy of the bench. */
export const ENVOY_ROUTES = ['envoy', 'envoy-h2up'] as const satisfies readonly RouteName[];
/** Routes through a proxy of ours, in the order tables and charts list them. */
export const FRONT_ROUTES = [...HAPROXY_ROUTES, ...ENVOY_ROUTES] as const;
export const SCENARIOS = ['storm', 'latency', 'throughput', 'fanout', 'idle', 'scale'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export const ROUTE_LABEL: Record<RouteName, string> = {
  front: 'via HAProxy',
  'front-h2up': 'via HAProxy (h2 upstream)',
  envoy: 'via Envoy',
  'envoy-h2up': 'via Envoy (h2 upstream, default)',
  direct: 'direct',
  reference: 'bare ws (reference)',
  ext: 'via external front',
};

export function cellLabel(path: PathName, route: RouteName): string {
  return `${path} ${ROUTE_LABEL[route]}`;
}

/** Recorded beside every number: what the run ran through. */
export interface RunConditions {
  node: string;
  /** Version of the route's proxy when it is that one (else null). */
  haproxy: string | null;
  envoy?: string | null;
  /** Envoy's worker threads (--concurrency), on Envoy routes. */
  envoyConcurrency?: number | null;
  route: RouteName;
  url: string;
  /** Front → backend protocol (null: no front of ours). */
  upstreamProtocol: 'h1' | 'h2' | null;
  /** SETTINGS the server of this route sent (h2 probe), null when it does not speak h2c. */
  peer: PeerSettings | null;
  /** Streams per connection we configured on the front (null: not ours). */
  frontStreamLimit: number | null;
  backendStreamLimit: number;
  clientMaxSessionMemoryMb: number;
  backendMaxSessionMemoryMb: number;
  haproxyMaxconn: number | null;
  clientInitialWindowSize: number;
}

export interface CpuPerUnit {
  /** µs of CPU per unit (message, delivery or session), by process class. */
  clientUs: number | null;
  proxyUs: number | null;
  backendsUs: number | null;
  /** The room bus (Redis), when one runs; counted in totalUs. */
  busUs: number | null;
  totalUs: number | null;
  /** Share of one core the load generator used during the window (1 = a full core: client-bound). */
  clientCoreShare: number | null;
}

export interface RunBase {
  scenario: ScenarioName;
  path: PathName;
  route: RouteName;
  label: string;
  /** 0-based repetition; A/A runs have aa = true. */
  rep: number;
  aa: boolean;
  /** Global order in which runs happened (alternation is visible here). */
  seq: number;
  ok: boolean;
  error?: string;
  skipped?: string;
  wallMs: number;
  conditions: RunConditions;
  cpu: CpuPerUnit | null;
}

export interface ProcessView {
  rssBytes: number | null;
  /** Over several processes (the backends): the largest one's RSS. */
  largestRssBytes?: number | null;
  socketFds: number;
  tcpEstablished: number;
}

export interface StormRun extends RunBase {
  scenario: 'storm';
  params: { n: number; concurrency: number };
  opened: number;
  failed: number;
  errors: Record<string, number>;
  openMs: number;
  handshake: LatencySummary;
  echoed: number;
  echoFailed: number;
  /** What the client reports about its own connections. */
  clientConnections: number;
  client: ProcessView;
  proxy: (ProcessView & { accepted: number; upstream: number }) | null;
  backends: ProcessView;
  spread: Record<string, number>;
}

export interface LatencyRun extends RunBase {
  scenario: 'latency';
  params: { size: number; ratePerS: number; sessions: number; durationMs: number };
  sent: number;
  received: number;
  lost: number;
  mismatches: number;
  latency: LatencySummary;
}

export interface ThroughputRun extends RunBase {
  scenario: 'throughput';
  /** pinnedTo: the backend every route ends at (fronts pinned for this scenario). */
  params: { size: number; mode: 'single' | 'burst'; window: number; sessions: number; durationMs: number; pinnedTo: string };
  echoes: number;
  msgsPerS: number;
  mbPerS: number;
  mismatches: number;
  lost: number;
  rtt: LatencySummary;
}

export interface FanoutRun extends RunBase {
  scenario: 'fanout';
  /** pinnedTo: the backend every member was sent to when there is no room bus (null: balanced). */
  params: { members: number; messages: number; intervalMs: number; pinnedTo: string | null };
  /** Room bus the backends announced ('redis', 'local'), null if they did not say. */
  bus: string | null;
  opened: number;
  settled: number;
  expected: number;
  delivered: number;
  delivery: LatencySummary;
  allDelivered: LatencySummary;
  spread: Record<string, number>;
}

export interface MemoryPerSession {
  /** V8 heap + external (after forced GC), bytes per session. */
  heapBytes: number | null;
  rssBytes: number | null;
  /** The proxy's own count: HAProxy pool memory in use (`show info` PoolUsed_bytes), Envoy heap allocated (admin /memory). */
  poolBytes?: number | null;
  sockets: number | null;
}

export interface IdleRun extends RunBase {
  scenario: 'idle';
  params: { n: number };
  opened: number;
  perSession: { client: MemoryPerSession; proxy: MemoryPerSession | null; backends: MemoryPerSession };
  /** Growth of kernel TCP memory, machine-wide (noisy: other processes count too), bytes per session. */
  kernelTcpBytesPerSession: number | null;
}

export interface ScaleStep {
  target: number;
  open: number;
  failed: number;
  errors: Record<string, number>;
  openMs: number;
  echoed: number;
  echoFailed: number;
  clientConnections: number;
  client: ProcessView;
  /**
   * upstream: sockets to the backends from /proc. currConns: HAProxy's CurrConns. reported: what the
   * proxy itself counts (Envoy: downstream_cx_active, downstream_rq_active, cluster upstream_cx_active).
   */
  proxy: (ProcessView & { accepted: number; upstream: number; currConns: number | null; reported?: { connections: number | null; sessions: number | null; upstream: number | null } | null }) | null;
  backends: ProcessView;
}

export interface ScaleRun extends RunBase {
  scenario: 'scale';
  params: { steps: number[]; stepTimeoutMs: number };
  steps: ScaleStep[];
  /** Most sessions open and all echoing at once. */
  reached: number;
  stoppedAt: number | null;
  reason: string;
}

export type AnyRun = StormRun | LatencyRun | ThroughputRun | FanoutRun | IdleRun | ScaleRun;

export interface Ratio {
  id: string;
  scenario: ScenarioName;
  /** e.g. "open 1,000 sessions via front: h1-upgrade / h2-mux". */
  description: string;
  metric: string;
  numerator: string;
  denominator: string;
  /** One ratio per repetition pair (alternated runs). */
  pairs: number[];
  median: number | null;
  /** True for the A/A pair: the same cell twice, showing the noise floor. */
  aa: boolean;
}

export interface Target {
  id: 'sessions-10k' | 'sessions-100k' | 'idle-8kb' | 'open-3x' | 'client-100us' | 'front-70pct' | 'p99-1.5x' | 'backend-95pct';
  goal: string;
  measured: string;
  value: number | null;
  met: boolean | null;
  why: string;
}

export interface BenchResult {
  schema: typeof RESULT_SCHEMA;
  name: string;
  profile: 'quick' | 'full';
  startedAt: string;
  finishedAt: string;
  wallS: number;
  command: string;
  machine: {
    hostname: string;
    platform: string;
    kernel: string;
    arch: string;
    cpuModel: string;
    cpus: number;
    memoryMb: number;
    openFilesLimit: number | null;
    loadAvgStart: number[];
    loadAvgEnd: number[];
  };
  versions: { node: string; v8: string; haproxy: string | null; envoy?: string | null; ws: string | null; hdrHistogram: string | null };
  /** Conditions shared by every run (each run also carries its own, with its route's). */
  conditions: {
    backends: number;
    loopback: true;
    gateway: {
      upstreamProtocol: 'h1' | 'h2';
      h2MaxConcurrentStreams: number;
      h2upStreams: number | null;
      haproxyMaxconn: number;
      /** Envoy worker threads (--concurrency); null when no Envoy route ran (older results: absent). */
      envoyConcurrency?: number | null;
      maxSessionMemoryMb: number;
      maxPayloadBytes: number;
    };
    haproxyInfo: Record<string, Record<string, string>>;
    /** Per Envoy route: version, concurrency, stream limit, upstream protocol, open-files limit. */
    envoyInfo?: Record<string, Record<string, string>>;
    reps: number;
    notes: string[];
  };
  options: Record<string, unknown>;
  routes: Array<{ name: RouteName; url: string; upstreamProtocol: 'h1' | 'h2' | null; peer: PeerSettings | null }>;
  paths: PathName[];
  scenarios: {
    storm: StormRun[];
    latency: LatencyRun[];
    throughput: ThroughputRun[];
    fanout: FanoutRun[];
    idle: IdleRun[];
    scale: ScaleRun[];
  };
  ratios: Ratio[];
  targets: Target[];
}
