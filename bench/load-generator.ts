import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withoutSecrets } from '../lib/config.js';
import { BenchWorkerError } from './errors.js';
import type { ResultOf, WorkerEvent, WorkerOp, WorkerReply, WorkerRequest, WorkerTarget } from './protocol.js';

// Parent side of a load-generator process (bench/worker.ts): fork it with tsx and a forced-GC hook,
// send one request at a time, relay its events, and always end it.

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker.ts');

export interface LoadGeneratorOptions {
  target: WorkerTarget;
  /** V8 old-space limit (MB): 50,000 sessions need more than the default. */
  maxOldSpaceMb?: number;
  startTimeoutMs?: number;
}

export class LoadGenerator {
  readonly target: WorkerTarget;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  #nextId = 1;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; onEvent?: (e: WorkerEvent) => void }>();
  #exitReason: string | undefined;

  private constructor(child: ChildProcess, target: WorkerTarget) {
    this.#child = child;
    this.target = target;
    this.#exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.#exitReason = `load generator exited (code ${code}, signal ${signal})`;
        for (const p of this.#pending.values()) p.reject(new BenchWorkerError(this.#exitReason));
        this.#pending.clear();
        resolve();
      }),
    );
    child.on('error', () => {}); // a failed send surfaces as the request's timeout or the exit
    child.on('message', (msg: WorkerReply) => {
      if (msg.type === 'ready') return;
      const pending = this.#pending.get(msg.id);
      if (!pending) return;
      if (msg.type === 'event') return pending.onEvent?.(msg);
      this.#pending.delete(msg.id);
      if (msg.ok) pending.resolve(msg.value);
      else pending.reject(new BenchWorkerError(`load generator: ${msg.error.message}`));
    });
  }

  static async start(options: LoadGeneratorOptions): Promise<LoadGenerator> {
    const child = fork(WORKER, [], {
      execArgv: ['--import', 'tsx', '--expose-gc', `--max-old-space-size=${options.maxOldSpaceMb ?? 2048}`],
      // Its logs (warnings only) must not mix with the summary on our stdout.
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
      env: { ...withoutSecrets(process.env), LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', NODE_OPTIONS: '' },
    });
    child.stdout?.pipe(process.stderr);
    const timeoutMs = options.startTimeoutMs ?? 20_000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new BenchWorkerError(`load generator did not start within ${timeoutMs} ms`));
      }, timeoutMs);
      child.on('message', function onReady(msg: WorkerReply) {
        if (msg.type !== 'ready') return;
        clearTimeout(timer);
        child.off('message', onReady);
        resolve();
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new BenchWorkerError(`load generator exited during start-up (code ${code})`));
      });
    });
    const lg = new LoadGenerator(child, options.target);
    await lg.request({ op: 'init', target: options.target }, { timeoutMs: 5_000 });
    return lg;
  }

  get pid(): number {
    return this.#child.pid ?? -1;
  }

  get alive(): boolean {
    return this.#exitReason === undefined;
  }

  request<O extends WorkerOp>(body: O, options: { timeoutMs: number; onEvent?: (e: WorkerEvent) => void }): Promise<ResultOf<O>> {
    if (this.#exitReason) return Promise.reject(new BenchWorkerError(this.#exitReason));
    const id = this.#nextId++;
    return new Promise<ResultOf<O>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        // A worker that missed its deadline is in an unknown state: end it; the next run gets a fresh one.
        this.#child.kill('SIGKILL');
        reject(new BenchWorkerError(`load generator did not finish "${body.op}" within ${options.timeoutMs} ms`));
      }, options.timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as ResultOf<O>);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
        onEvent: options.onEvent,
      });
      this.#child.send({ id, body } satisfies WorkerRequest);
    });
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    try {
      await this.request({ op: 'closeAll' }, { timeoutMs: 15_000 });
    } catch {
      // ends below either way
    }
    if (this.#child.connected) this.#child.disconnect();
    const killer = setTimeout(() => this.#child.kill('SIGKILL'), 3_000);
    await this.#exited;
    clearTimeout(killer);
  }

  kill(): void {
    this.#child.kill('SIGKILL');
  }
}
