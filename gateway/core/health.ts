import type { Logger } from 'pino';
import { logger } from '../../lib/log.js';
import type { EndpointRegistry } from './registry.js';

// Active health checks against each endpoint's /healthz. `fall` consecutive failures take an active
// endpoint down; `rise` consecutive successes bring a down one back. Draining endpoints are left alone:
// the drain controller owns them until they are removed.

export interface HealthOptions {
  intervalMs: number;
  timeoutMs: number;
  fall: number;
  rise: number;
}

export interface HealthStatus {
  ok: boolean;
  /** Open sessions the backend reported, when it answered. */
  sessions?: number;
  /** The same, split by how they arrived: HTTP/2 stream or HTTP/1.1 connection. */
  transports?: { h1: number; h2: number };
  /** Room bus state the backend reported ('ok' | 'degraded'). */
  bus?: string;
  /** Which room bus it is on: 'redis' (shared) or 'local' (its rooms are its own). */
  busKind?: string;
  /** WebSocket messages it has handled since it started (in + out). */
  messages?: number;
  checkedAt: number;
  error?: string;
}

export class HealthChecker {
  readonly #registry: EndpointRegistry;
  readonly #options: HealthOptions;
  readonly #log: Logger;
  readonly #streak = new Map<string, { ok: boolean; count: number }>();
  readonly #last = new Map<string, HealthStatus>();
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(registry: EndpointRegistry, options: HealthOptions, log: Logger = logger('health')) {
    this.#registry = registry;
    this.#options = options;
    this.#log = log;
  }

  start(): void {
    const tick = async () => {
      if (this.#running) return;
      this.#running = true;
      try {
        await this.checkAll();
      } finally {
        this.#running = false;
      }
    };
    void tick();
    this.#timer = setInterval(() => void tick(), this.#options.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  status(id: string): HealthStatus | undefined {
    return this.#last.get(id);
  }

  async probe(host: string, port: number): Promise<HealthStatus> {
    const checkedAt = Date.now();
    try {
      const res = await fetch(`http://${host}:${port}/healthz`, { signal: AbortSignal.timeout(this.#options.timeoutMs) });
      const body = (await res.json().catch(() => ({}))) as { sessions?: number; transports?: { h1: number; h2: number }; messages?: number; bus?: { kind?: string; status?: string } };
      return {
        ok: res.status === 200,
        sessions: body.sessions,
        transports: body.transports,
        bus: body.bus?.status,
        busKind: body.bus?.kind,
        messages: body.messages,
        checkedAt,
        error: res.status === 200 ? undefined : `HTTP ${res.status}`,
      };
    } catch (err) {
      return { ok: false, checkedAt, error: (err as Error).message };
    }
  }

  async checkAll(): Promise<void> {
    const endpoints = this.#registry.list();
    for (const id of this.#streak.keys()) if (!this.#registry.has(id)) this.#streak.delete(id);
    await Promise.all(
      endpoints.map(async (e) => {
        const status = await this.probe(e.host, e.port);
        this.#last.set(e.id, status);
        const prev = this.#streak.get(e.id);
        const streak = prev && prev.ok === status.ok ? { ok: status.ok, count: prev.count + 1 } : { ok: status.ok, count: 1 };
        this.#streak.set(e.id, streak);
        if (!this.#registry.has(e.id)) return;
        const current = this.#registry.get(e.id);
        if (current.state === 'active' && !streak.ok && streak.count >= this.#options.fall) {
          this.#log.warn({ endpoint: e.id, error: status.error, failures: streak.count }, 'endpoint failed health checks: down');
          this.#registry.update(e.id, { state: 'down' });
        } else if (current.state === 'down' && streak.ok && streak.count >= this.#options.rise) {
          this.#log.info({ endpoint: e.id }, 'endpoint healthy again: active');
          this.#registry.update(e.id, { state: 'active' });
        }
      }),
    );
  }
}
