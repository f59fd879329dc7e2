import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { ChildProcessError } from '../../lib/errors.js';

// Child processes (backends, HAProxy) with their output turned into log lines and a stop that
// always ends: SIGTERM, then SIGKILL after a grace period; and, for backends, kept running: started
// again after a crash (RestartingChild).

export interface ChildSpec {
  name: string;
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  log: Logger;
  /** 'inherit' lets a child that logs with pino write straight to our stdout. */
  output: 'inherit' | 'lines';
  onStdoutLine?: (line: string) => void;
  onStderrLine?: (line: string) => void;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class Supervised {
  readonly name: string;
  readonly #child: ChildProcess;
  readonly #log: Logger;
  readonly exited: Promise<Exit>;
  #stopping = false;

  constructor(spec: ChildSpec) {
    this.name = spec.name;
    this.#log = spec.log;
    this.#child = spawn(spec.command, spec.args, {
      env: spec.env ?? process.env,
      stdio: spec.output === 'inherit' ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
    });
    if (spec.output === 'lines') {
      createInterface({ input: this.#child.stdout! }).on('line', (l) => spec.onStdoutLine?.(l));
      createInterface({ input: this.#child.stderr! }).on('line', (l) => spec.onStderrLine?.(l));
    }
    this.exited = new Promise<Exit>((resolve) => {
      this.#child.once('error', (err) => {
        this.#log.error({ err: err.message }, `${spec.name} could not be started`);
        resolve({ code: -1, signal: null });
      });
      this.#child.once('exit', (code, signal) => {
        const unexpected = !this.#stopping;
        this.#log[unexpected ? 'error' : 'info']({ code, signal, pid: this.#child.pid }, `${spec.name} exited${unexpected ? ' unexpectedly' : ''}`);
        resolve({ code, signal });
      });
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** True once stop() or a stopping signal() was called: its exit is then expected. */
  get stopRequested(): boolean {
    return this.#stopping;
  }

  /** Send a signal; a stopping signal makes the coming exit expected (logged at info, not error). */
  signal(sig: NodeJS.Signals): void {
    if (sig === 'SIGTERM' || sig === 'SIGINT' || sig === 'SIGKILL') this.#stopping = true;
    if (this.running) this.#child.kill(sig);
  }

  /** SIGTERM (or `sig`), then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs: number, sig: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    this.#stopping = true;
    if (!this.running) return this.exited;
    this.#child.kill(sig);
    const timer = setTimeout(() => {
      this.#log.warn({ graceMs }, `${this.name} did not stop in time: SIGKILL`);
      this.#child.kill('SIGKILL');
    }, graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  /** Reject when the child exits before `ready` resolves: a crash at start-up must not look like a timeout. */
  async whileRunning<T>(ready: Promise<T>): Promise<T> {
    return Promise.race([
      ready,
      this.exited.then((exit) => {
        throw new ChildProcessError(this.name, `exited during start-up (code ${exit.code}, signal ${exit.signal}); see its log lines above`);
      }),
    ]);
  }
}

/** How a child that died on its own is started again. */
export interface RestartPolicy {
  /** Wait before the first restart; doubled after each restart that did not stay up. */
  initialDelayMs: number;
  maxDelayMs: number;
  /** A child up this long counts as stable again: its next crash waits initialDelayMs. */
  stableAfterMs: number;
  /** SIGTERM → SIGKILL grace for a restarted child that runs but never gets ready. */
  stopGraceMs: number;
}

const DEFAULT_RESTART_POLICY: Readonly<RestartPolicy> = Object.freeze({
  initialDelayMs: 250,
  maxDelayMs: 5_000,
  stableAfterMs: 10_000,
  stopGraceMs: 5_000,
});

export interface RestartEvent {
  name: string;
  /** The exit that was answered with a restart. */
  exit: Exit;
  previousPid: number | undefined;
  pid: number | undefined;
  /** Restarts of this child so far, this one included. */
  restarts: number;
  /** From that exit until the new child was ready. */
  downMs: number;
}

/**
 * Signals that ask a process to stop rather than kill it (Ctrl-C reaches the whole process group,
 * an init system's stop may too): a child that exits on one of them was stopped, not crashed, as
 * with systemd's Restart=on-failure.
 */
const CLEAN_STOP_SIGNALS: ReadonlySet<string> = new Set(['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGPIPE']);

/** A crash: not asked for by us, and not a clean exit (code 0, or a stop signal the child did not handle). */
function isCrash(child: Supervised, exit: Exit): boolean {
  if (child.stopRequested) return false;
  if (exit.signal !== null) return !CLEAN_STOP_SIGNALS.has(exit.signal);
  return exit.code !== 0;
}

export interface RestartingChildOptions {
  name: string;
  /** Spawn a fresh child (the same command each time). */
  spawn: () => Supervised;
  /** Resolves once the child serves (e.g. its health check passes); rejects if it never does. */
  ready: (child: Supervised) => Promise<unknown>;
  log: Logger;
  policy?: Partial<RestartPolicy>;
  /** Consulted before each restart: false while the owner is shutting down, so a crash then is not answered with a new child. */
  mayRestart?: () => boolean;
}

/**
 * A child kept running: when it crashes (a fault, the OOM killer, SIGKILL from outside) it is
 * started again after an exponential backoff, until stop(). A child that fails its first start is
 * an error for the caller instead: nothing was serving yet, and a bad config would only loop.
 * Events: 'restarted' (RestartEvent), once a restarted child is ready.
 */
export class RestartingChild extends EventEmitter {
  readonly name: string;
  readonly #options: RestartingChildOptions;
  readonly #policy: RestartPolicy;
  readonly #log: Logger;
  #child: Supervised;
  #startedAt = Date.now();
  #delayMs: number;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #restarts = 0;
  /** The crash being recovered from, until a new child is ready. */
  #down: { exit: Exit; pid: number | undefined; at: number } | undefined;

  /** Spawn the child and wait until it is ready; a failure is thrown (and the child stopped), not retried. */
  static async start(options: RestartingChildOptions): Promise<RestartingChild> {
    const child = options.spawn();
    try {
      await child.whileRunning(options.ready(child));
    } catch (err) {
      await child.stop({ ...DEFAULT_RESTART_POLICY, ...options.policy }.stopGraceMs);
      throw err;
    }
    return new RestartingChild(options, child);
  }

  private constructor(options: RestartingChildOptions, child: Supervised) {
    super();
    this.name = options.name;
    this.#options = options;
    this.#policy = { ...DEFAULT_RESTART_POLICY, ...options.policy };
    this.#log = options.log;
    this.#delayMs = this.#policy.initialDelayMs;
    this.#child = child;
    this.#watch(child);
  }

  /** The current child: a new one after each restart. */
  get child(): Supervised {
    return this.#child;
  }

  get restarts(): number {
    return this.#restarts;
  }

  /** No more restarts; stop the current child (see Supervised.stop). */
  async stop(graceMs: number, sig: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    return this.#child.stop(graceMs, sig);
  }

  #mayRestart(): boolean {
    return !this.#stopped && (this.#options.mayRestart?.() ?? true);
  }

  #watch(child: Supervised): void {
    void child.exited.then((exit) => {
      if (child !== this.#child || !isCrash(child, exit) || !this.#mayRestart()) return;
      this.#down ??= { exit, pid: child.pid, at: Date.now() };
      this.#schedule();
    });
  }

  #schedule(): void {
    if (Date.now() - this.#startedAt >= this.#policy.stableAfterMs) this.#delayMs = this.#policy.initialDelayMs;
    const delayMs = this.#delayMs;
    this.#delayMs = Math.min(delayMs * 2, this.#policy.maxDelayMs);
    this.#log.warn({ exit: this.#down?.exit, delayMs, restarts: this.#restarts }, `${this.name}: restarting in ${delayMs} ms`);
    this.#timer = setTimeout(() => void this.#restart(), delayMs);
  }

  async #restart(): Promise<void> {
    if (!this.#mayRestart()) return;
    const child = this.#options.spawn();
    this.#child = child;
    this.#startedAt = Date.now();
    // A crash during start-up comes back through here and schedules the next try, one step slower.
    this.#watch(child);
    try {
      await child.whileRunning(this.#options.ready(child));
    } catch (err) {
      if (!child.running || !this.#mayRestart()) return;
      this.#log.error({ err: (err as Error).message, pid: child.pid }, `${this.name}: restarted but never ready; replacing it`);
      await child.stop(this.#policy.stopGraceMs);
      if (child === this.#child && this.#mayRestart()) this.#schedule();
      return;
    }
    if (!this.#mayRestart() || child !== this.#child) return;
    const down = this.#down!;
    this.#down = undefined;
    this.#restarts++;
    const event: RestartEvent = { name: this.name, exit: down.exit, previousPid: down.pid, pid: child.pid, restarts: this.#restarts, downMs: Date.now() - down.at };
    this.#log.info(event, `${this.name} restarted`);
    this.emit('restarted', event);
  }
}
