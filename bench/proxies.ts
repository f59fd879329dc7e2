import type { HaproxyFront } from '../gateway/harness.js';

// The proxy a bench route goes through, in the terms the scenarios use, whichever it is: HAProxy
// (runtime API, master-worker) or Envoy (admin API, fed over xDS by a registry of the bench's own;
// see envoy-route.ts). A route without one (direct, ext) has no BenchProxy.

export type ProxyEngine = 'haproxy' | 'envoy';

/** What the proxy itself reports (null where it has no such figure). */
export interface ProxyCounts {
  /** Client connections open. */
  connections: number | null;
  /** Streams (WebSocket sessions) open on the front. */
  sessions: number | null;
  /** Connections to the backends. */
  upstream: number | null;
}

export interface BenchProxy {
  readonly engine: ProxyEngine;
  /** 'HAProxy' or 'Envoy', for tables and notes. */
  readonly name: string;
  readonly version: string;
  /** The process whose /proc CPU, RSS and sockets are the proxy's (HAProxy: its worker; Envoy: itself). */
  pid(): Promise<number | undefined>;
  /** Streams still open on the front (0 once every client has gone, unless the proxy keeps some). */
  streams(): Promise<number>;
  counts(): Promise<ProxyCounts>;
  /** Figures recorded beside the numbers (HAProxy `show info`; Envoy server_info and limits). */
  info(): Promise<Record<string, string>>;
  /** Memory the proxy holds for its work (HAProxy: pool bytes in use; Envoy: heap allocated). */
  memoryBytes(): Promise<number | null>;
  /** Send new sessions only to `keep` (the other backends get none); undefined: every backend again. */
  pinTo(keep: string | undefined): Promise<void>;
  /** End streams the proxy keeps after their clients left; says what it did, for the result's notes. */
  releaseStuck(): Promise<string>;
  /** What the proxy complained about during the bench, counted (e.g. `1,234× socket(2) failed …`). */
  logSummary(): string[];
  /** The proxy's own counters that explain refused streams or a dropped connection (non-zero ones), for a failed step. */
  diagnostics(): Promise<string[]>;
}

function keyValues(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .map((l) => /^([^:]+):\s*(.*)$/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1]!, m[2]!]),
  );
}

/** A HAProxy of the bench: the gateway stack's (`front`) or the HTTP/2-upstream one (`front-h2up`). */
export class HaproxyBenchProxy implements BenchProxy {
  readonly engine = 'haproxy' as const;
  readonly name = 'HAProxy';
  readonly front: HaproxyFront;
  readonly #backendIds: readonly string[];
  readonly #hardStopAfterS: number;

  constructor(front: HaproxyFront, backendIds: readonly string[], hardStopAfterS: number) {
    this.front = front;
    this.#backendIds = backendIds;
    this.#hardStopAfterS = hardStopAfterS;
  }

  get version(): string {
    return this.front.version;
  }

  async pid(): Promise<number | undefined> {
    try {
      return (await this.front.workers())[0]?.pid;
    } catch {
      return undefined;
    }
  }

  async streams(): Promise<number> {
    const out = await this.front.runtime('show sess');
    return out.split('\n').filter((l) => l.includes(' fe=front ')).length;
  }

  async counts(): Promise<ProxyCounts> {
    const info = await this.info();
    return { connections: info.CurrConns !== undefined ? Number(info.CurrConns) : null, sessions: null, upstream: null };
  }

  async info(): Promise<Record<string, string>> {
    return keyValues(await this.front.runtime('show info'));
  }

  async memoryBytes(): Promise<number | null> {
    const used = (await this.info()).PoolUsed_bytes;
    return used === undefined ? null : Number(used);
  }

  /** Every server but `keep` in maintenance through the runtime API. */
  async pinTo(keep: string | undefined): Promise<void> {
    for (const id of this.#backendIds) {
      const state = keep === undefined || id === keep ? 'ready' : 'maint';
      await this.front.runtime(`set server backends/${id} state ${state}`);
    }
  }

  /** HAProxy's own messages go to the gateway's log, not counted here. */
  logSummary(): string[] {
    return [];
  }

  /** Its limits (maxconn, Ulimit-n) come from `show info` already. */
  async diagnostics(): Promise<string[]> {
    return [];
  }

  /** A reload: the old worker keeps its streams until hard-stop-after, then exits with them. */
  async releaseStuck(): Promise<string> {
    await this.front.reload();
    return `reloaded that HAProxy (hard-stop-after ${this.#hardStopAfterS} s)`;
  }
}
