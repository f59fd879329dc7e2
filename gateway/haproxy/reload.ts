import type { Logger } from 'pino';
import { logger } from '../../lib/log.js';
import type { HaproxyDriver } from './runtime-api.js';
import type { HaproxyFront } from './front.js';

import type { Generation, HotRestartEngine, RestartResult } from '../core/hot-restart.js';

// HAProxy's hot restart: master-worker reload (see core/hot-restart.ts for the shape both fronts share).

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
