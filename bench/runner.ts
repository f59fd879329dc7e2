import http2 from 'node:http2';
import type { BenchEnv, RouteInfo } from './environment.js';
import type { PeerSettings } from './peer-settings.js';
import { BenchWorkerError } from './errors.js';
import { LoadGenerator } from './load-generator.js';
import { cpuMs, establishedOf, rssBytes, socketCount, tcpTable, type TcpEntry } from '../lib/procfs.js';
import type { Profile } from './profiles.js';
import { Progress } from '../lib/progress.js';
import type { WorkerEvent } from './protocol.js';
import { cellLabel, type CpuPerUnit, type PathName, type ProcessView, type RouteName, type RunConditions } from './result.js';

// What every scenario needs: load generators per cell (path × route), CPU windows over all the
// processes involved, socket/RSS snapshots from /proc, the alternated run order, and progress.

export interface Cell {
  path: PathName;
  route: RouteName;
}

export interface PlannedRun<C extends Cell = Cell> {
  cell: C;
  rep: number;
  aa: boolean;
}

/**
 * Alternated order: repetitions go forward and backward over the cells (A B … B A …), the last one
 * backward so that `cells[0]` ends it; the A/A run then repeats `cells[0]` right after it.
 */
export function alternate<C extends Cell>(cells: readonly C[], reps: number, aa: boolean): Array<PlannedRun<C>> {
  const out: Array<PlannedRun<C>> = [];
  for (let rep = 0; rep < reps; rep++) {
    const forward = (reps - 1 - rep) % 2 === 1;
    const order = forward ? [...cells] : [...cells].reverse();
    for (const cell of order) out.push({ cell, rep, aa: false });
  }
  const first = cells[0];
  if (aa && first) out.push({ cell: first, rep: reps, aa: true });
  return out;
}

export interface CpuWindow {
  clientMs: number;
  proxyMs: number | null;
  backendsMs: number;
  busMs: number | null;
  windowMs: number;
}

export function perUnit(cpu: CpuWindow | null, units: number): CpuPerUnit | null {
  if (!cpu || units <= 0) return null;
  const us = (ms: number | null) => (ms === null ? null : (ms * 1000) / units);
  const clientUs = us(cpu.clientMs);
  const proxyUs = us(cpu.proxyMs);
  const backendsUs = us(cpu.backendsMs);
  const busUs = us(cpu.busMs);
  return {
    clientUs,
    proxyUs,
    backendsUs,
    busUs,
    totalUs: (clientUs ?? 0) + (proxyUs ?? 0) + (backendsUs ?? 0) + (busUs ?? 0),
    clientCoreShare: cpu.windowMs > 0 ? cpu.clientMs / cpu.windowMs : null,
  };
}

export class Runner {
  readonly env: BenchEnv;
  readonly profile: Profile;
  readonly progress: Progress;
  readonly peers = new Map<RouteName, PeerSettings | null>();
  #seq = 0;
  #pool = new Map<string, LoadGenerator>();
  #live = new Set<LoadGenerator>();
  #aborted = false;
  /** Backend sessions known to linger (not ours to wait for). */
  #lingering = 0;

  constructor(env: BenchEnv, profile: Profile, progress: Progress) {
    this.env = env;
    this.profile = profile;
    this.progress = progress;
  }

  nextSeq(): number {
    return this.#seq++;
  }

  conditions(route: RouteName): RunConditions {
    const r = this.env.route(route);
    const c = this.env.config;
    const engine = r.proxy?.engine;
    return {
      node: process.version,
      haproxy: engine === 'haproxy' ? this.env.haproxyVersion : null,
      envoy: engine === 'envoy' ? (r.proxy?.version ?? null) : null,
      envoyConcurrency: engine === 'envoy' ? this.env.envoyConcurrency : null,
      route,
      url: r.url,
      upstreamProtocol: r.upstreamProtocol,
      peer: this.peers.get(route) ?? null,
      frontStreamLimit: r.proxy ? r.streamLimit : null,
      backendStreamLimit: c.h2MaxConcurrentStreams,
      clientMaxSessionMemoryMb: c.maxSessionMemoryMb,
      backendMaxSessionMemoryMb: c.maxSessionMemoryMb,
      haproxyMaxconn: engine === 'haproxy' ? c.haproxyMaxconn : null,
      clientInitialWindowSize: http2.getDefaultSettings().initialWindowSize ?? 65_535,
    };
  }

  label(cell: Cell): string {
    return cellLabel(cell.path, cell.route);
  }

  #target(cell: Cell) {
    return {
      url: this.env.route(cell.route).url,
      transport: cell.path === 'h2-mux' ? ('h2' as const) : ('h1' as const),
      handshakeTimeoutMs: this.profile.storm.handshakeTimeoutMs,
      maxSessionMemoryMb: this.env.config.maxSessionMemoryMb,
    };
  }

  /** A load generator kept for the cell across runs of a scenario (latency, throughput, fan-out). */
  async pooled(cell: Cell): Promise<LoadGenerator> {
    const key = `${cell.path}|${cell.route}`;
    this.checkAborted();
    const existing = this.#pool.get(key);
    if (existing?.alive) return existing;
    const lg = await LoadGenerator.start({ target: this.#target(cell) });
    this.#pool.set(key, lg);
    this.#live.add(lg);
    return lg;
  }

  /** A new load generator for one run (storm, idle, scale: its memory must start clean). */
  async fresh(cell: Cell, maxOldSpaceMb?: number): Promise<LoadGenerator> {
    this.checkAborted();
    const lg = await LoadGenerator.start({ target: this.#target(cell), maxOldSpaceMb });
    this.#live.add(lg);
    return lg;
  }

  async release(lg: LoadGenerator): Promise<void> {
    await lg.stop();
    this.#live.delete(lg);
    for (const [k, v] of this.#pool) if (v === lg) this.#pool.delete(k);
  }

  async releaseAll(): Promise<void> {
    await Promise.all([...this.#live].map((lg) => lg.stop()));
    this.#live.clear();
    this.#pool.clear();
  }

  killAll(): void {
    for (const lg of this.#live) lg.kill();
  }

  /**
   * Event handler measuring CPU between the worker's 'start' and 'end' marks: the worker's own
   * cpuUsage, and /proc times of the route's proxy (HAProxy's worker, Envoy), of every backend and (withBus) of Redis.
   */
  cpuMeter(proxyPid: number | undefined, withBus = false): { onEvent: (e: WorkerEvent) => void; result: () => CpuWindow | null } {
    const backendsCpu = () => this.env.backends.reduce((sum, b) => sum + (cpuMs(b.pid) ?? 0), 0);
    const busPid = withBus ? this.env.bus?.pid : undefined;
    let start: { clientUs: number; proxy: number | undefined; backends: number; bus: number | undefined; t: number } | undefined;
    let window: CpuWindow | null = null;
    return {
      onEvent: (e) => {
        if (e.event === 'progress') return this.progress.step(e.done, e.total);
        const proxy = proxyPid === undefined ? undefined : cpuMs(proxyPid);
        const sample = { clientUs: e.cpuUs, proxy, backends: backendsCpu(), bus: busPid === undefined ? undefined : cpuMs(busPid), t: performance.now() };
        if (e.mark === 'start') start = sample;
        else if (start) {
          window = {
            clientMs: (sample.clientUs - start.clientUs) / 1000,
            proxyMs: sample.proxy !== undefined && start.proxy !== undefined ? sample.proxy - start.proxy : null,
            backendsMs: sample.backends - start.backends,
            busMs: sample.bus !== undefined && start.bus !== undefined ? sample.bus - start.bus : null,
            windowMs: sample.t - start.t,
          };
        }
      },
      result: () => window,
    };
  }

  /** Sockets and RSS of the client, the route's proxy (HAProxy's worker, Envoy) and the backends, from /proc. */
  snapshot(
    clientPid: number,
    route: RouteInfo,
    proxyPid: number | undefined,
  ): { client: ProcessView; proxy: (ProcessView & { accepted: number; upstream: number }) | null; backends: ProcessView } {
    const table: Map<number, TcpEntry> = tcpTable();
    const c = socketCount(clientPid, table);
    const client = { rssBytes: rssBytes(clientPid) ?? null, socketFds: c.sockets, tcpEstablished: c.tcpEstablished };
    let proxy = null;
    if (proxyPid !== undefined) {
      const p = socketCount(proxyPid, table, { listen: route.frontPort ? [route.frontPort] : [], upstream: this.env.backends.map((b) => b.port) });
      proxy = { rssBytes: rssBytes(proxyPid) ?? null, socketFds: p.sockets, tcpEstablished: p.tcpEstablished, accepted: p.accepted, upstream: p.dialed };
    }
    // Backend connections that belong to THIS run: accepted on the backend port from the client or
    // from this route's proxy (not another front's idle pool, nor the bench's /healthz polls).
    const peers = new Set<number>();
    for (const e of establishedOf(clientPid, table)) peers.add(e.localPort);
    if (proxyPid !== undefined) for (const e of establishedOf(proxyPid, table)) peers.add(e.localPort);
    const backends = { rssBytes: 0 as number | null, largestRssBytes: 0 as number | null, socketFds: 0, tcpEstablished: 0 };
    for (const b of this.env.backends) {
      const s = socketCount(b.pid, table);
      const rss = rssBytes(b.pid);
      backends.rssBytes = rss === undefined || backends.rssBytes === null ? null : backends.rssBytes + rss;
      backends.largestRssBytes = rss === undefined || backends.largestRssBytes === null ? null : Math.max(backends.largestRssBytes, rss);
      backends.socketFds += s.sockets;
      backends.tcpEstablished += establishedOf(b.pid, table).filter((e) => e.localPort === b.port && peers.has(e.remotePort)).length;
    }
    return { client, proxy, backends };
  }

  /**
   * Wait for the previous run's sessions to leave the backends. Sessions a proxy keeps on its own
   * (streams stuck behind HTTP/2 flow control outlive their client) would skew every later run, so
   * the bench then has the proxies that hold streams let go of them: a HAProxy is reloaded (the old
   * worker is ended after hard-stop-after), an Envoy restarted.
   */
  async settle(timeoutMs = 20_000): Promise<void> {
    this.checkAborted();
    const aborted = () => this.#aborted;
    let left = await this.env.waitIdle(timeoutMs, 3_000, aborted, this.#lingering);
    if (left <= this.#lingering || this.#aborted) {
      this.#lingering = Math.min(this.#lingering, left);
      return;
    }
    const holding: RouteInfo[] = [];
    for (const r of this.env.routes.values()) if ((await this.env.proxyStreams(r).catch(() => 0)) > 0) holding.push(r);
    if (holding.length > 0) {
      const stuck = left;
      const done: string[] = [];
      for (const r of holding) done.push(`${r.name}: ${await r.proxy!.releaseStuck()}`);
      const graceMs = this.env.config.hardStopAfterS * 1000 + 5_000;
      left = await this.env.waitIdle(graceMs, graceMs, aborted, this.#lingering);
      const note =
        `${stuck} sessions stayed open on the backends after their clients had gone, held by ${holding.map((r) => r.name).join(', ')}; ` +
        `${done.join('; ')}: ${left} left`;
      this.events.push(note);
      this.progress.note(`warning: ${note}`);
    }
    if (left > this.#lingering) {
      // Not a proxy's: sessions a backend has not closed yet. Later runs wait for no more than these.
      this.#lingering = left;
      this.progress.note(`warning: ${left} sessions linger on the backends (no proxy holds them); later runs do not wait for them`);
    }
  }

  /** Things that happened during the bench that a reader of the numbers must know. */
  readonly events: string[] = [];

  /** Ctrl-C: kill every load generator; whatever runs next stops at its next step. */
  abort(): void {
    this.#aborted = true;
    this.killAll();
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  checkAborted(): void {
    if (this.#aborted) throw new BenchWorkerError('interrupted');
  }
}
