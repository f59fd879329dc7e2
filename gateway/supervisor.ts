import { readFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { ChildProcessError, PortInUseError, TimeoutError } from '../lib/errors.js';

// Child processes (backends, HAProxy) with their output turned into log lines and a stop that
// always ends: SIGTERM, then SIGKILL after a grace period.

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

/** Poll `check` until it returns true. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new TimeoutError(what, timeoutMs);
}

export function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Fail fast when a port is taken. HAProxy binds with SO_REUSEPORT, so a stale HAProxy on the same
 * port would silently share it and take a random share of the connections.
 */
export async function assertPortFree(host: string, port: number, who: string): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new PortInUseError(host, port, who) : err),
    );
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/**
 * A port the OS considers free right now (for tests and ephemeral stacks). It is picked below the
 * kernel's range for outgoing connections (ip_local_port_range, 32768+ by default), not by
 * listen(0): listen(0) draws from that same range, so a test opening thousands of client
 * connections could take the "free" port before the stack binds it.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [low, high] = listenPortRange();
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    // A port handed out a moment ago is probably not bound yet: never give it twice (privatePorts
    // asks for eight in a row, and the stack binds them only later).
    if (handedOut.has(port)) continue;
    if (await canListen(host, port)) {
      handedOut.add(port);
      if (handedOut.size > 2_000) handedOut.delete(handedOut.values().next().value!);
      return port;
    }
  }
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Ports freePort returned, oldest first. */
const handedOut = new Set<number>();

/** Ports for freePort: from 20000 up to just below the outgoing-connection range (and above every default port). */
function listenPortRange(): [number, number] {
  let outgoingLow = 32768;
  try {
    outgoingLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || outgoingLow;
  } catch {
    // not Linux: keep the default
  }
  return outgoingLow > 21_000 ? [20_000, outgoingLow - 1] : [outgoingLow + 10_000, 65_000];
}

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, host, () => probe.close(() => resolve(true)));
  });
}

/** Every port a stack binds, each free right now: a stack that never collides with `npm start` or another run. */
export async function privatePorts(backends = 3): Promise<{
  frontPort: number;
  frontTlsPort: number;
  haproxyStatsPort: number;
  adminPort: number;
  redisPort: number;
  xdsPort: number;
  backendPorts: number[];
}> {
  return {
    frontPort: await freePort(),
    frontTlsPort: await freePort(),
    haproxyStatsPort: await freePort(),
    adminPort: await freePort(),
    redisPort: await freePort(),
    xdsPort: await freePort(),
    backendPorts: await Promise.all(Array.from({ length: backends }, () => freePort())),
  };
}
