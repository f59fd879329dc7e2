import type { Logger } from 'pino';
import { logger } from '../lib/log.js';
import type { HaproxyDriver } from './haproxy-driver.js';
import type { HaproxyFront } from './haproxy.js';

// Hot restart, one interface for both engines. A restart starts a new generation that takes the
// listeners; the old generation stops accepting, tells HTTP/2 clients GOAWAY(NO_ERROR), and keeps
// serving the sessions it holds until they close or its deadline (HAProxy `hard-stop-after`, Envoy
// `--parent-shutdown-time-s`) passes.

export interface Generation {
  generation: number;
  pid: number;
  /** The generation taking new connections. */
  current: boolean;
  /** WebSocket sessions (streams) it still carries; null when it could not be asked. */
  sessions: number | null;
  /** Client TCP connections it still holds. */
  connections: number | null;
}

export interface RestartResult {
  engine: 'haproxy' | 'envoy';
  generation: number;
  oldPids: number[];
  newPids: number[];
  durationMs: number;
}

export interface HotRestartEngine {
  readonly engine: 'haproxy' | 'envoy';
  restart(): Promise<RestartResult>;
  generations(): Promise<Generation[]>;
}

/** HAProxy master-worker: `reload` on the master CLI; each worker is a generation. */
export class HaproxyHotRestart implements HotRestartEngine {
  readonly engine = 'haproxy' as const;
  readonly #front: HaproxyFront;
  readonly #driver: HaproxyDriver;
  readonly #log: Logger;
  #restarting: Promise<RestartResult> | undefined;

  constructor(front: HaproxyFront, driver: HaproxyDriver, log: Logger = logger('hot-restart')) {
    this.#front = front;
    this.#driver = driver;
    this.#log = log;
  }

  /** Concurrent calls share one restart: two overlapping reloads would only confuse the timeline. */
  restart(): Promise<RestartResult> {
    return (this.#restarting ??= this.#restart().finally(() => (this.#restarting = undefined)));
  }

  async #restart(): Promise<RestartResult> {
    const started = performance.now();
    const before = await this.#front.workers();
    // The driver re-renders the config from the registry, has HAProxy check it, reloads, and
    // re-applies drain/maint states; a config HAProxy rejects throws before anything changes.
    await this.#driver.reload();
    const after = await this.#front.workers();
    const oldPids = before.map((w) => w.pid);
    const newPids = after.filter((w) => !oldPids.includes(w.pid)).map((w) => w.pid);
    const result: RestartResult = {
      engine: 'haproxy',
      generation: await this.#currentGeneration(),
      oldPids,
      newPids,
      durationMs: Math.round(performance.now() - started),
    };
    this.#log.info(result, 'hot restart: new HAProxy worker took the listeners; old workers drain');
    return result;
  }

  async #currentGeneration(): Promise<number> {
    return (await this.#front.masterReloads()) + 1;
  }

  async generations(): Promise<Generation[]> {
    const [workers, reloads] = await Promise.all([this.#front.workers(), this.#front.masterReloads()]);
    return Promise.all(
      workers.map(async (w) => {
        const [sessions, connections] = await Promise.all([this.#front.workerSessions(w.pid), this.#front.workerConnections(w.pid)]);
        // A worker that has lived through `reloads` reloads was born in generation total - reloads.
        return { generation: reloads - w.reloads + 1, pid: w.pid, current: w.reloads === 0, sessions, connections };
      }),
    );
  }
}
