import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { logger } from '../../lib/log.js';
import type { HealthChecker } from './health.js';
import type { Endpoint, EndpointRegistry } from './registry.js';

// Drain = no new streams, existing sessions continue. The registry state 'draining' makes every
// proxy driver stop sending new streams; this controller then watches the backend's session count.
// When it reaches 0 the drain is done; when the deadline passes first, the backend is told to close
// what is left with 1001 (going away) so clients reconnect elsewhere. DELETE drains, then removes.

export interface DrainOptions {
  /** Default time open sessions get before the backend closes them with 1001. */
  deadlineMs: number;
  pollMs: number;
  /** After the 1001s, how long to wait for sessions to reach 0 before removing anyway. */
  closeGraceMs: number;
}

export interface DrainResult {
  id: string;
  /** Sessions closed by the backend at the deadline (0 when they all ended on their own). */
  closedAtDeadline: number;
  removed: boolean;
  durationMs: number;
}

/** Events: 'drained' (DrainResult). */
export class DrainController extends EventEmitter {
  readonly #registry: EndpointRegistry;
  readonly #health: HealthChecker;
  readonly #options: DrainOptions;
  readonly #log: Logger;
  readonly #watching = new Set<string>();
  #stopped = false;

  constructor(registry: EndpointRegistry, health: HealthChecker, options: DrainOptions, log: Logger = logger('drain')) {
    super();
    this.#registry = registry;
    this.#health = health;
    this.#options = options;
    this.#log = log;
  }

  /** Pick up drains a previous gateway process left unfinished (state file). */
  resume(): void {
    for (const e of this.#registry.list()) if (e.state === 'draining') this.#watch(e.id, Date.now());
  }

  stop(): void {
    this.#stopped = true;
  }

  drain(id: string, options: { remove?: boolean; deadlineMs?: number } = {}): Endpoint {
    const current = this.#registry.get(id);
    const deadline = current.state === 'draining' && current.drainDeadline
      ? current.drainDeadline
      : Date.now() + (options.deadlineMs ?? this.#options.deadlineMs);
    const endpoint = this.#registry.update(id, {
      state: 'draining',
      drainDeadline: deadline,
      removeAfterDrain: Boolean(options.remove || current.removeAfterDrain),
    });
    this.#watch(id, Date.now());
    return endpoint;
  }

  #watch(id: string, startedAt: number): void {
    if (this.#watching.has(id)) return;
    this.#watching.add(id);
    void this.#run(id, startedAt).finally(() => this.#watching.delete(id));
  }

  async #run(id: string, startedAt: number): Promise<void> {
    let closedAtDeadline = 0;
    let closeSentAt: number | undefined;
    for (;;) {
      if (this.#stopped || !this.#registry.has(id)) return;
      const e = this.#registry.get(id);
      if (e.state !== 'draining') return; // drain cancelled (PATCH state=active)
      const status = await this.#health.probe(e.host, e.port);
      const sessions = status.ok || status.sessions !== undefined ? (status.sessions ?? 0) : 0;
      const unreachable = !status.ok && status.sessions === undefined;
      const now = Date.now();
      if (sessions === 0 || unreachable) break;
      if (closeSentAt === undefined && now >= (e.drainDeadline ?? now)) {
        closedAtDeadline = await this.#closeSessions(e);
        closeSentAt = now;
      } else if (closeSentAt !== undefined && now - closeSentAt > this.#options.closeGraceMs) {
        this.#log.warn({ endpoint: id, sessions }, 'sessions still open after the 1001s; finishing the drain anyway');
        break;
      }
      await new Promise((r) => setTimeout(r, this.#options.pollMs));
    }
    if (this.#stopped || !this.#registry.has(id)) return;
    const e = this.#registry.get(id);
    if (e.state !== 'draining') return;
    const removed = Boolean(e.removeAfterDrain);
    if (removed) this.#registry.remove(id);
    const result: DrainResult = { id, closedAtDeadline, removed, durationMs: Date.now() - startedAt };
    this.#log.info(result, `endpoint ${id} drained${removed ? ' and removed' : ''}`);
    this.emit('drained', result);
  }

  async #closeSessions(e: Endpoint): Promise<number> {
    try {
      const res = await fetch(`http://${e.host}:${e.port}/close-sessions`, { method: 'POST', signal: AbortSignal.timeout(5_000) });
      const body = (await res.json()) as { closed?: number };
      this.#log.info({ endpoint: e.id, closed: body.closed }, 'drain deadline reached: backend closed its sessions with 1001');
      return body.closed ?? 0;
    } catch (err) {
      this.#log.warn({ endpoint: e.id, err: (err as Error).message }, 'could not ask the backend to close its sessions');
      return 0;
    }
  }
}
