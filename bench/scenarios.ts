import type { LatencySummary } from '../client/echo-probe.js';
import type { LoadGenerator } from './load-generator.js';
import type { RouteInfo } from './environment.js';
import { kernelTcpMemBytes } from '../lib/procfs.js';
import type { Profile } from './profiles.js';
import type { MemReply } from './protocol.js';
import {
  PATHS,
  type AnyRun,
  type FanoutRun,
  type IdleRun,
  type LatencyRun,
  type MemoryPerSession,
  type RouteName,
  type RunBase,
  type ScaleRun,
  type ScaleStep,
  type ScenarioName,
  type StormRun,
  type ThroughputRun,
} from './result.js';
import { alternate, perUnit, type Cell, type Runner } from './runner.js';

// The six scenarios. Each one plans its runs up front (so the progress bar knows the total), in
// alternated order with one A/A run, and turns each planned run into one result record. A run that
// fails is recorded with ok=false and its error; the bench goes on with the next one.

export interface Item<P> {
  cell: Cell;
  rep: number;
  aa: boolean;
  params: P;
}

export interface Scenario<P, R extends AnyRun> {
  name: ScenarioName;
  plan(profile: Profile): Array<Item<P>>;
  run(runner: Runner, item: Item<P>): Promise<R>;
}

const EMPTY: LatencySummary = { count: 0, minMs: 0, meanMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0, cdf: [] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number) => n.toLocaleString('en-US');

function cellsOf(routes: readonly RouteName[]): Cell[] {
  return routes.flatMap((route) => PATHS.map((path) => ({ path, route })));
}

function base<S extends ScenarioName>(runner: Runner, scenario: S, item: Item<unknown>): RunBase & { scenario: S } {
  return {
    scenario,
    path: item.cell.path,
    route: item.cell.route,
    label: runner.label(item.cell),
    rep: item.rep,
    aa: item.aa,
    seq: runner.nextSeq(),
    ok: false,
    wallMs: 0,
    conditions: runner.conditions(item.cell.route),
    cpu: null,
  };
}

function plan<P>(profile: Profile, cells: Cell[], groups: P[], aaGroup: (p: P, i: number) => boolean): Array<Item<P>> {
  return groups.flatMap((params, i) => alternate(cells, profile.reps, aaGroup(params, i)).map((p) => ({ ...p, params })));
}

function describeError(err: unknown): string {
  return (err as Error)?.message ?? String(err);
}

function topErrors(errors: Record<string, number>, k = 3): string {
  return Object.entries(errors)
    .sort((a, b) => b[1] - a[1])
    .slice(0, k)
    .map(([e, n]) => `${fmt(n)}× ${e}`)
    .join('; ');
}

// ---- 1. connect storm ------------------------------------------------------------------------

function stormScenario(): Scenario<{ n: number }, StormRun> {
  // A cell that failed at some N is not run again at that N or above (it would only fail again, slowly).
  const failedAt = new Map<string, number>();
  return {
    name: 'storm',
    plan: (profile) => {
      const ns = profile.storm.ns;
      const aaN = ns.includes(1000) ? 1000 : ns[ns.length - 1];
      return plan(profile, cellsOf(profile.routes), ns.map((n) => ({ n })), (p) => p.n === aaN);
    },
    async run(runner, item) {
      const p = runner.profile.storm;
      const { n } = item.params;
      const key = `${item.cell.path}|${item.cell.route}`;
      const run: StormRun = {
        ...base(runner, 'storm', item),
        params: { n, concurrency: p.concurrency },
        opened: 0,
        failed: 0,
        errors: {},
        openMs: 0,
        handshake: EMPTY,
        echoed: 0,
        echoFailed: 0,
        clientConnections: 0,
        client: { rssBytes: null, socketFds: 0, tcpEstablished: 0 },
        proxy: null,
        backends: { rssBytes: null, socketFds: 0, tcpEstablished: 0 },
        spread: {},
      };
      const failed = failedAt.get(key);
      if (failed !== undefined && n >= failed) {
        run.skipped = `failed at ${fmt(failed)} sessions earlier in this bench`;
        return run;
      }
      const t0 = performance.now();
      await runner.settle();
      const route = runner.env.route(item.cell.route);
      let lg: LoadGenerator | undefined;
      try {
        lg = await runner.fresh(item.cell, n > 20_000 ? 4096 : undefined);
        const proxyPid = await runner.env.proxyPid(route);
        const meter = runner.cpuMeter(proxyPid);
        const open = await lg.request(
          { op: 'open', n, path: '/echo', concurrency: p.concurrency, deadlineMs: p.deadlineMs },
          { timeoutMs: p.deadlineMs + p.handshakeTimeoutMs + 30_000, onEvent: meter.onEvent },
        );
        const snap = runner.snapshot(lg.pid, route, proxyPid);
        const echo = open.opened > 0 ? await lg.request({ op: 'echoAll', size: 32, timeoutMs: 30_000 }, { timeoutMs: 60_000 }) : undefined;
        Object.assign(run, {
          opened: open.opened,
          failed: open.failed,
          errors: open.errors,
          openMs: open.elapsedMs,
          handshake: open.handshake,
          echoed: echo?.ok ?? 0,
          echoFailed: (echo?.failed ?? 0) + (echo?.mismatches ?? 0),
          clientConnections: open.clientConnections,
          client: snap.client,
          proxy: snap.proxy,
          backends: snap.backends,
          spread: open.spread,
          cpu: perUnit(meter.result(), open.opened),
        });
        run.ok = open.opened === n && run.echoed === n;
        if (!run.ok) run.error = `${fmt(open.opened)}/${fmt(n)} opened, ${fmt(run.echoed)} echoed; ${topErrors(open.errors) || 'echo failures'}`;
      } catch (err) {
        run.error = describeError(err);
      } finally {
        if (lg) await runner.release(lg);
      }
      if (!run.ok) failedAt.set(key, Math.min(n, failedAt.get(key) ?? Infinity));
      run.wallMs = performance.now() - t0;
      return run;
    },
  };
}

// ---- shared by latency and throughput: a pooled generator with S sessions open -----------------

async function withSessions<T>(runner: Runner, cell: Cell, sessions: number, body: (lg: Awaited<ReturnType<Runner['pooled']>>) => Promise<T>): Promise<T> {
  await runner.settle();
  const lg = await runner.pooled(cell);
  try {
    const open = await lg.request({ op: 'open', n: sessions, path: '/echo', concurrency: sessions, deadlineMs: 20_000 }, { timeoutMs: 45_000 });
    if (open.failed > 0) throw new Error(`${open.failed}/${sessions} sessions failed to open: ${topErrors(open.errors)}`);
    const value = await body(lg);
    const closed = await lg.request({ op: 'closeAll' }, { timeoutMs: 30_000 });
    if (closed.closeTimedOut) {
      runner.progress.note(`warning: ${runner.label(cell)}: the client connection did not close within 5 s; replacing its load generator`);
      await runner.release(lg);
    }
    return value;
  } catch (err) {
    // Unknown state: the next run of this cell gets a fresh generator.
    await runner.release(lg);
    throw err;
  }
}

// ---- 2. echo latency at a fixed offered rate -------------------------------------------------

function latencyScenario(): Scenario<{ size: number }, LatencyRun> {
  return {
    name: 'latency',
    plan: (profile) => plan(profile, cellsOf(profile.routes), profile.latency.sizes.map((size) => ({ size })), (_p, i) => i === 0),
    async run(runner, item) {
      const p = runner.profile.latency;
      const { size } = item.params;
      const ratePerS = p.ratePerS[size] ?? 1000;
      const run: LatencyRun = {
        ...base(runner, 'latency', item),
        params: { size, ratePerS, sessions: p.sessions, durationMs: p.durationMs },
        sent: 0,
        received: 0,
        lost: 0,
        mismatches: 0,
        latency: EMPTY,
      };
      const t0 = performance.now();
      try {
        const route = runner.env.route(item.cell.route);
        await withSessions(runner, item.cell, p.sessions, async (lg) => {
          const meter = runner.cpuMeter(await runner.env.proxyPid(route));
          const r = await lg.request(
            { op: 'latency', size, ratePerS, durationMs: p.durationMs, warmupMs: p.warmupMs, drainMs: p.drainMs },
            { timeoutMs: p.warmupMs + p.durationMs + p.drainMs + 30_000, onEvent: meter.onEvent },
          );
          Object.assign(run, {
            sent: r.sent,
            received: r.received,
            lost: r.lost,
            mismatches: r.mismatches,
            latency: r.latency,
            cpu: perUnit(meter.result(), r.echoesInWindow),
          });
          run.ok = r.lost === 0 && r.mismatches === 0 && r.closedSessions === 0;
          if (!run.ok) run.error = `${r.lost} lost, ${r.mismatches} mismatched, ${r.closedSessions} sessions closed`;
        });
      } catch (err) {
        run.error = describeError(err);
      }
      run.wallMs = performance.now() - t0;
      return run;
    },
  };
}

// ---- 3. max throughput -----------------------------------------------------------------------

function throughputScenario(): Scenario<{ size: number; mode: 'single' | 'burst' }, ThroughputRun> {
  return {
    name: 'throughput',
    plan: (profile) =>
      plan(
        profile,
        cellsOf(profile.routes),
        profile.throughput.modes.flatMap((mode) => profile.throughput.sizes.map((size) => ({ size, mode }))),
        (_p, i) => i === 0,
      ),
    async run(runner, item) {
      const p = runner.profile.throughput;
      const { size, mode } = item.params;
      const window = mode === 'single' ? 1 : Math.max(1, Math.min(p.burstWindow, Math.floor(p.burstBytes / size)));
      // Every route ends at the same single backend, so that front/direct measures the proxy hop and
      // not the front's extra backend processes: the fronts are pinned to b1 for this scenario.
      const pinnedTo = runner.env.backends[0]?.id ?? 'b1';
      const run: ThroughputRun = {
        ...base(runner, 'throughput', item),
        params: { size, mode, window, sessions: p.sessions, durationMs: p.durationMs, pinnedTo },
        echoes: 0,
        msgsPerS: 0,
        mbPerS: 0,
        mismatches: 0,
        lost: 0,
        rtt: EMPTY,
      };
      const t0 = performance.now();
      const route = runner.env.route(item.cell.route);
      try {
        await runner.env.pinTo(route, pinnedTo);
        await withSessions(runner, item.cell, p.sessions, async (lg) => {
          const meter = runner.cpuMeter(await runner.env.proxyPid(route));
          const r = await lg.request(
            { op: 'throughput', size, window, durationMs: p.durationMs, warmupMs: p.warmupMs, drainMs: p.drainMs },
            { timeoutMs: p.warmupMs + p.durationMs + p.drainMs + 30_000, onEvent: meter.onEvent },
          );
          Object.assign(run, {
            echoes: r.echoesInWindow,
            msgsPerS: r.msgsPerS,
            mbPerS: r.mbPerS,
            mismatches: r.mismatches,
            lost: r.lost,
            rtt: r.latency,
            cpu: perUnit(meter.result(), r.echoesInWindow),
          });
          run.ok = r.mismatches === 0 && r.closedSessions === 0 && r.echoesInWindow > 0;
          if (!run.ok) {
            run.error = `${r.mismatches} mismatched, ${r.closedSessions} sessions closed, ${r.echoesInWindow} echoes in the window (${r.received}/${r.sent} answered)`;
          }
        });
      } catch (err) {
        run.error = describeError(err);
      } finally {
        await runner.env.pinTo(route, undefined).catch(() => {});
      }
      run.wallMs = performance.now() - t0;
      return run;
    },
  };
}

// ---- 4. fan-out --------------------------------------------------------------------------------

function fanoutScenario(): Scenario<{ members: number }, FanoutRun> {
  return {
    name: 'fanout',
    plan: (profile) => {
      const routes = profile.fanout.routes.filter((r) => profile.routes.includes(r));
      return plan(profile, cellsOf(routes), profile.fanout.members.map((members) => ({ members })), (_p, i) => i === 0);
    },
    async run(runner, item) {
      const p = runner.profile.fanout;
      const { members } = item.params;
      const route = runner.env.route(item.cell.route);
      // With a room bus (Redis) a room spans backends and the front balances members as usual.
      // Without one a room lives in one backend's memory (per-stream round robin would split it),
      // so the front is pinned to b1: the other servers go to maintenance for the run.
      const pinnedTo = runner.env.bus ? null : (runner.env.backends[0]?.id ?? 'b1');
      const run: FanoutRun = {
        ...base(runner, 'fanout', item),
        params: { members, messages: p.messages, intervalMs: p.intervalMs, pinnedTo },
        bus: null,
        opened: 0,
        settled: 0,
        expected: 0,
        delivered: 0,
        delivery: EMPTY,
        allDelivered: EMPTY,
        spread: {},
      };
      const t0 = performance.now();
      await runner.settle();
      try {
        if (pinnedTo) await runner.env.pinTo(route, pinnedTo);
        const lg = await runner.pooled(item.cell);
        try {
          const meter = runner.cpuMeter(await runner.env.proxyPid(route), true);
          const r = await lg.request(
            {
              op: 'fanout',
              room: `bench-${run.seq}`,
              members,
              messages: p.messages,
              intervalMs: p.intervalMs,
              concurrency: Math.min(members, 500),
              settleTimeoutMs: 30_000,
              drainMs: 10_000,
            },
            { timeoutMs: 120_000, onEvent: meter.onEvent },
          );
          Object.assign(run, {
            opened: r.opened,
            settled: r.settled,
            expected: r.expected,
            delivered: r.delivered,
            delivery: r.delivery,
            allDelivered: r.allDelivered,
            spread: r.spread,
            bus: r.bus,
            cpu: perUnit(meter.result(), r.delivered),
          });
          run.ok = r.opened === members && r.delivered === r.expected && r.expected > 0;
          if (!run.ok) run.error = `${r.opened}/${members} joined, ${r.delivered}/${r.expected} delivered; ${topErrors(r.openErrors)}`;
        } catch (err) {
          await runner.release(lg);
          throw err;
        }
      } catch (err) {
        run.error = describeError(err);
      } finally {
        if (pinnedTo) await runner.env.pinTo(route, undefined).catch(() => {});
      }
      run.wallMs = performance.now() - t0;
      return run;
    },
  };
}

// ---- 5. idle cost ------------------------------------------------------------------------------

interface IdleSample {
  client: MemReply;
  backendsHeap: number | null;
  backendsRss: number | null;
  proxyPool: number | null;
  proxyRss: number | null;
  clientSockets: number;
  proxySockets: number | null;
  backendSockets: number;
  kernel: number | undefined;
}

function idleScenario(): Scenario<{ n: number }, IdleRun> {
  return {
    name: 'idle',
    plan: (profile) => plan(profile, cellsOf(profile.routes), [{ n: profile.idle.n }], () => true),
    async run(runner, item) {
      const { n } = item.params;
      const empty: MemoryPerSession = { heapBytes: null, rssBytes: null, sockets: null };
      const run: IdleRun = {
        ...base(runner, 'idle', item),
        params: { n },
        opened: 0,
        perSession: { client: empty, proxy: null, backends: empty },
        kernelTcpBytesPerSession: null,
      };
      const t0 = performance.now();
      await runner.settle();
      const route = runner.env.route(item.cell.route);
      let lg: LoadGenerator | undefined;
      try {
        lg = await runner.fresh(item.cell);
        const gen = lg;
        const proxyPid = await runner.env.proxyPid(route);
        const sample = async (): Promise<IdleSample> => {
          const client = await gen.request({ op: 'mem', gc: true }, { timeoutMs: 30_000 });
          const backends = await runner.env.backendMemory(true);
          const known = backends.every((b) => b !== undefined);
          const proxyMemory = route.proxy ? await route.proxy.memoryBytes().catch(() => null) : null;
          const snap = runner.snapshot(gen.pid, route, proxyPid);
          return {
            client,
            backendsHeap: known ? backends.reduce((s, b) => s + b!.heapUsed + b!.external, 0) : null,
            backendsRss: snap.backends.rssBytes,
            proxyPool: proxyMemory,
            proxyRss: snap.proxy?.rssBytes ?? null,
            clientSockets: snap.client.tcpEstablished,
            proxySockets: snap.proxy?.tcpEstablished ?? null,
            backendSockets: snap.backends.tcpEstablished,
            kernel: kernelTcpMemBytes(),
          };
        };
        const before = await sample();
        const open = await lg.request({ op: 'open', n, path: '/echo', concurrency: 1000, deadlineMs: 30_000 }, { timeoutMs: 60_000 });
        await sleep(runner.profile.idle.settleMs);
        const after = await sample();
        const k = open.opened;
        const per = (a: number | null | undefined, b: number | null | undefined) =>
          a === null || a === undefined || b === null || b === undefined || k === 0 ? null : (a - b) / k;
        run.opened = k;
        run.perSession = {
          client: {
            heapBytes: per(after.client.heapUsed + after.client.external, before.client.heapUsed + before.client.external),
            rssBytes: per(after.client.rss, before.client.rss),
            sockets: per(after.clientSockets, before.clientSockets),
          },
          proxy: route.proxy
            ? { heapBytes: null, poolBytes: per(after.proxyPool, before.proxyPool), rssBytes: per(after.proxyRss, before.proxyRss), sockets: per(after.proxySockets, before.proxySockets) }
            : null,
          backends: {
            heapBytes: per(after.backendsHeap, before.backendsHeap),
            rssBytes: per(after.backendsRss, before.backendsRss),
            sockets: per(after.backendSockets, before.backendSockets),
          },
        };
        run.kernelTcpBytesPerSession = per(after.kernel, before.kernel);
        run.ok = k === n;
        if (!run.ok) run.error = `${k}/${n} opened: ${topErrors(open.errors)}`;
      } catch (err) {
        run.error = describeError(err);
      } finally {
        if (lg) await runner.release(lg);
      }
      run.wallMs = performance.now() - t0;
      return run;
    },
  };
}

// ---- 6. scale: how many sessions one client connection carries --------------------------------

function scaleScenario(): Scenario<{ steps: number[] }, ScaleRun> {
  return {
    name: 'scale',
    plan: (profile) =>
      profile.scale.routes
        .filter((s) => profile.routes.includes(s.route))
        .map((s) => ({ cell: { path: 'h2-mux' as const, route: s.route }, rep: 0, aa: false, params: { steps: s.steps } })),
    async run(runner, item) {
      const { steps: targets } = item.params;
      const stepTimeoutMs = runner.profile.scale.stepTimeoutMs;
      const run: ScaleRun = {
        ...base(runner, 'scale', item),
        params: { steps: targets, stepTimeoutMs },
        steps: [],
        reached: 0,
        stoppedAt: null,
        reason: '',
      };
      const t0 = performance.now();
      await runner.settle(60_000);
      const route = runner.env.route(item.cell.route);
      let lg: LoadGenerator | undefined;
      try {
        lg = await runner.fresh(item.cell, 4096);
        const proxyPid = await runner.env.proxyPid(route);
        // Limits read up front: at the limit HAProxy may have no descriptor left for its stats socket.
        const limits = await runner.env.proxyInfo(route).catch(() => ({}) as Record<string, string>);
        let open = 0;
        for (const target of targets) {
          runner.progress.start(`scale ${runner.label(item.cell)} → ${fmt(target)}`);
          const o = await lg.request(
            { op: 'open', n: target - open, path: '/echo', concurrency: 1000, deadlineMs: stepTimeoutMs },
            { timeoutMs: stepTimeoutMs + 60_000, onEvent: (e) => e.event === 'progress' && runner.progress.step(open + e.done, target) },
          );
          open = o.open;
          const snap = runner.snapshot(lg.pid, route, proxyPid);
          const info = route.proxy ? await route.proxy.info().catch(() => undefined) : {};
          const reported = route.proxy ? await route.proxy.counts().catch(() => null) : null;
          const echo = await lg.request({ op: 'echoAll', size: 32, timeoutMs: 60_000 }, { timeoutMs: 120_000 });
          const step: ScaleStep = {
            target,
            open,
            failed: o.failed,
            errors: o.errors,
            openMs: o.elapsedMs,
            echoed: echo.ok,
            echoFailed: echo.failed + echo.mismatches,
            clientConnections: o.clientConnections,
            client: snap.client,
            proxy: snap.proxy ? { ...snap.proxy, currConns: info?.CurrConns !== undefined ? Number(info.CurrConns) : null, reported } : null,
            backends: snap.backends,
          };
          run.steps.push(step);
          const good = o.failed === 0 && echo.ok === open && o.clientConnections === 1;
          if (good) {
            run.reached = open;
            continue;
          }
          run.stoppedAt = target;
          const counters = route.proxy ? await route.proxy.diagnostics().catch(() => []) : [];
          run.reason = diagnoseScale(step, route, limits, info === undefined || (route.proxy !== undefined && reported === null), counters);
          break;
        }
        if (run.stoppedAt === null) {
          run.reason = `all ${fmt(run.reached)} sessions open and echoing on one client connection; the bench stops at its last step (bounded)`;
        }
        run.ok = true;
      } catch (err) {
        run.error = describeError(err);
        run.reason = `bench error: ${run.error}`;
      } finally {
        if (lg) await runner.release(lg);
        await runner.settle(90_000).catch(() => {});
      }
      run.wallMs = performance.now() - t0;
      return run;
    },
  };
}

function diagnoseScale(step: ScaleStep, route: RouteInfo, info: Record<string, string>, statsSilent: boolean, counters: string[]): string {
  const why: string[] = [];
  const name = route.proxy?.name ?? 'the front';
  if (step.clientConnections > 1) {
    why.push(`the client needed ${step.clientConnections} connections: the front's stream limit (${route.streamLimit ?? '?'}) per connection was reached`);
  }
  const ulimit = Number(info['Ulimit-n']);
  if (step.proxy && ulimit > 0 && step.proxy.socketFds >= ulimit * 0.9) {
    why.push(
      `${name} holds ${fmt(step.proxy.socketFds)} sockets of its ${fmt(ulimit)} file descriptors (Ulimit-n${info.Maxconn ? `, derived from maxconn ${info.Maxconn}` : ''}): ` +
        `${fmt(step.proxy.upstream)} of them are upstream sockets, one per session with HTTP/1.1 servers`,
    );
  }
  if (statsSilent) why.push(`${name}'s ${route.proxy?.engine === 'envoy' ? 'admin API' : 'stats socket'} stopped answering at this step`);
  // Envoy 1.40 does not abort when its descriptors run out: it logs an ENVOY_BUG per failed socket and answers 503.
  why.push(...(route.proxy?.logSummary() ?? []).filter((l) => /Too many open files|socket failure/i.test(l)));
  why.push(...counters);
  why.push(`${fmt(step.open)} sessions were open and ${fmt(step.echoed)} echoing on ${step.clientConnections} client connection(s) when it stopped`);
  if (step.failed > 0) why.push(`${fmt(step.failed)} handshakes failed: ${topErrors(step.errors)}`);
  if (step.echoFailed > 0) why.push(`${fmt(step.echoFailed)} sessions did not echo`);
  return why.join('; ') || 'unknown';
}

export function allScenarios(): Record<ScenarioName, Scenario<unknown, AnyRun>> {
  return {
    storm: stormScenario() as unknown as Scenario<unknown, AnyRun>,
    latency: latencyScenario() as unknown as Scenario<unknown, AnyRun>,
    throughput: throughputScenario() as unknown as Scenario<unknown, AnyRun>,
    fanout: fanoutScenario() as unknown as Scenario<unknown, AnyRun>,
    idle: idleScenario() as unknown as Scenario<unknown, AnyRun>,
    scale: scaleScenario() as unknown as Scenario<unknown, AnyRun>,
  };
}
