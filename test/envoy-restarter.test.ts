import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { envoyBin, envoySkipReason } from './helpers/envoy.js';
import {
  EnvoyConfigRejectedError,
  EnvoyHotRestart,
  EnvoyRestarter,
  RestarterStoppedError,
  RestarterUsageError,
  workerThreadsReadiness,
  HotRestartVersionMismatchError,
  readAdminStats,
  type EnvoyRestarterOptions,
} from '../gateway/envoy/restarter.js';
import { freePort } from '../lib/ports.js';

// Tests of the Envoy hot-restart RESTARTER's process logic (gateway/envoy/restarter.ts and its
// entrypoint gateway/envoy/restarter-main.ts), with real processes. The child it starts here is
// test/helpers/restarter-stand-in-child.mjs, a small node script that records its argv and the
// signals it receives: it is not Envoy and these tests say nothing about Envoy itself. The one
// test that runs the real Envoy is at the bottom and is skipped (with a printed reason) when no
// `envoy` binary is on PATH.

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STAND_IN = path.join(repo, 'test/helpers/restarter-stand-in-child.mjs');
const MAIN = path.join(repo, 'gateway/envoy/restarter-main.ts');

interface StandInRecord {
  event: 'start' | 'validate' | 'signal' | 'exit' | 'crash' | 'parent-shutdown-sent';
  pid: number;
  epoch: number;
  baseId: string | null;
  t: number;
  argv?: string[];
  signal?: string;
  reason?: string;
  restartEpochEnv?: string | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(25);
  }
}

/** The process exists (a reaped child does not; these are reaped by their parent as they exit). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One test's scratch dir and the stand-in's record file. */
class Scene {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'envoy-restarter-test-'));
  readonly logFile = path.join(this.dir, 'stand-in.jsonl');

  records(): StandInRecord[] {
    if (!fs.existsSync(this.logFile)) return [];
    const out: StandInRecord[] = [];
    for (const line of fs.readFileSync(this.logFile, 'utf8').split('\n')) {
      if (!line) continue;
      try {
        out.push(JSON.parse(line) as StandInRecord);
      } catch {
        // a line being written right now
      }
    }
    return out;
  }

  starts(): StandInRecord[] {
    return this.records().filter((r) => r.event === 'start');
  }

  start(epoch: number): StandInRecord | undefined {
    return this.starts().find((r) => r.epoch === epoch);
  }

  async waitStart(epoch: number): Promise<StandInRecord> {
    await waitUntil(() => this.start(epoch) !== undefined, `stand-in epoch ${epoch} started`);
    return this.start(epoch)!;
  }

  signalsOf(pid: number): string[] {
    return this.records().filter((r) => r.pid === pid && r.event === 'signal').map((r) => r.signal!);
  }

  pids(): number[] {
    return [...new Set(this.starts().map((r) => r.pid))];
  }
}

/** The restarter's CLI as its own process: `node --import tsx gateway/envoy/restarter-main.ts …`. */
class Cli {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(flags: string[], passThrough: string[], env: NodeJS.ProcessEnv) {
    this.proc = spawn(process.execPath, ['--import', 'tsx', MAIN, ...flags, '--', ...passThrough], {
      cwd: repo,
      env: { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    const onData = (b: Buffer) => {
      buf += b.toString('utf8');
      const parts = buf.split('\n');
      buf = parts.pop()!;
      this.lines.push(...parts);
    };
    this.proc.stdout!.on('data', onData);
    this.proc.stderr!.on('data', onData);
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  logged(msg: string): boolean {
    return this.lines.some((l) => l.includes(`"msg":"${msg}"`));
  }

  output(): string {
    return this.lines.join('\n');
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function scene(): Scene {
  const s = new Scene();
  cleanups.push(() => {
    for (const pid of s.pids()) if (alive(pid)) process.kill(pid, 'SIGKILL');
    fs.rmSync(s.dir, { recursive: true, force: true });
  });
  return s;
}

function cli(s: Scene, flags: string[], passThrough: string[], env: NodeJS.ProcessEnv = {}): Cli {
  const c = new Cli(flags, [STAND_IN, ...passThrough], { STAND_IN_LOG: s.logFile, ...env });
  cleanups.push(() => {
    if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  });
  return c;
}

function restarter(s: Scene, opts: Partial<EnvoyRestarterOptions> & { env?: NodeJS.ProcessEnv } = {}): EnvoyRestarter {
  const r = new EnvoyRestarter({
    envoyBin: process.execPath,
    args: [STAND_IN, '--log-level', 'info'],
    baseId: 42,
    drainTimeS: 1,
    parentShutdownTimeS: 2,
    // The stand-in's analogue of Envoy being LIVE: it has recorded its start (signal handlers set).
    isReady: async (e) => s.starts().some((x) => x.pid === e.pid),
    readyPollMs: 25,
    termWaitMs: 10_000,
    output: 'ignore',
    ...opts,
    env: { ...process.env, STAND_IN_LOG: s.logFile, ...opts.env },
  });
  cleanups.push(async () => {
    if (!r.finished) await r.stop('test cleanup');
  });
  return r;
}

describe('Envoy restarter CLI (process logic, tested with a stand-in child — not Envoy)', () => {
  it('epoch 0 argv: pass-through args, then --restart-epoch 0 --base-id B --drain-time-s D --parent-shutdown-time-s P; SIGHUP starts epoch 1 with the same base id; SIGTERM stops all, exit 0, no orphans', async () => {
    const s = scene();
    const c = cli(
      s,
      ['--envoy-bin', process.execPath, '--config', '/etc/envoy/front.yaml', '--base-id', '17', '--drain-time-s', '4', '--parent-shutdown-time-s', '9', '--start-grace-ms', '200'],
      ['--log-level', 'info', '--concurrency', '1'],
    );
    const e0 = await s.waitStart(0);
    expect(e0.argv).toEqual([
      '--log-level', 'info', '--concurrency', '1', '-c', '/etc/envoy/front.yaml',
      '--restart-epoch', '0', '--base-id', '17', '--drain-time-s', '4', '--parent-shutdown-time-s', '9',
    ]);
    expect(e0.restartEpochEnv).toBe('0');
    await waitUntil(() => c.logged('Envoy epoch 0 ready'), 'epoch 0 ready');

    c.proc.kill('SIGHUP');
    const e1 = await s.waitStart(1);
    expect(e1.argv).toEqual([
      '--log-level', 'info', '--concurrency', '1', '-c', '/etc/envoy/front.yaml',
      '--restart-epoch', '1', '--base-id', '17', '--drain-time-s', '4', '--parent-shutdown-time-s', '9',
    ]);
    expect(e1.restartEpochEnv).toBe('1');
    // The config was checked before epoch 1 was forked, without the hot-restart flags.
    const validate = s.records().find((r) => r.event === 'validate');
    expect(validate?.argv).toEqual(['--log-level', 'info', '--concurrency', '1', '-c', '/etc/envoy/front.yaml', '--mode', 'validate']);
    expect(validate!.t).toBeLessThanOrEqual(e1.t);
    expect(alive(e0.pid) && alive(e1.pid)).toBe(true);

    c.proc.kill('SIGTERM');
    expect(await c.exited, c.output()).toEqual({ code: 0, signal: null });
    expect(s.signalsOf(e0.pid)).toEqual(['SIGTERM']);
    expect(s.signalsOf(e1.pid)).toEqual(['SIGTERM']);
    // No child got the SIGHUP (the restarter handles it) and none outlived the restarter.
    expect(s.pids()).toHaveLength(2);
    for (const pid of s.pids()) expect(alive(pid), `pid ${pid} still running`).toBe(false);
  });

  it('a child that crashes (exit code 3) makes the restarter SIGTERM the others and exit non-zero, leaving no process behind', async () => {
    const s = scene();
    const c = cli(s, ['--envoy-bin', process.execPath, '--base-id', '18', '--start-grace-ms', '100'], [], {
      STAND_IN_CRASH_EPOCH: '1',
      STAND_IN_CRASH_AFTER_MS: '300',
    });
    const e0 = await s.waitStart(0);
    await waitUntil(() => c.logged('Envoy epoch 0 ready'), 'epoch 0 ready');
    c.proc.kill('SIGHUP');
    const e1 = await s.waitStart(1);
    const exit = await c.exited;
    expect(exit.code, c.output()).toBe(1);
    expect(s.records().some((r) => r.event === 'crash' && r.pid === e1.pid)).toBe(true);
    expect(s.signalsOf(e0.pid)).toEqual(['SIGTERM']);
    expect(c.output()).toMatch(/Envoy epoch 1 exited unexpectedly/);
    for (const pid of [e0.pid, e1.pid]) expect(alive(pid), `pid ${pid} still running`).toBe(false);
  });

  it('SIGHUPs arriving while the new epoch is still starting are queued as ONE restart that runs once it is ready', async () => {
    const s = scene();
    const graceMs = 3_000;
    const c = cli(s, ['--envoy-bin', process.execPath, '--base-id', '19', '--start-grace-ms', String(graceMs)], []);
    await s.waitStart(0);
    await waitUntil(() => c.logged('Envoy epoch 0 ready'), 'epoch 0 ready');

    c.proc.kill('SIGHUP');
    const e1 = await s.waitStart(1);
    // Epoch 1 is initializing (not ready before graceMs): two more requests. Each waits for the
    // restarter's acknowledgement, since the kernel merges identical signals that are pending at once.
    const seen = (fragment: string) => c.lines.filter((l) => l.includes(fragment)).length;
    c.proc.kill('SIGHUP');
    await waitUntil(() => seen('restart requested while another is under way') === 1, 'second SIGHUP queued');
    c.proc.kill('SIGHUP');
    await waitUntil(() => seen('it shares the queued one') === 1, 'third SIGHUP joined the queued restart');
    expect(s.start(2)).toBeUndefined();
    const e2 = await s.waitStart(2);
    // Forked only after epoch 1 counted as ready (the stand-ins stamp their own start, hence the slack).
    expect(e2.t - e1.t).toBeGreaterThanOrEqual(graceMs - 500);
    // …and the two requests made one restart: no epoch 3, even well after epoch 2 is ready.
    await waitUntil(() => seen('"msg":"hot restart done"') === 3, 'three SIGHUPs answered', 30_000);
    await sleep(1_000);
    expect(s.starts().map((r) => r.epoch)).toEqual([0, 1, 2]);
    const answers = c.lines.filter((l) => l.includes('"msg":"hot restart done"')).map((l) => (JSON.parse(l) as { epoch: number }).epoch);
    expect(answers.sort()).toEqual([1, 2, 2]);

    c.proc.kill('SIGTERM');
    expect((await c.exited).code, c.output()).toBe(0);
    for (const pid of s.pids()) expect(alive(pid)).toBe(false);
  });

  it('refuses bad usage with exit code 2 and names the problem', async () => {
    const s = scene();
    const c = cli(s, ['--envoy-bin', process.execPath, '--drain-strategy', 'slowly'], []);
    expect((await c.exited).code).toBe(2);
    expect(c.output()).toMatch(/drainStrategy/);
    const d = cli(s, ['--envoy-bin', process.execPath], ['--restart-epoch', '3']);
    expect((await d.exited).code).toBe(2);
    expect(d.output()).toMatch(/--restart-epoch is set by the restarter/);
    expect(s.starts()).toEqual([]);
  });
});

describe('EnvoyRestarter / EnvoyHotRestart (process logic, tested with a stand-in child — not Envoy)', () => {
  it('restart() starts epoch 1 with the same base id; both run until the old one exits by itself (parent shutdown); generations() follows', async () => {
    const s = scene();
    const r = restarter(s, { parentShutdownTimeS: 3, env: { STAND_IN_PARENT_SHUTDOWN: '1' } });
    const engine = new EnvoyHotRestart(r);

    const first = await r.start();
    expect(first).toMatchObject({ engine: 'envoy', generation: 1, epoch: 0, oldPids: [] });
    const pid0 = first.newPids[0]!;

    const second = await engine.restart();
    expect(second).toMatchObject({ engine: 'envoy', generation: 2, epoch: 1, oldPids: [pid0] });
    const pid1 = second.newPids[0]!;
    expect(s.start(1)!.argv).toContain('--base-id');
    expect(s.start(1)!.baseId).toBe(s.start(0)!.baseId);

    expect(await engine.generations()).toEqual([
      { generation: 1, epoch: 0, pid: pid0, current: false, ready: true, sessions: null, connections: null },
      { generation: 2, epoch: 1, pid: pid1, current: true, ready: true, sessions: null, connections: null },
    ]);
    expect(alive(pid0) && alive(pid1)).toBe(true);

    // The stand-in at epoch 1 tells epoch 0 to exit after --parent-shutdown-time-s; the restarter
    // does nothing but notice, and keeps running.
    await waitUntil(() => r.epochs().length === 1, 'epoch 0 gone after its parent shutdown');
    expect(s.records().find((x) => x.pid === pid0 && x.event === 'exit')?.reason).toBe('parent-shutdown');
    expect(alive(pid0)).toBe(false);
    expect(r.finished).toBe(false);
    expect(await engine.generations()).toEqual([
      { generation: 2, epoch: 1, pid: pid1, current: true, ready: true, sessions: null, connections: null },
    ]);

    expect(await r.stop()).toBe(0);
    expect(await r.done).toBe(0);
    expect(alive(pid1)).toBe(false);
    await expect(r.restart()).rejects.toBeInstanceOf(RestarterStoppedError);
  });

  it('restart() calls made while an epoch is initializing share one queued restart, forked only once that epoch is ready', async () => {
    const s = scene();
    let epoch1Ready = false;
    const started = (pid: number) => s.starts().some((x) => x.pid === pid);
    const r = restarter(s, { isReady: async (e) => started(e.pid) && (e.epoch !== 1 || epoch1Ready) });
    const pid0 = (await r.start()).newPids[0]!;

    const p1 = r.restart();
    await s.waitStart(1);
    const p2 = r.restart();
    const p3 = r.restart();
    expect(p3).toBe(p2);

    await sleep(1_000); // generous: epoch 1 is not ready, so nothing may be forked
    expect(s.starts().map((x) => x.epoch)).toEqual([0, 1]);
    expect(r.epochs().map((e) => ({ epoch: e.epoch, ready: e.ready, current: e.current }))).toEqual([
      { epoch: 0, ready: true, current: true },
      { epoch: 1, ready: false, current: false },
    ]);

    epoch1Ready = true;
    const r1 = await p1;
    const [r2, r3] = await Promise.all([p2, p3]);
    expect(r1).toMatchObject({ generation: 2, epoch: 1, oldPids: [pid0] });
    expect(r2).toMatchObject({ generation: 3, epoch: 2, oldPids: [pid0, r1.newPids[0]] });
    expect(r3).toBe(r2);
    await sleep(300);
    expect(s.starts().map((x) => x.epoch)).toEqual([0, 1, 2]);
    expect(await r.stop()).toBe(0);
    for (const pid of s.pids()) expect(alive(pid)).toBe(false);
  });

  it('a config rejected by `envoy --mode validate` refuses the restart, names the problem, and leaves the running epoch alone', async () => {
    const s = scene();
    const failFile = path.join(s.dir, 'bad-config');
    const r = restarter(s, { env: { STAND_IN_VALIDATE_FAIL_FILE: failFile } });
    const pid0 = (await r.start()).newPids[0]!;

    fs.writeFileSync(failFile, 'unknown field "allow_conect" in HttpConnectionManager');
    const err = await r.restart().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EnvoyConfigRejectedError);
    expect((err as EnvoyConfigRejectedError).code).toBe('GW_ERR_ENVOY_CONFIG_REJECTED');
    expect((err as Error).message).toMatch(/allow_conect/);
    expect(s.starts().map((x) => x.epoch)).toEqual([0]);
    expect(alive(pid0)).toBe(true);
    expect(r.finished).toBe(false);

    fs.rmSync(failFile);
    // The refused restart used up no epoch number.
    expect(await r.restart()).toMatchObject({ epoch: 1, oldPids: [pid0] });
    expect(await r.stop()).toBe(0);
  });

  it('an epoch killed by a signal it did not get from the restarter stops the others; done resolves 1', async () => {
    const s = scene();
    const r = restarter(s);
    const pid0 = (await r.start()).newPids[0]!;
    const pid1 = (await r.restart()).newPids[0]!;
    process.kill(pid0, 'SIGKILL');
    expect(await r.done).toBe(1);
    expect(s.signalsOf(pid1)).toEqual(['SIGTERM']);
    expect(alive(pid0) || alive(pid1)).toBe(false);
    await expect(r.restart()).rejects.toBeInstanceOf(RestarterStoppedError);
  });

  it('signalAll(SIGUSR1) (log reopen) reaches every epoch', async () => {
    const s = scene();
    const r = restarter(s);
    const pid0 = (await r.start()).newPids[0]!;
    const pid1 = (await r.restart()).newPids[0]!;
    r.signalAll('SIGUSR1');
    await waitUntil(() => s.signalsOf(pid0).includes('SIGUSR1') && s.signalsOf(pid1).includes('SIGUSR1'), 'SIGUSR1 recorded by both');
    expect(await r.stop()).toBe(0);
    expect(s.signalsOf(pid0)).toEqual(['SIGUSR1', 'SIGTERM']);
  });

  it('a missing binary: start() rejects with GW_ERR_MISSING_TOOL and done resolves 1', async () => {
    const s = scene();
    const r = restarter(s, { envoyBin: path.join(s.dir, 'no-such-envoy') });
    await expect(r.start()).rejects.toMatchObject({ code: 'GW_ERR_MISSING_TOOL' });
    expect(await r.done).toBe(1);
  });

  it('refuses pass-through args that carry the flags it owns', () => {
    const s = scene();
    expect(() => restarter(s, { args: [STAND_IN, '--restart-epoch', '3'] })).toThrow(RestarterUsageError);
    expect(() => restarter(s, { args: [STAND_IN, '--base-id=4'] })).toThrow(/--base-id is set by the restarter/);
  });

  it('an epoch is ready once its process runs a worker thread (wrk:*), read from a /proc-shaped tree', async () => {
    const proc = fs.mkdtempSync(path.join(os.tmpdir(), 'proc-'));
    const thread = (pid: number, tid: number, comm: string) => {
      fs.mkdirSync(path.join(proc, String(pid), 'task', String(tid)), { recursive: true });
      fs.writeFileSync(path.join(proc, String(pid), 'task', String(tid), 'comm'), `${comm}\n`);
    };
    const ready = workerThreadsReadiness(proc);
    const e = { epoch: 1, pid: 42, startedAt: 0, ready: false };
    expect(await ready(e)).toBe(false); // no such process
    thread(42, 42, 'envoy');
    thread(42, 43, 'dog:main_thread');
    expect(await ready(e)).toBe(false); // initializing: no workers yet
    thread(7, 8, 'wrk:worker_0');
    expect(await ready(e)).toBe(false); // another process's workers
    thread(42, 44, 'wrk:worker_0');
    expect(await ready(e)).toBe(true);
    fs.rmSync(proc, { recursive: true, force: true });
  });

  it('session counts are parsed from /stats (against a stub HTTP server, NOT Envoy)', async () => {
    // The stub only serves the text format Envoy's /stats documents (`name: value` per line).
    const stats: Record<string, number> = {
      'server.hot_restart_epoch': 0,
      'server.state': 3,
      'http.front.downstream_rq_active': 7,
      'http.front.downstream_cx_active': 2,
    };
    const server = http.createServer((req, res) => {
      const filter = new RegExp(new URL(req.url!, 'http://x').searchParams.get('filter') ?? '');
      res.end(`${Object.entries(stats).filter(([k]) => filter.test(k)).map(([k, v]) => `${k}: ${v}`).join('\n')}\nhttp.front.rq_time: P0(nan,1) P25(nan,2)\n`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const adminUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    expect(await readAdminStats(adminUrl, '^http\\.front\\.')).toEqual(
      new Map([['http.front.downstream_rq_active', 7], ['http.front.downstream_cx_active', 2]]),
    );

    const s = scene();
    const r = restarter(s);
    const engine = new EnvoyHotRestart(r, { adminUrl, statPrefix: 'front' });
    const pid0 = (await r.start()).newPids[0]!;
    expect(await engine.generations()).toEqual([{ generation: 1, epoch: 0, pid: pid0, current: true, ready: true, sessions: 7, connections: 2 }]);
    // Two live epochs: Envoy's admin merges the parent's gauges into the child's, so no per-epoch split.
    await r.restart();
    expect((await engine.generations()).map((g) => [g.sessions, g.connections])).toEqual([[null, null], [null, null]]);
    expect(await engine.adminTotals()).toEqual({ sessions: 7, connections: 2 });
    expect(await new EnvoyHotRestart(r).adminTotals()).toBeNull();
  });
});

/** A restarter over a real Envoy with only an admin listener (short drain and parent shutdown); its own base id. */
async function realEnvoyRestarter(s: ReturnType<typeof scene>, bin: string, baseIdBase: number) {
  const adminPort = await freePort();
  const bootstrap = path.join(s.dir, 'bootstrap.yaml');
  fs.writeFileSync(bootstrap, `admin:\n  address:\n    socket_address: { address: 127.0.0.1, port_value: ${adminPort} }\n`);
  const r = restarter(s, {
    envoyBin: bin,
    args: ['-c', bootstrap, '--concurrency', '1', '--log-level', 'warn'],
    baseId: baseIdBase + (process.pid % 10_000),
    drainTimeS: 1,
    parentShutdownTimeS: 3,
    isReady: workerThreadsReadiness(),
    readyTimeoutMs: 30_000,
    output: 'inherit',
  });
  return { r, adminUrl: `http://127.0.0.1:${adminPort}` };
}

describe('the restarter with the real Envoy (only where an envoy binary is installed)', () => {
  const skip = envoySkipReason('envoy-restarter.test: real-Envoy hot restart');

  it.skipIf(skip !== undefined)('hot-restarts a real Envoy: epoch 1 takes over (admin reports it LIVE), epoch 0 exits after --parent-shutdown-time-s, stop leaves nothing', async () => {
    const s = scene();
    const { r, adminUrl } = await realEnvoyRestarter(s, envoyBin!, 20_000);
    const first = await r.start();
    const second = await r.restart();
    expect(second).toMatchObject({ epoch: 1, oldPids: first.newPids });
    expect((await readAdminStats(adminUrl, '^server\\.hot_restart_epoch$')).get('server.hot_restart_epoch')).toBe(1);
    await waitUntil(() => r.epochs().length === 1, 'epoch 0 exits after its parent shutdown', 40_000);
    expect(alive(first.newPids[0]!)).toBe(false);
    expect(r.finished).toBe(false);
    expect(await r.stop()).toBe(0);
    expect(alive(second.newPids[0]!)).toBe(false);
  });

  it.skipIf(skip !== undefined)('refuses a hot restart onto a binary whose --hot-restart-version changed; the running epoch keeps serving', async () => {
    const s = scene();
    // The path the restarter runs: the real Envoy now, a different build (as a package upgrade would leave) later.
    const bin = path.join(s.dir, 'envoy');
    fs.symlinkSync(envoyBin!, bin);
    const { r } = await realEnvoyRestarter(s, bin, 30_000);
    const first = await r.start();
    fs.rmSync(bin);
    fs.writeFileSync(bin, `#!/bin/sh\n[ "$1" = --hot-restart-version ] && { echo 99.999; exit 0; }\nexec ${envoyBin} "$@"\n`, { mode: 0o755 });
    const refused = await r.restart().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(HotRestartVersionMismatchError);
    expect((refused as HotRestartVersionMismatchError).code).toBe('GW_ERR_ENVOY_HOT_RESTART_VERSION');
    expect(r.epochs().map((e) => e.pid)).toEqual(first.newPids);
    expect(alive(first.newPids[0]!)).toBe(true);
    expect(await r.stop()).toBe(0);
  });
});
