import type { Logger } from 'pino';
import { logger } from '../../lib/log.js';
import { HaproxyCommandError, serverOptions, type HaproxyFront } from './front.js';
import type { Endpoint, EndpointRegistry, RegistryEvent } from '../core/registry.js';

// Makes HAProxy's server list match the registry through the runtime API, without a reload:
//   added    → add server (starts in maintenance) + enable health + enable server (or drain/maint)
//   updated  → set server … state ready|drain|maint, set server … weight
//   removed  → state maint, shutdown sessions, del server
// A reload re-renders the config from the registry, then re-applies every state, so dynamic
// servers and their drain/maint state survive it.

const BACKEND = 'backends';
/** Runtime API answers that mean success; anything else is HAProxy telling us what went wrong. */
const OK = new Set(['', 'New server registered.', 'Server deleted.']);

const RUNTIME_STATE: Record<Endpoint['state'], 'ready' | 'drain' | 'maint'> = { active: 'ready', draining: 'drain', down: 'maint' };

export class HaproxyDriver {
  readonly #front: HaproxyFront;
  readonly #registry: EndpointRegistry;
  readonly #log: Logger;
  /** Runtime commands are applied one at a time, in registry order. */
  #queue: Promise<void> = Promise.resolve();
  /** HAProxy is stopped (stopFront): changes only update the servers the next start renders. */
  #frontStopped = false;
  readonly #onChange = (event: RegistryEvent) => {
    void this.#enqueue(`apply ${event.type} ${event.endpoint.id}`, () => this.#apply(event));
  };

  constructor(front: HaproxyFront, registry: EndpointRegistry, log: Logger = logger('haproxy-driver')) {
    this.#front = front;
    this.#registry = registry;
    this.#log = log;
  }

  start(): void {
    this.#registry.on('change', this.#onChange);
  }

  stop(): void {
    this.#registry.off('change', this.#onChange);
  }

  /** Resolves once every change seen so far is applied. */
  settled(): Promise<void> {
    return this.#queue;
  }

  /** Reload HAProxy with a config rendered from the registry, then re-apply every state. */
  reload(): Promise<void> {
    return this.#enqueue('reload', async () => {
      this.#front.setServers(this.#registry.list());
      await this.#front.reload();
      for (const e of this.#registry.list()) await this.#applyState(e);
    });
  }

  /**
   * Stop HAProxy (master and every worker: client connections drop), after the changes queued so
   * far. Until startFront(), registry changes are kept for the config the start renders.
   */
  stopFront(): Promise<void> {
    return this.#enqueue('stop', async () => {
      this.#frontStopped = true;
      await this.#front.stop();
    });
  }

  /** Start HAProxy again from a config rendered from the registry as it is now, then apply every state. */
  startFront(): Promise<void> {
    return this.#enqueue('start', async () => {
      this.#front.setServers(this.#registry.list());
      await this.#front.start();
      this.#frontStopped = false;
      for (const e of this.#registry.list()) await this.#applyState(e);
    });
  }

  /** Run after everything queued so far; a failure is logged and returned, and the queue moves on. */
  #enqueue(what: string, task: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(task);
    this.#queue = run.catch((err: unknown) => this.#log.error({ err: (err as Error).message }, `HAProxy ${what} failed`));
    return run;
  }

  async #cmd(command: string): Promise<void> {
    const answer = (await this.#front.runtime(command)).trim();
    if (!OK.has(answer)) throw new HaproxyCommandError(command, `refused: ${answer}`);
    this.#log.debug({ command }, 'runtime API');
  }

  async #applyState(e: Endpoint): Promise<void> {
    await this.#cmd(`set server ${BACKEND}/${e.id} weight ${e.weight}`);
    await this.#cmd(`set server ${BACKEND}/${e.id} state ${RUNTIME_STATE[e.state]}`);
  }

  async #apply(event: RegistryEvent): Promise<void> {
    const e = event.endpoint;
    if (this.#frontStopped) {
      this.#front.setServers(this.#registry.list());
      return;
    }
    const name = `${BACKEND}/${e.id}`;
    switch (event.type) {
      case 'added':
        await this.#cmd(`add server ${name} ${e.host}:${e.port} ${serverOptions(this.#front.settings, e.weight)}`);
        await this.#cmd(`enable health ${name}`);
        await this.#applyState(e);
        break;
      case 'updated':
        await this.#applyState(e);
        break;
      case 'removed':
        await this.#cmd(`set server ${name} state maint`);
        await this.#cmd(`shutdown sessions server ${name}`);
        await this.#cmd(`del server ${name}`);
        break;
    }
    // The next reload must render what the registry says now.
    this.#front.setServers(this.#registry.list());
    this.#log.info({ endpoint: e.id, change: event.type, state: e.state, weight: e.weight }, 'applied to HAProxy');
  }
}
