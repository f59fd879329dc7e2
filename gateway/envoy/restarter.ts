import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { GatewayError, MissingToolError, TimeoutError } from '../../lib/errors.js';
import { logger } from '../../lib/log.js';
import { EnvoyAdminError, readAdminStats } from './stats.js';
import type { Generation, HotRestartEngine, RestartResult } from '../core/hot-restart.js';
import type { Exit } from '../core/supervisor.js';

// Envoy hot-restart restarter: the parent process that Envoy's hot restart expects (Envoy ships a
// Python one, restarter/hot-restarter.py; this is a TypeScript implementation of the same process
// contract, used as the Envoy container's entrypoint and for a local `envoy` binary).
//
// The contract, from Envoy's docs and its reference restarter:
// - Every Envoy it starts gets `--restart-epoch N` (0, 1, 2, … one more per restart) and the SAME
//   `--base-id` (shared memory and domain socket names derive from it), plus `--drain-time-s` and
//   `--parent-shutdown-time-s`. RESTART_EPOCH=N is also set in the environment, as the Python one does.
// - A restart starts epoch N+1 and does nothing else: the new Envoy initializes, takes the listen
//   sockets from epoch N over a unix domain socket, tells N to drain, and after
//   --parent-shutdown-time-s tells N to exit. The old epoch then exits with code 0 by itself.
// - A child that exits with code 0 is fine (that is how old epochs leave). A child that exits
//   non-zero or is killed by a signal is a failure: every other child is stopped and the restarter
//   ends non-zero, so whatever runs it (Docker, systemd, runit) restarts the whole thing.
// - SIGTERM/SIGINT: SIGTERM to every child, wait, SIGKILL what is left; exit 0 if all left in time.
//   SIGUSR1 (log reopen) is forwarded to every child. When the last child has gone, the restarter ends.
//
// Choices this implementation adds (see docs/hot-restart-envoy.md):
// - A restart requested while the newest epoch is still initializing is QUEUED, not forked: Envoy
//   refuses to start while another epoch holds the "initializing" flag in shared memory ("previous
//   envoy process is still initializing", exit 1), and that non-zero exit would take the whole front
//   down. Any number of requests arriving meanwhile share ONE queued restart, which runs as soon as
//   the newest epoch is ready (a restart re-reads the config, so one later restart covers them all).
// - Before forking epoch N+1 the config is checked with `envoy --mode validate` (no hot-restart
//   side effects, per Envoy's docs); a rejected config refuses the restart and leaves the running
//   epochs alone, where forking it would have crashed the new epoch and stopped everything.
// - A binary that cannot be spawned at restart time refuses that restart (nothing was started, so
//   nothing is torn down); at start-up it ends the restarter with code 1.

/** Flags the restarter sets itself; passing them through would break the epoch bookkeeping. */
const RESTARTER_OWNED_FLAGS = [
  '--restart-epoch',
  '--base-id',
  '--drain-time-s',
  '--parent-shutdown-time-s',
  '--drain-strategy',
  '--use-dynamic-base-id',
  '--base-id-path',
  '--disable-hot-restart',
  '--mode',
] as const;

export type DrainStrategy = 'gradual' | 'immediate';

/** One live Envoy process. */
export interface EpochInfo {
  epoch: number;
  pid: number;
  /** Date.now() when it was spawned. */
  startedAt: number;
  /** It finished initializing (see `isReady`); until then no newer epoch is forked. */
  ready: boolean;
  /** Date.now() when it was found ready. */
  readyAt?: number;
}

export interface LiveEpoch extends EpochInfo {
  /** The epoch holding the listeners: the newest ready one (or the newest, before any is ready). */
  current: boolean;
}

/** Resolves true once `epoch` has finished initializing. Errors count as "not yet". */
export type ReadinessCheck = (epoch: EpochInfo) => Promise<boolean>;

export interface EnvoyRestartResult extends RestartResult {
  engine: 'envoy';
  /** Envoy's --restart-epoch of the new process; `generation` is epoch + 1 (generations count from 1, as for HAProxy). */
  epoch: number;
}

export interface EnvoyRestarterOptions {
  /** The Envoy binary (a path, or a name looked up on PATH). */
  envoyBin: string;
  /** Passed to every epoch unchanged, before the restarter's own flags (e.g. `-c envoy.yaml --log-level info`). */
  args?: readonly string[];
  baseId: number;
  drainTimeS: number;
  parentShutdownTimeS: number;
  /** Omitted from argv when unset (Envoy's default is `gradual`). */
  drainStrategy?: DrainStrategy;
  /** When an epoch counts as initialized. Default: alive for 5 s (`graceReadiness(5000)`); prefer `workerThreadsReadiness()` for a real Envoy. */
  isReady?: ReadinessCheck;
  readyPollMs?: number;
  /** restart()/start() reject after this long without readiness; the epoch keeps running and stays "initializing". */
  readyTimeoutMs?: number;
  /** Run `envoy <args> --mode validate` before each restart (default true). */
  validateBeforeRestart?: boolean;
  validateTimeoutMs?: number;
  /** After SIGTERM, how long children get before SIGKILL (Python restarter: 30 s). */
  termWaitMs?: number;
  /** Environment of every child (RESTART_EPOCH is added). Default: this process's. */
  env?: NodeJS.ProcessEnv;
  /** Envoy's stdout/stderr: 'inherit' (default; container logs) or 'ignore'. */
  output?: 'inherit' | 'ignore';
  log?: Logger;
}

/** The restarter was given arguments it cannot work with. */
export class RestarterUsageError extends GatewayError {
  constructor(message: string) {
    super('GW_ERR_RESTARTER_USAGE', message);
  }
}

/** `envoy --mode validate` rejected the config; no new epoch was started. */
export class EnvoyConfigRejectedError extends GatewayError {
  readonly output: string;
  constructor(output: string, exit: Exit) {
    const detail = output.trim().split('\n').slice(-15).join('\n');
    super(
      'GW_ERR_ENVOY_CONFIG_REJECTED',
      `envoy --mode validate rejected the config (code ${exit.code}, signal ${exit.signal}); the running epochs keep serving:\n${detail}`,
    );
    this.output = output;
  }
}

/** The binary on disk now reports another `--hot-restart-version` than the running epochs: the two could not share their hot-restart state, so no epoch is forked. */
export class HotRestartVersionMismatchError extends GatewayError {
  constructor(running: string, onDisk: string, bin: string) {
    super(
      'GW_ERR_ENVOY_HOT_RESTART_VERSION',
      `${bin} now reports hot restart version ${onDisk}, the running epochs ${running}: a hot restart across them is impossible, so it was refused and the running epoch keeps serving (stop and start the front to change binaries)`,
    );
  }
}

/**
 * A restart while an older epoch still drains: Envoy keeps two epochs at most (once the new one is
 * up, its parent tells ITS parent to exit at once — measured with 1.40), so the draining epoch and
 * every session it holds would be cut before --parent-shutdown-time-s. Refused instead.
 */
export class EnvoyEpochDrainingError extends GatewayError {
  constructor(epoch: number, pid: number, untilMs: number | undefined) {
    const when = untilMs === undefined ? 'when its sessions are gone' : `by ${new Date(untilMs).toISOString()} (--parent-shutdown-time-s)`;
    super(
      'GW_ERR_ENVOY_EPOCH_DRAINING',
      `Envoy epoch ${epoch} (pid ${pid}) still drains the sessions of the previous hot restart and exits ${when}; Envoy keeps two epochs at most, so another restart now would cut them. Retry after that (a shorter hardStopAfterS shortens the wait)`,
    );
  }
}

/** An epoch exited before it was ready. */
export class EnvoyEpochExitedError extends GatewayError {
  constructor(epoch: number, pid: number, exit: Exit) {
    super('GW_ERR_ENVOY_EPOCH_EXITED', `Envoy epoch ${epoch} (pid ${pid}) exited before it was ready (code ${exit.code}, signal ${exit.signal})`);
  }
}

/** The restarter is stopping or has stopped; it starts nothing any more. */
export class RestarterStoppedError extends GatewayError {
  constructor(what: string) {
    super('GW_ERR_RESTARTER_STOPPED', `${what}: the Envoy restarter is stopping`);
  }
}

/** argv of one epoch: pass-through args, then the hot-restart flags. */
function envoyEpochArgs(
  opts: Pick<EnvoyRestarterOptions, 'args' | 'baseId' | 'drainTimeS' | 'parentShutdownTimeS' | 'drainStrategy'>,
  epoch: number,
): string[] {
  return [
    ...(opts.args ?? []),
    '--restart-epoch', String(epoch),
    '--base-id', String(opts.baseId),
    '--drain-time-s', String(opts.drainTimeS),
    '--parent-shutdown-time-s', String(opts.parentShutdownTimeS),
    ...(opts.drainStrategy ? ['--drain-strategy', opts.drainStrategy] : []),
  ];
}

/** Ready once it has stayed alive for `ms` (for when there is no admin API to ask). */
export function graceReadiness(ms: number): ReadinessCheck {
  return async (e) => Date.now() - e.startedAt >= ms;
}

/**
 * Ready once THIS epoch's process runs its worker threads (`wrk:worker_N` in /proc/<pid>/task/<tid>/comm):
 * Envoy starts them when its init is done — the moment it also asks the parent to drain. The admin
 * API cannot say this: its socket is shared between epochs during a hot restart (either may answer),
 * and the `server.state` gauge is only refreshed at the stats flush (5 s), reading LIVE (0) while
 * still PRE_INITIALIZING.
 */
export function workerThreadsReadiness(procRoot = '/proc'): ReadinessCheck {
  return async (e) => {
    const taskDir = path.join(procRoot, String(e.pid), 'task');
    const tasks = await readdir(taskDir).catch(() => [] as string[]);
    for (const t of tasks) {
      const comm = await readFile(path.join(taskDir, t, 'comm'), 'utf8').catch(() => '');
      if (comm.startsWith('wrk:')) return true;
    }
    return false;
  };
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Child {
  info: EpochInfo;
  proc: ChildProcess;
  exited: Promise<Exit>;
  exit?: Exit;
}

export class EnvoyRestarter {
  readonly #opts: Required<Omit<EnvoyRestarterOptions, 'drainStrategy' | 'log'>> & Pick<EnvoyRestarterOptions, 'drainStrategy'>;
  readonly #log: Logger;
  readonly #children = new Map<number, Child>();
  readonly #done = deferred<number>();
  #nextEpoch = 0;
  #started = false;
  #stopping = false;
  #finished = false;
  #shutdown: Promise<number> | undefined;
  /** The restart (or start) under way: validation → spawn → ready. Cleared once it settles. */
  #inFlight: Promise<EnvoyRestartResult> | undefined;
  /** The one restart queued behind #inFlight; every request arriving meanwhile shares it. */
  #pending: Deferred<EnvoyRestartResult> | undefined;
  #validator: ChildProcess | undefined;
  /** What `--hot-restart-version` said when epoch 0 started (undefined: the binary does not say). */
  #hotRestartVersion: string | undefined;
  readonly #killAllSync = () => {
    for (const c of this.#children.values()) {
      try {
        c.proc.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  };

  /** Resolves with the exit code the restarter's process should end with, once every child is gone. */
  readonly done: Promise<number> = this.#done.promise;

  constructor(options: EnvoyRestarterOptions) {
    const args = options.args ?? [];
    for (const a of args) {
      const owned = RESTARTER_OWNED_FLAGS.find((f) => a === f || a.startsWith(`${f}=`));
      if (owned) throw new RestarterUsageError(`${owned} is set by the restarter; remove it from the Envoy arguments`);
    }
    for (const [name, v] of [['baseId', options.baseId], ['drainTimeS', options.drainTimeS], ['parentShutdownTimeS', options.parentShutdownTimeS]] as const) {
      if (!Number.isInteger(v) || v < 0) throw new RestarterUsageError(`${name} must be a non-negative integer, got ${v}`);
    }
    this.#log = options.log ?? logger('envoy-restarter');
    this.#opts = {
      envoyBin: options.envoyBin,
      args,
      baseId: options.baseId,
      drainTimeS: options.drainTimeS,
      parentShutdownTimeS: options.parentShutdownTimeS,
      drainStrategy: options.drainStrategy,
      isReady: options.isReady ?? graceReadiness(5_000),
      readyPollMs: options.readyPollMs ?? 100,
      readyTimeoutMs: options.readyTimeoutMs ?? 60_000,
      validateBeforeRestart: options.validateBeforeRestart ?? true,
      validateTimeoutMs: options.validateTimeoutMs ?? 60_000,
      termWaitMs: options.termWaitMs ?? 30_000,
      env: options.env ?? process.env,
      output: options.output ?? 'inherit',
    };
    if (this.#opts.drainTimeS >= this.#opts.parentShutdownTimeS) {
      this.#log.warn(
        { drainTimeS: this.#opts.drainTimeS, parentShutdownTimeS: this.#opts.parentShutdownTimeS },
        'drain time is not shorter than the parent shutdown time: old epochs are stopped before their drain sequence ends',
      );
    }
  }

  /** argv of `epoch` (what the restarter passes to Envoy). */
  argsFor(epoch: number): string[] {
    return envoyEpochArgs(this.#opts, epoch);
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /** Live epochs, oldest first. */
  epochs(): LiveEpoch[] {
    const live = [...this.#children.values()].map((c) => ({ ...c.info })).sort((a, b) => a.epoch - b.epoch);
    const ready = live.filter((e) => e.ready);
    const current = (ready.length > 0 ? ready : live).at(-1)?.epoch;
    return live.map((e) => ({ ...e, current: e.epoch === current }));
  }

  /** Start epoch 0; resolves once it is ready. A failure to spawn ends the restarter (code 1). */
  async start(): Promise<EnvoyRestartResult> {
    if (this.#started) throw new RestarterUsageError('start() was already called');
    this.#started = true;
    process.on('exit', this.#killAllSync);
    this.#log.info(
      { envoyBin: this.#opts.envoyBin, baseId: this.#opts.baseId, drainTimeS: this.#opts.drainTimeS, parentShutdownTimeS: this.#opts.parentShutdownTimeS },
      'starting Envoy epoch 0',
    );
    try {
      return await this.#run(false);
    } catch (err) {
      if (this.#children.size === 0 && !this.#stopping) void this.#stopAll(1, 'epoch 0 could not be started');
      throw err;
    }
  }

  /**
   * Start the next epoch; resolves once it is ready. While an epoch is still initializing the
   * request is queued (see the top of this file); concurrent requests share the queued restart.
   */
  restart(): Promise<EnvoyRestartResult> {
    if (!this.#started) return Promise.reject(new RestarterUsageError('restart() before start()'));
    if (this.#stopping) return Promise.reject(new RestarterStoppedError('restart refused'));
    const ready = [...this.#children.values()].map((c) => c.info).filter((e) => e.ready).sort((a, b) => a.epoch - b.epoch);
    const draining = ready.length > 1 ? ready[0] : undefined;
    if (draining && !this.#inFlight) {
      const newest = ready.at(-1)!;
      const until = newest.readyAt === undefined ? undefined : newest.readyAt + this.#opts.parentShutdownTimeS * 1000;
      const err = new EnvoyEpochDrainingError(draining.epoch, draining.pid, until);
      this.#log.warn({ epoch: draining.epoch, envoyPid: draining.pid }, err.message);
      return Promise.reject(err);
    }
    if (this.#pending) {
      this.#log.info('restart requested while another is queued: it shares the queued one');
      return this.#pending.promise;
    }
    if (this.#inFlight) {
      const starting = [...this.#children.values()].find((c) => !c.info.ready);
      this.#log.info(
        { initializingEpoch: starting?.info.epoch ?? null },
        'restart requested while another is under way: queued until the newest epoch is ready (Envoy refuses a new epoch before that)',
      );
      this.#pending = deferred();
      return this.#pending.promise;
    }
    return this.#run(true);
  }

  /** Forward a signal (e.g. SIGUSR1: reopen logs) to every live epoch. */
  signalAll(sig: NodeJS.Signals): void {
    for (const c of this.#children.values()) {
      this.#log.info({ epoch: c.info.epoch, envoyPid: c.info.pid, signal: sig }, 'forwarding signal');
      c.proc.kill(sig);
    }
  }

  /** SIGTERM every epoch, SIGKILL after termWaitMs; resolves with the exit code (0, or 1 if any had to be killed). */
  stop(reason = 'stop requested'): Promise<number> {
    return this.#stopAll(0, reason);
  }

  #run(validate: boolean): Promise<EnvoyRestartResult> {
    const inner = this.#startEpoch(validate);
    this.#inFlight = inner;
    const settle = () => {
      this.#inFlight = undefined;
      const next = this.#pending;
      this.#pending = undefined;
      if (!next) return;
      if (this.#stopping) next.reject(new RestarterStoppedError('queued restart dropped'));
      else this.#run(true).then(next.resolve, next.reject);
    };
    inner.then(settle, settle);
    // The caller's answer has a deadline; the epoch itself keeps "initializing" (and keeps newer
    // epochs queued) until it is ready or gone.
    return new Promise<EnvoyRestartResult>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new TimeoutError('the new Envoy epoch becoming ready (it keeps running; newer epochs stay queued until it is)', this.#opts.readyTimeoutMs)),
        this.#opts.readyTimeoutMs,
      );
      inner.then(
        (r) => (clearTimeout(timer), resolve(r)),
        (e) => (clearTimeout(timer), reject(e)),
      );
    });
  }

  async #startEpoch(validate: boolean): Promise<EnvoyRestartResult> {
    const started = performance.now();
    const oldPids = [...this.#children.values()].map((c) => c.info.pid);
    if (validate && this.#opts.validateBeforeRestart) await this.#validate();
    await this.#checkHotRestartVersion(validate);
    if (this.#stopping) throw new RestarterStoppedError('restart dropped');
    const child = await this.#spawn();
    await this.#waitReady(child);
    const result: EnvoyRestartResult = {
      engine: 'envoy',
      generation: child.info.epoch + 1,
      epoch: child.info.epoch,
      oldPids,
      newPids: [child.info.pid],
      durationMs: Math.round(performance.now() - started),
    };
    this.#log.info(result, child.info.epoch === 0 ? 'Envoy epoch 0 ready' : `Envoy epoch ${child.info.epoch} ready; older epochs drain and exit after --parent-shutdown-time-s`);
    return result;
  }

  /**
   * Epoch 0 records what the binary reports; a restart compares the binary on disk with it (a
   * package upgrade may have replaced the file). A binary that does not answer (a stand-in) is not
   * compared.
   */
  async #checkHotRestartVersion(isRestart: boolean): Promise<void> {
    const read = () =>
      new Promise<string | undefined>((resolve) => {
        // Envoy prints it on stderr.
        execFile(this.#opts.envoyBin, ['--hot-restart-version'], { timeout: 30_000, env: this.#opts.env }, (err, stdout, stderr) =>
          resolve(err ? undefined : `${stdout}${stderr}`.trim() || undefined),
        );
      });
    if (!isRestart) {
      this.#hotRestartVersion = await read();
      return;
    }
    if (this.#hotRestartVersion === undefined) return;
    const onDisk = await read();
    if (onDisk !== this.#hotRestartVersion) {
      const err = new HotRestartVersionMismatchError(this.#hotRestartVersion, onDisk ?? '(none)', this.#opts.envoyBin);
      this.#log.error({ running: this.#hotRestartVersion, onDisk }, err.message);
      throw err;
    }
  }

  async #validate(): Promise<void> {
    const args = [...this.#opts.args, '--mode', 'validate'];
    const proc = spawn(this.#opts.envoyBin, args, { env: this.#opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#validator = proc;
    let output = '';
    const collect = (b: Buffer) => {
      if (output.length < 64 * 1024) output += b.toString('utf8');
    };
    proc.stdout!.on('data', collect);
    proc.stderr!.on('data', collect);
    const exit = await new Promise<Exit | Error>((resolve) => {
      const timer = setTimeout(() => proc.kill('SIGKILL'), this.#opts.validateTimeoutMs);
      proc.once('error', (err) => (clearTimeout(timer), resolve(err)));
      proc.once('close', (code, signal) => (clearTimeout(timer), resolve({ code, signal })));
    });
    this.#validator = undefined;
    if (exit instanceof Error) throw this.#spawnError(exit);
    if (this.#stopping) throw new RestarterStoppedError('restart dropped');
    if (exit.code !== 0) {
      const err = new EnvoyConfigRejectedError(output, exit);
      this.#log.error({ code: exit.code, signal: exit.signal, output: output.trim().slice(-2000) }, 'config rejected by envoy --mode validate: restart refused');
      throw err;
    }
    this.#log.info('config accepted by envoy --mode validate');
  }

  #spawnError(err: Error): GatewayError {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return new MissingToolError(this.#opts.envoyBin, 'install Envoy (https://www.envoyproxy.io/docs/envoy/latest/start/install) or pass --envoy-bin');
    }
    return new RestarterUsageError(`cannot run ${this.#opts.envoyBin}: ${err.message}`);
  }

  async #spawn(): Promise<Child> {
    const epoch = this.#nextEpoch;
    const args = this.argsFor(epoch);
    const proc = spawn(this.#opts.envoyBin, args, {
      env: { ...this.#opts.env, RESTART_EPOCH: String(epoch) },
      stdio: ['ignore', this.#opts.output, this.#opts.output],
    });
    if (proc.pid === undefined) {
      // Spawning failed; the reason arrives as an 'error' event. No epoch number is used up.
      const err = await new Promise<Error>((resolve) => proc.once('error', resolve));
      throw this.#spawnError(err);
    }
    this.#nextEpoch++;
    const info: EpochInfo = { epoch, pid: proc.pid, startedAt: Date.now(), ready: false };
    const exited = new Promise<Exit>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    const child: Child = { info, proc, exited };
    this.#children.set(epoch, child);
    this.#log.info({ epoch, envoyPid: proc.pid, argv: [this.#opts.envoyBin, ...args] }, `started Envoy epoch ${epoch}`);
    void exited.then((exit) => this.#onExit(child, exit));
    return child;
  }

  async #waitReady(child: Child): Promise<void> {
    for (;;) {
      if (child.exit) throw new EnvoyEpochExitedError(child.info.epoch, child.info.pid, child.exit);
      if (this.#stopping) throw new RestarterStoppedError(`epoch ${child.info.epoch} never became ready`);
      if (await this.#opts.isReady({ ...child.info }).catch(() => false)) {
        // Re-check: an answer may arrive after the child died.
        if (child.exit) throw new EnvoyEpochExitedError(child.info.epoch, child.info.pid, child.exit);
        child.info.ready = true;
        child.info.readyAt = Date.now();
        return;
      }
      await Promise.race([sleep(this.#opts.readyPollMs), child.exited]);
    }
  }

  #onExit(child: Child, exit: Exit): void {
    child.exit = exit;
    const { epoch, pid } = child.info;
    const wasNewest = Math.max(...this.#children.keys()) === epoch;
    this.#children.delete(epoch);
    if (this.#stopping) {
      this.#log.info({ epoch, envoyPid: pid, ...exit }, `Envoy epoch ${epoch} exited`);
      return;
    }
    if (exit.code === 0) {
      if (!wasNewest) {
        this.#log.info({ epoch, envoyPid: pid, ...exit }, `Envoy epoch ${epoch} exited after its drain (parent shutdown)`);
      } else if (this.#children.size > 0) {
        this.#log.warn({ epoch, envoyPid: pid, ...exit }, `newest Envoy epoch ${epoch} exited cleanly while older epochs drain: nothing may be taking new connections`);
      }
      if (this.#children.size === 0) {
        this.#log.warn({ epoch, envoyPid: pid, ...exit }, 'the last Envoy epoch exited cleanly: nothing left to supervise, the restarter ends');
        void this.#stopAll(0, 'no Envoy left');
      }
      return;
    }
    this.#log.error({ epoch, envoyPid: pid, ...exit }, `Envoy epoch ${epoch} exited unexpectedly: stopping every epoch, the restarter ends with code 1`);
    void this.#stopAll(1, `epoch ${epoch} died`);
  }

  #stopAll(code: number, reason: string): Promise<number> {
    this.#shutdown ??= this.#doStop(code, reason);
    return this.#shutdown;
  }

  async #doStop(code: number, reason: string): Promise<number> {
    this.#stopping = true;
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.reject(new RestarterStoppedError('queued restart dropped'));
    this.#validator?.kill('SIGKILL');
    const live = [...this.#children.values()];
    this.#log.info({ reason, epochs: live.map((c) => ({ epoch: c.info.epoch, envoyPid: c.info.pid })) }, 'stopping: SIGTERM to every Envoy epoch');
    for (const c of live) c.proc.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const allGone = Promise.all(live.map((c) => c.exited)).then(() => true);
    const inTime = await Promise.race([allGone, new Promise<false>((r) => (timer = setTimeout(() => r(false), this.#opts.termWaitMs)))]);
    clearTimeout(timer);
    let exitCode = code;
    if (!inTime) {
      const left = live.filter((c) => !c.exit);
      this.#log.warn({ termWaitMs: this.#opts.termWaitMs, envoyPids: left.map((c) => c.info.pid) }, 'epochs still running after the wait: SIGKILL');
      for (const c of left) c.proc.kill('SIGKILL');
      await allGone;
      exitCode = Math.max(code, 1);
    }
    this.#finished = true;
    process.off('exit', this.#killAllSync);
    this.#log.info({ exitCode }, 'every Envoy epoch has exited');
    this.#done.resolve(exitCode);
    return exitCode;
  }

  get finished(): boolean {
    return this.#finished;
  }
}

/** What EnvoyHotRestart drives: a restarter in this process, or one behind its control API (RemoteRestarter). */
export interface EpochSource {
  restart(): Promise<EnvoyRestartResult>;
  epochs(): LiveEpoch[] | Promise<LiveEpoch[]>;
}

export interface EnvoyGeneration extends Generation {
  epoch: number;
  ready: boolean;
}

export interface EnvoyHotRestartOptions {
  /** Envoy's admin API, e.g. http://127.0.0.1:9901; without it sessions/connections are null. */
  adminUrl?: string;
  /** The HttpConnectionManager stat_prefix of the front listener (envoy/*.yaml: `front`). */
  statPrefix?: string;
  fetchTimeoutMs?: number;
}

/**
 * The Envoy engine behind the HotRestartEngine interface, for a restarter running in this process
 * (a local `envoy` binary) or in another one (RemoteRestarter: the Envoy container of docker
 * compose). Each live epoch is a generation (generation = epoch + 1).
 *
 * Sessions/connections come from the admin API (`http.<prefix>.downstream_rq_active`: each
 * WebSocket session is one long-lived request; `http.<prefix>.downstream_cx_active`). Only the
 * newest epoch serves the admin API during a hot restart, and Envoy adds the parent's gauges into
 * the child's while both run, so a per-epoch split does not exist: the numbers are given when one
 * epoch is live, and null for every epoch while several are; `adminTotals()` has the combined numbers.
 */
export class EnvoyHotRestart implements HotRestartEngine {
  readonly engine = 'envoy' as const;
  readonly source: EpochSource;
  readonly #opts: EnvoyHotRestartOptions;

  constructor(source: EpochSource, options: EnvoyHotRestartOptions = {}) {
    this.source = source;
    this.#opts = options;
  }

  restart(): Promise<EnvoyRestartResult> {
    return this.source.restart();
  }

  /** Active sessions and connections over every live epoch, or null without a reachable admin API. */
  async adminTotals(): Promise<{ sessions: number | null; connections: number | null } | null> {
    if (!this.#opts.adminUrl) return null;
    const prefix = (this.#opts.statPrefix ?? 'front').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    try {
      const stats = await readAdminStats(this.#opts.adminUrl, `^http\\.${prefix}\\.downstream_(rq|cx)_active$`, this.#opts.fetchTimeoutMs);
      return {
        sessions: stats.get(`http.${this.#opts.statPrefix ?? 'front'}.downstream_rq_active`) ?? null,
        connections: stats.get(`http.${this.#opts.statPrefix ?? 'front'}.downstream_cx_active`) ?? null,
      };
    } catch {
      return null;
    }
  }

  async generations(): Promise<EnvoyGeneration[]> {
    const live = await this.source.epochs();
    const totals = live.length === 1 ? await this.adminTotals() : null;
    return live.map((e) => ({
      generation: e.epoch + 1,
      epoch: e.epoch,
      pid: e.pid,
      current: e.current,
      ready: e.ready,
      sessions: totals?.sessions ?? null,
      connections: totals?.connections ?? null,
    }));
  }
}

export { EnvoyAdminError, readAdminStats };
