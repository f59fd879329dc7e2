import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { HaproxyFront, startBackendsOnly, startStack, type BackendProcess } from '../gateway/harness.js';
import { freePort, privatePorts } from '../lib/ports.js';
import { defaults, gatewaySchema, upstreamProtocolFor, type GatewayConfig } from '../lib/config.js';
import { logger } from '../lib/log.js';
import { EnvoyBenchProxy, requireEnvoyForBench } from './envoy-route.js';
import { BenchOptionError } from './errors.js';
import { INSPECTOR_LINE, remoteMemory, type RemoteMemory } from './inspector.js';
import { pidListeningOn } from '../lib/procfs.js';
import { HaproxyBenchProxy, type BenchProxy } from './proxies.js';
import { startReferenceServer } from './reference-route.js';
import { ENVOY_ROUTES, HAPROXY_ROUTES, type RouteName } from './result.js';

// What the bench measures against: the local stack (3 backends + HAProxy, on ephemeral loopback ports
// in a private state dir, so it never collides with `npm start` or tests), an optional second HAProxy
// on the same backends with HTTP/2 upstream (`proto h2`), Envoy with HTTP/1.1 and with HTTP/2
// upstream (each its own process and xDS server, envoy-route.ts), and an optional external front by URL.

export interface RouteInfo {
  name: RouteName;
  url: string;
  /** The proxy serving this route, when it is ours (HAProxy or Envoy). */
  proxy?: BenchProxy;
  frontPort?: number;
  upstreamProtocol: 'h1' | 'h2' | null;
  /** SETTINGS_MAX_CONCURRENT_STREAMS the front advertises (from our config), when known. */
  streamLimit: number | null;
  /** Where sessions land: every backend through a front, only b1 direct. */
  backendIds: string[];
}

export interface BackendInfo {
  id: string;
  url: string;
  port: number;
  pid: number;
  inspectorUrl: string | undefined;
}

export interface EnvOptions {
  routes: readonly RouteName[];
  /** Base gateway config (flags/env); ports and state dir are always replaced by private ones. */
  config: GatewayConfig;
  /** Stream limit for the HTTP/2-upstream fronts (the 50k sessions on one connection target). */
  h2upStreams: number;
  /** Envoy worker threads (--concurrency) for the Envoy routes. */
  envoyConcurrency: number;
  extUrl?: string;
  /** Warnings and errors the backends print (their stderr), inspector chatter left out. */
  onStackOutput?: (line: string) => void;
}

/** What the bench needs of a stack: its backends, its room bus, and HAProxy when a route goes through it. */
interface BenchStack {
  backends: BackendProcess[];
  redisUrl: string | undefined;
  haproxy?: HaproxyFront | undefined;
  frontUrl: string | undefined;
  stop(): Promise<void>;
}

export class BenchEnv {
  readonly config: GatewayConfig;
  readonly stack: BenchStack;
  readonly routes: Map<RouteName, RouteInfo>;
  readonly backends: BackendInfo[];
  /** '' when no route of this run goes through HAProxy (it is then not started). */
  readonly haproxyVersion: string;
  /** '' when no route of this run goes through Envoy. */
  readonly envoyVersion: string;
  /** Envoy worker threads (--concurrency) of the Envoy routes. */
  readonly envoyConcurrency: number;
  /** The room bus the stack started for the backends (Redis), if any. */
  readonly bus: { kind: 'redis'; url: string; pid: number | undefined } | undefined;
  readonly #stateDir: string;
  readonly #extraFronts: Array<{ stop(): Promise<void> }>;

  private constructor(
    config: GatewayConfig,
    stack: BenchStack,
    routes: Map<RouteName, RouteInfo>,
    backends: BackendInfo[],
    extraFronts: Array<{ stop(): Promise<void> }>,
    stateDir: string,
    envoyConcurrency: number,
  ) {
    this.envoyConcurrency = envoyConcurrency;
    this.config = config;
    this.stack = stack;
    this.routes = routes;
    this.backends = backends;
    this.haproxyVersion = stack.haproxy?.version ?? '';
    this.envoyVersion = [...routes.values()].find((r) => r.proxy?.engine === 'envoy')?.proxy?.version ?? '';
    const redisUrl = stack.redisUrl;
    this.bus = redisUrl ? { kind: 'redis', url: redisUrl, pid: pidListeningOn(Number(new URL(redisUrl).port)) } : undefined;
    this.#extraFronts = extraFronts;
    this.#stateDir = stateDir;
  }

  static async start(o: EnvOptions): Promise<BenchEnv> {
    // Before anything starts: the Envoy routes need the binary scripts/install-deps installs.
    const envoyRoutes = o.routes.filter((r) => (ENVOY_ROUTES as readonly string[]).includes(r));
    const envoyBin = envoyRoutes.length > 0 ? requireEnvoyForBench(envoyRoutes) : undefined;
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'gw-bench-'));
    // Every port the stack binds is private, so a bench never collides with `npm start` or a test.
    const config = defaults(gatewaySchema, {
      ...o.config,
      ...(await privatePorts(o.config.backendPorts.length)),
      // The bench measures capacity: the per-session rate and per-IP limits (every bench session
      // comes from 127.0.0.1) would otherwise be what it measures.
      maxMessagesPerSecond: 1_000_000,
      maxSessionsPerIp: 1_000_000,
      haproxySessionOpensPer10sPerIp: 1_000_000,
      stateDir,
      drainTimeoutMs: Math.min(o.config.drainTimeoutMs, 3_000),
      // After a reload (see Runner.settle) the old worker's stuck sessions end this soon.
      hardStopAfterS: Math.min(o.config.hardStopAfterS, 5),
      // The gateway's own health checker must not take a busy backend out in the middle of a run:
      // a storm can delay /healthz past the default 1 s timeout. HAProxy's checks stay as they are.
      healthTimeoutMs: Math.max(o.config.healthTimeoutMs, 10_000),
      healthFall: Math.max(o.config.healthFall, 1_000),
    });

    // Backends get an inspector on an ephemeral port so the bench can force a GC in them (idle cost).
    // The URL each prints goes through the stack's log; a private logger picks it out.
    const inspectors = new Map<string, string>();
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) {
          if (!line.trim()) continue;
          try {
            const rec = JSON.parse(line) as { level?: number; backend?: string; child?: string; msg?: string };
            const m = INSPECTOR_LINE.exec(rec.child ?? '');
            if (m && rec.backend) inspectors.set(rec.backend, m[1]!);
            else if (/^(Debugger |For help, see)/.test(rec.child ?? '')) continue; // inspector chatter
            else if ((rec.level ?? 0) >= 40) o.onStackOutput?.(`${rec.backend ? `backend ${rec.backend}: ` : ''}${rec.child ?? rec.msg ?? line}`);
          } catch {
            // not JSON: ignore
          }
        }
        done();
      },
    });
    const stackLog = pino({ level: 'warn' }, sink);
    const previous = process.env.NODE_OPTIONS;
    process.env.NODE_OPTIONS = `${previous ?? ''} --inspect=127.0.0.1:0`.trim();
    let stack: BenchStack;
    try {
      // HAProxy (with the whole control plane) only when a route goes through it: the direct and
      // external-front routes run where no HAProxy is installed (the compose bench container).
      stack = o.routes.some((r) => (HAPROXY_ROUTES as readonly string[]).includes(r))
        ? await startStack({ ...config, front: 'haproxy' }, { log: stackLog, childOutput: 'lines' })
        : { ...(await startBackendsOnly(config, stackLog)), haproxy: undefined, frontUrl: undefined };
    } catch (err) {
      rmSync(stateDir, { recursive: true, force: true });
      throw err;
    } finally {
      if (previous === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = previous;
    }

    const extraFronts: Array<{ stop(): Promise<void> }> = [];
    try {
      const backends: BackendInfo[] = stack.backends.map((b) => ({
        id: b.id,
        url: b.url,
        port: b.port,
        pid: b.process.pid ?? -1,
        inspectorUrl: inspectors.get(b.id),
      }));
      const b1 = backends[0];
      if (!b1) throw new BenchOptionError('the stack has no backend');
      const ref = o.routes.includes('reference') ? await startReferenceServer(config.host) : undefined;
      if (ref) extraFronts.push(ref);
      const routes = new Map<RouteName, RouteInfo>();
      const all = backends.map((b) => b.id);
      for (const name of o.routes) {
        if (name === 'front') {
          routes.set(name, {
            name,
            url: stack.frontUrl!,
            proxy: new HaproxyBenchProxy(stack.haproxy!, all, config.hardStopAfterS),
            frontPort: config.frontPort,
            upstreamProtocol: upstreamProtocolFor({ ...config, front: 'haproxy' }),
            streamLimit: config.h2MaxConcurrentStreams,
            backendIds: all,
          });
        } else if (name === 'front-h2up') {
          const settings = {
            ...config,
            frontPort: await freePort(),
            haproxyStatsPort: await freePort(),
            stateDir: path.join(stateDir, 'h2up'),
            upstreamProtocol: 'h2' as const,
            h2MaxConcurrentStreams: o.h2upStreams,
          };
          mkdirSync(settings.stateDir, { recursive: true });
          const front = new HaproxyFront(
            settings,
            backends.map((b) => ({ id: b.id, host: config.host, port: b.port })),
            logger('haproxy', { front: 'h2up' }),
          );
          extraFronts.push(front);
          await front.start();
          routes.set(name, {
            name,
            url: front.frontUrl,
            proxy: new HaproxyBenchProxy(front, all, config.hardStopAfterS),
            frontPort: settings.frontPort,
            upstreamProtocol: 'h2',
            streamLimit: o.h2upStreams,
            backendIds: all,
          });
        } else if (name === 'envoy' || name === 'envoy-h2up') {
          const upstreamProtocol = name === 'envoy' ? ('h1' as const) : ('h2' as const);
          // HTTP/1.1 upstream: the gateway's stream limit (20,000 by default, above the 10,000 and
          // 20,000 scale steps; Envoy's file descriptors run out first anyway). HTTP/2 upstream: the
          // same limit as the HTTP/2-upstream HAProxy, above the largest scale step.
          const streamLimit = name === 'envoy' ? config.h2MaxConcurrentStreams : o.h2upStreams;
          const envoy = await EnvoyBenchProxy.start(envoyBin!, {
            route: name,
            host: config.host,
            backends: backends.map((b) => ({ id: b.id, host: config.host, port: b.port })),
            upstreamProtocol,
            maxConcurrentStreams: streamLimit,
            balance: config.balance,
            concurrency: o.envoyConcurrency,
            stateDir,
            onOutput: o.onStackOutput,
          });
          extraFronts.push(envoy);
          routes.set(name, {
            name,
            url: envoy.url,
            proxy: envoy,
            frontPort: envoy.frontPort,
            upstreamProtocol,
            streamLimit,
            backendIds: all,
          });
        } else if (name === 'direct') {
          routes.set(name, {
            name,
            url: b1.url,
            upstreamProtocol: null,
            streamLimit: config.h2MaxConcurrentStreams,
            backendIds: [b1.id],
          });
        } else if (name === 'reference' && ref) {
          routes.set(name, { name, url: ref.url, upstreamProtocol: null, streamLimit: null, backendIds: [ref.id] });
        } else if (name === 'ext') {
          if (!o.extUrl) throw new BenchOptionError('route "ext" needs --front-url URL');
          routes.set(name, { name, url: o.extUrl, upstreamProtocol: null, streamLimit: null, backendIds: [] });
        }
      }
      // The floor route's server counts among the backends from here on (CPU, RSS, heap and sessions
      // are read over all of them); no front routes to it, so it idles in every other route's runs.
      if (ref) backends.push({ id: ref.id, url: ref.url, port: ref.port, pid: ref.pid, inspectorUrl: ref.inspectorUrl });
      return new BenchEnv(config, stack, routes, backends, extraFronts, stateDir, o.envoyConcurrency);
    } catch (err) {
      for (const f of extraFronts) await f.stop();
      await stack.stop();
      rmSync(stateDir, { recursive: true, force: true });
      throw err;
    }
  }

  route(name: RouteName): RouteInfo {
    const r = this.routes.get(name);
    if (!r) throw new BenchOptionError(`route ${name} is not set up`);
    return r;
  }

  /** The process of a route's proxy to read /proc of: HAProxy's worker (the master only supervises), Envoy itself. */
  async proxyPid(route: RouteInfo): Promise<number | undefined> {
    return route.proxy ? route.proxy.pid() : undefined;
  }

  /** A route's proxy figures as key → value: HAProxy `show info`, Envoy's version, concurrency, limits. */
  async proxyInfo(route: RouteInfo): Promise<Record<string, string>> {
    return route.proxy ? route.proxy.info() : {};
  }

  /** Open sessions the backends report on /healthz (undefined for one that did not answer). */
  async backendSessions(): Promise<number> {
    const counts = await Promise.all(
      this.backends.map(async (b) => {
        try {
          const res = await fetch(`${b.url}/healthz`, { signal: AbortSignal.timeout(5_000) });
          return ((await res.json()) as { sessions?: number }).sessions ?? 0;
        } catch {
          return 0;
        }
      }),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  /**
   * Wait until no backend holds a session (the previous run's are gone): up to `timeoutMs`, and no
   * longer than `stallMs` without the count going down (sessions a proxy keeps open on its own).
   */
  async waitIdle(timeoutMs: number, stallMs = 3_000, aborted: () => boolean = () => false, target = 0): Promise<number> {
    const until = Date.now() + timeoutMs;
    let left = await this.backendSessions();
    let best = left;
    let progressAt = Date.now();
    while (left > target && Date.now() < until && Date.now() - progressAt < stallMs && !aborted()) {
      await new Promise((r) => setTimeout(r, 100));
      left = await this.backendSessions();
      if (left < best) {
        best = left;
        progressAt = Date.now();
      }
    }
    return left;
  }

  /** Streams a route's proxy still carries on its front (HAProxy `show sess`, Envoy downstream_rq_active), 0 when it is not ours. */
  async proxyStreams(route: RouteInfo): Promise<number> {
    return route.proxy ? route.proxy.streams() : 0;
  }

  async backendMemory(gc: boolean): Promise<Array<RemoteMemory | undefined>> {
    return Promise.all(
      this.backends.map((b) => (b.inspectorUrl ? remoteMemory(b.inspectorUrl, { gc }).catch(() => undefined) : Promise.resolve(undefined))),
    );
  }

  /**
   * Send a route's new sessions to `keep` only (undefined: to every backend again). HAProxy: the
   * other servers in maintenance (runtime API); Envoy: the other endpoints DRAINING in the route's
   * own registry, pushed over EDS and ACKed.
   */
  async pinTo(route: RouteInfo, keep: string | undefined): Promise<void> {
    await route.proxy?.pinTo(keep);
  }

  async stop(): Promise<void> {
    for (const f of this.#extraFronts) await f.stop();
    await this.stack.stop();
    rmSync(this.#stateDir, { recursive: true, force: true });
  }
}

/** Version of an npm package in node_modules (for the conditions block). */
export function packageVersion(name: string): string | null {
  try {
    const file = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'node_modules', name, 'package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? null;
  } catch {
    return null;
  }
}
