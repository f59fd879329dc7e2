import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { canConnect, freePort, waitFor } from '../../lib/ports.js';
import { logger } from '../../lib/log.js';
import { EndpointRegistry } from '../core/registry.js';
import { Supervised } from '../core/supervisor.js';
import { renderAdsEnvoyConfig } from './local.js';
import { EnvoyAdminError, readAdminStats, readEnvoyFrontCounts, readEnvoyVersion, type EnvoyFrontCounts } from './stats.js';
import { startXdsServer, type XdsServer } from './xds/index.js';

// An Envoy beside the stack, for a fixed set of backends: one Envoy process fed by an xDS server of
// its own over an EndpointRegistry of its own. The product's control plane is the same code
// (xds/, envoy/envoy.yaml rendered with this Envoy's ports); only the registry is private, so
// draining its endpoints touches nothing else. Envoy runs as a plain child (`--disable-hot-restart`)
// and stops with its parent (it asks the kernel for SIGTERM when the parent dies). The bench runs
// its Envoy routes on it.

export interface StandaloneEnvoyOptions {
  /** A name for logs and the xDS node id: `envoy`, `envoy-h2up`. */
  name: string;
  host: string;
  backends: ReadonlyArray<{ id: string; host: string; port: number }>;
  upstreamProtocol: 'h1' | 'h2';
  /** SETTINGS_MAX_CONCURRENT_STREAMS of the front listener. */
  maxConcurrentStreams: number;
  balance: 'roundrobin' | 'room';
  /** Envoy worker threads (--concurrency). */
  concurrency: number;
  /** Its bootstrap goes to <stateDir>/<name>. */
  stateDir: string;
  /** Each line Envoy writes to stderr (its warnings and errors at --log-level warn), while it is meant to run. */
  onStderrLine?: (line: string) => void;
}

export class StandaloneEnvoy {
  readonly options: StandaloneEnvoyOptions;
  readonly frontPort: number;
  readonly adminUrl: string;
  readonly registry: EndpointRegistry;
  readonly xds: XdsServer;
  version = '';
  readonly #bin: string;
  readonly #bootstrap: string;
  readonly #adminPort: number;
  readonly #log: Logger;
  #process: Supervised | undefined;

  private constructor(o: StandaloneEnvoyOptions, bin: string, xds: XdsServer, registry: EndpointRegistry, ports: { front: number; admin: number }, bootstrap: string) {
    this.options = o;
    this.#bin = bin;
    this.xds = xds;
    this.registry = registry;
    this.frontPort = ports.front;
    this.#adminPort = ports.admin;
    this.adminUrl = `http://${o.host}:${ports.admin}`;
    this.#bootstrap = bootstrap;
    this.#log = logger('envoy', { route: o.name });
  }

  static async start(bin: string, o: StandaloneEnvoyOptions): Promise<StandaloneEnvoy> {
    const registry = new EndpointRegistry({ seed: o.backends, log: logger('registry', { route: o.name }) });
    const front = await freePort(o.host);
    const admin = await freePort(o.host);
    // freePort, not 0: port 0 draws from the range outgoing connections use, which a storm fills.
    const xds = await startXdsServer({
      registry,
      host: o.host,
      port: await freePort(o.host),
      log: logger('xds', { route: o.name }),
      identifier: `h2-ws-gateway-standalone-${o.name}`,
      front: { address: o.host, port: front, maxConcurrentStreams: o.maxConcurrentStreams, upstreamProtocol: o.upstreamProtocol, balance: o.balance },
    });
    try {
      const dir = path.join(o.stateDir, o.name);
      mkdirSync(dir, { recursive: true });
      const bootstrap = renderAdsEnvoyConfig({ adminHost: o.host, adminPort: admin, xdsHost: o.host, xdsPort: xds.port }, dir);
      const envoy = new StandaloneEnvoy(o, bin, xds, registry, { front, admin }, bootstrap);
      await envoy.#startProcess();
      return envoy;
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
      name: `envoy (${this.options.name})`,
      command: this.#bin,
      args: [
        '-c', this.#bootstrap,
        // Never hot-restarted; a base id of its own keeps it apart from any other Envoy on the
        // machine all the same (the gateway's uses its admin port too).
        '--disable-hot-restart',
        '--base-id', String(this.#adminPort),
        '--concurrency', String(this.options.concurrency),
        '--log-level', 'warn',
      ],
      log: this.#log,
      output: 'lines',
      onStdoutLine: (line) => this.#log.debug(line),
      onStderrLine: (line) => {
        // Once stopped on purpose, Envoy's "caught ENVOY_SIGTERM" and xDS-stream-closed warnings are expected.
        if (proc.stopRequested) return this.#log.debug(line);
        this.#log.warn(line);
        this.options.onStderrLine?.(line);
      },
    });
    this.#process = proc;
    try {
      // The listener comes over LDS: accepting on the front port means the xDS server fed it.
      await proc.whileRunning(waitFor(`Envoy (${this.options.name}) front listener`, () => canConnect(this.options.host, this.frontPort), 30_000));
      await proc.whileRunning(this.xds.settled(30_000));
      this.version = await readEnvoyVersion(this.adminUrl).catch(() => 'unknown');
    } catch (err) {
      await proc.stop(5_000);
      throw err;
    }
  }

  pid(): number | undefined {
    return this.#process?.running ? this.#process.pid : undefined;
  }

  /** Client connections, sessions (downstream requests) and upstream connections, from admin /stats. */
  counts(): Promise<EnvoyFrontCounts> {
    return readEnvoyFrontCounts(this.adminUrl);
  }

  /** Numeric admin stats whose names match `filter` (a regex). */
  stats(filter: string, fetchTimeoutMs = 2_000): Promise<Map<string, number>> {
    return readAdminStats(this.adminUrl, filter, fetchTimeoutMs);
  }

  /** Heap in use (admin /memory `allocated`, tcmalloc's count of bytes handed out). */
  async allocatedBytes(): Promise<number | null> {
    const url = `${this.adminUrl}/memory`;
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    if (!res.ok) throw new EnvoyAdminError(url, `HTTP ${res.status}`);
    const allocated = Number(((await res.json()) as { allocated?: unknown }).allocated);
    return Number.isFinite(allocated) ? allocated : null;
  }

  /** Every endpoint but `keep` DRAINING over EDS (no panic threshold: no new streams to them), then Envoy's ACK. */
  async pinTo(keep: string | undefined): Promise<void> {
    for (const e of this.registry.list()) {
      this.registry.update(e.id, { state: keep === undefined || e.id === keep ? 'active' : 'draining' });
    }
    await this.xds.settled();
  }

  /** Stop the process and start it again (the xDS server stays). */
  async restart(): Promise<void> {
    await this.#process?.stop(5_000);
    await this.#startProcess();
  }

  async stop(): Promise<void> {
    await this.#process?.stop(5_000);
    await this.xds.close();
  }
}
