import {
  cellLabel,
  FRONT_ROUTES,
  ROUTE_LABEL,
  type AnyRun,
  type BenchResult,
  type LatencyRun,
  type PathName,
  type Ratio,
  type RouteName,
  type ScaleRun,
  type ScaleStep,
  type ScenarioName,
  type StormRun,
  type Target,
  type ThroughputRun,
} from './result.js';

// Ratios from alternated runs (one per repetition pair, then the median) and the A/A noise floor,
// then the targets, each with what was measured and why where missed.

export function median(values: readonly number[]): number | null {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** The main number of each scenario: what ratios and A/A pairs compare. */
export const MAIN_METRIC: Record<ScenarioName, { name: string; of: (r: AnyRun) => number | null }> = {
  storm: { name: 'open all (ms)', of: (r) => (r.scenario === 'storm' && r.ok ? r.openMs : null) },
  latency: { name: 'p99 (ms)', of: (r) => (r.scenario === 'latency' && r.ok ? r.latency.p99Ms : null) },
  throughput: { name: 'msgs/s', of: (r) => (r.scenario === 'throughput' && r.ok ? r.msgsPerS : null) },
  fanout: { name: 'delivery p99 (ms)', of: (r) => (r.scenario === 'fanout' && r.ok ? r.delivery.p99Ms : null) },
  idle: {
    // proxy: HAProxy's pools in use, Envoy's heap allocated.
    name: 'bytes/session (client+proxy+backends heap)',
    of: (r) =>
      r.scenario === 'idle' && r.ok
        ? (r.perSession.client.heapBytes ?? 0) + (r.perSession.proxy?.poolBytes ?? 0) + (r.perSession.backends.heapBytes ?? 0)
        : null,
  },
  scale: { name: 'sessions reached', of: (r) => (r.scenario === 'scale' ? r.reached : null) },
};

/** Parameters as a stable key: runs with equal keys are comparable. */
export function paramsKey(r: AnyRun): string {
  return JSON.stringify(r.params);
}

export function paramsText(r: AnyRun): string {
  switch (r.scenario) {
    case 'storm':
      return `${r.params.n.toLocaleString('en-US')} sessions`;
    case 'latency':
      return `${sizeText(r.params.size)} at ${r.params.ratePerS}/s`;
    case 'throughput':
      return `${sizeText(r.params.size)} ${r.params.mode}`;
    case 'fanout':
      return `${r.params.members} members`;
    case 'idle':
      return `${r.params.n.toLocaleString('en-US')} idle sessions`;
    case 'scale':
      return `up to ${(r.params.steps[r.params.steps.length - 1] ?? 0).toLocaleString('en-US')}`;
  }
}

export function sizeText(bytes: number): string {
  return bytes >= 1024 ? `${bytes / 1024} KiB` : `${bytes} B`;
}

function byRep(runs: readonly AnyRun[], scenario: ScenarioName, key: string, path: PathName, route: RouteName): Map<number, number> {
  const m = new Map<number, number>();
  for (const r of runs) {
    if (r.scenario !== scenario || r.aa || r.path !== path || r.route !== route || paramsKey(r) !== key) continue;
    const v = MAIN_METRIC[scenario].of(r);
    if (v !== null) m.set(r.rep, v);
  }
  return m;
}

function ratio(
  runs: readonly AnyRun[],
  scenario: ScenarioName,
  key: string,
  num: { path: PathName; route: RouteName },
  den: { path: PathName; route: RouteName },
  id: string,
  description: string,
): Ratio | undefined {
  const a = byRep(runs, scenario, key, num.path, num.route);
  const b = byRep(runs, scenario, key, den.path, den.route);
  const pairs: number[] = [];
  for (const [rep, v] of a) {
    const d = b.get(rep);
    if (d !== undefined && d > 0) pairs.push(v / d);
  }
  if (a.size === 0 && b.size === 0) return undefined;
  return {
    id,
    scenario,
    description,
    metric: MAIN_METRIC[scenario].name,
    numerator: cellLabel(num.path, num.route),
    denominator: cellLabel(den.path, den.route),
    pairs,
    median: median(pairs),
    aa: false,
  };
}

export function computeRatios(runs: readonly AnyRun[]): Ratio[] {
  const out: Ratio[] = [];
  const groups = new Map<string, AnyRun>();
  for (const r of runs) if (!r.aa && r.scenario !== 'scale') groups.set(`${r.scenario}|${paramsKey(r)}`, r);
  const routesOf = (scenario: ScenarioName) => [...new Set(runs.filter((r) => r.scenario === scenario).map((r) => r.route))];
  const push = (r: Ratio | undefined) => r && out.push(r);

  for (const sample of groups.values()) {
    const s = sample.scenario;
    const key = paramsKey(sample);
    const what = paramsText(sample);
    for (const route of routesOf(s)) {
      const h2 = { path: 'h2-mux' as const, route };
      const h1 = { path: 'h1-upgrade' as const, route };
      const where = ROUTE_LABEL[route];
      if (s === 'storm') push(ratio(runs, s, key, h1, h2, `storm:${key}:${route}:h1/h2`, `open ${what} ${where}: h1-upgrade time / h2-mux time (h2 speed-up)`));
      if (s === 'latency' || s === 'fanout') push(ratio(runs, s, key, h2, h1, `${s}:${key}:${route}:h2/h1`, `${s} ${what} ${where}: h2-mux p99 / h1-upgrade p99`));
      if (s === 'throughput') push(ratio(runs, s, key, h2, h1, `${s}:${key}:${route}:h2/h1`, `throughput ${what} ${where}: h2-mux / h1-upgrade`));
      if (s === 'idle') push(ratio(runs, s, key, h1, h2, `${s}:${key}:${route}:h1/h2`, `memory per idle session ${where}: h1-upgrade / h2-mux`));
    }
    if (s === 'throughput') {
      for (const path of ['h2-mux', 'h1-upgrade'] as const) {
        for (const front of [...FRONT_ROUTES, 'ext'] as const) {
          if (!routesOf(s).includes(front) || !routesOf(s).includes('direct')) continue;
          push(
            ratio(runs, s, key, { path, route: front }, { path, route: 'direct' }, `${s}:${key}:${path}:${front}/direct`, `throughput ${what}, ${path}: ${ROUTE_LABEL[front]} / direct`),
          );
        }
        // The project's backend against a bare `ws` echo server, both reached directly.
        if (routesOf(s).includes('direct') && routesOf(s).includes('reference')) {
          push(
            ratio(runs, s, key, { path, route: 'direct' }, { path, route: 'reference' }, `${s}:${key}:${path}:direct/reference`, `throughput ${what}, ${path}: backend / bare ws (reference)`),
          );
        }
      }
    }
  }

  // A/A: the repeated run against the run of the same cell and parameters just before it.
  for (const aa of runs.filter((r) => r.aa)) {
    const prev = runs
      .filter((r) => !r.aa && r.scenario === aa.scenario && r.path === aa.path && r.route === aa.route && paramsKey(r) === paramsKey(aa) && r.seq < aa.seq)
      .sort((x, y) => y.seq - x.seq)[0];
    const a = MAIN_METRIC[aa.scenario].of(aa);
    const b = prev ? MAIN_METRIC[aa.scenario].of(prev) : null;
    out.push({
      id: `${aa.scenario}:${paramsKey(aa)}:aa`,
      scenario: aa.scenario,
      description: `A/A noise floor: ${aa.scenario} ${paramsText(aa)}, ${aa.label} run twice`,
      metric: MAIN_METRIC[aa.scenario].name,
      numerator: `${aa.label} (A/A run)`,
      denominator: `${aa.label} (previous run)`,
      pairs: a !== null && b !== null && b > 0 ? [a / b] : [],
      median: a !== null && b !== null && b > 0 ? a / b : null,
      aa: true,
    });
  }
  return out;
}

const fmt = (n: number) => n.toLocaleString('en-US');
const x2 = (n: number | null) => (n === null ? 'n/a' : `${n.toFixed(2)}×`);
const pct = (n: number | null) => (n === null ? 'n/a' : `${(n * 100).toFixed(0)}%`);

function find(ratios: readonly Ratio[], id: string): Ratio | undefined {
  return ratios.find((r) => r.id === id);
}

function aaNote(ratios: readonly Ratio[], scenario: ScenarioName): string {
  const aa = ratios.find((r) => r.aa && r.scenario === scenario);
  return aa?.median != null ? ` A/A noise floor for this scenario: ${aa.median.toFixed(2)}×.` : '';
}

/**
 * The fronts the targets are measured on, each as its stack runs by default (`upstreamProtocol: auto`).
 * The first one that ran decides `met`: Envoy with HTTP/2 upstream, the product's default stack (in a
 * profile without it, HAProxy); the figures of the others stand beside it in `measured`.
 */
const TARGET_FRONTS = [
  { route: 'envoy-h2up', name: 'Envoy', engine: 'Envoy', upstream: 'h2' },
  { route: 'front', name: 'HAProxy', engine: 'HAProxy', upstream: 'h1' },
  { route: 'envoy', name: 'Envoy (h1 upstream)', engine: 'Envoy', upstream: 'h1' },
] as const satisfies ReadonlyArray<{ route: RouteName; name: string; engine: string; upstream: 'h1' | 'h2' }>;
type TargetFront = (typeof TARGET_FRONTS)[number];

/** One target as measured on one front. */
interface Measured {
  front: TargetFront;
  measured: string;
  value: number | null;
  met: boolean | null;
  why: string;
}

/** The first front decides; every front's figures are listed, each under its name. */
function combine(id: Target['id'], goal: string, per: Measured[], notRun: string): Target {
  const primary = per[0];
  if (!primary) return { id, goal, measured: notRun, value: null, met: null, why: '' };
  const named = (m: Measured, text: string) => (per.length > 1 ? `${m.front.name}: ${text}` : text);
  return {
    id,
    goal,
    measured: per.map((m) => named(m, m.measured)).join(' | '),
    value: primary.value,
    met: primary.met,
    why: per.filter((m) => m.why).map((m) => named(m, m.why)).join(' | '),
  };
}

export function computeTargets(result: Pick<BenchResult, 'scenarios'>, ratios: readonly Ratio[]): Target[] {
  const { storm, throughput, latency, scale, idle } = result.scenarios;
  const ran = (route: RouteName) => Object.values(result.scenarios).some((runs) => (runs as AnyRun[]).some((r) => r.route === route));
  const fronts = TARGET_FRONTS.filter((f) => ran(f.route));
  const targets: Target[] = [];

  // 1. 10,000 sessions on ONE client connection through the front, all echoing.
  const goal10k = '≥10,000 sessions on one client TCP connection via the front, all echoing';
  const per10k: Measured[] = [];
  for (const f of fronts) {
    const s10k = storm.filter((r) => r.path === 'h2-mux' && r.route === f.route && r.params.n >= 10_000 && !r.skipped);
    const s10kGood = s10k.filter((r) => r.ok && r.clientConnections === 1 && r.client.tcpEstablished === 1);
    const best10k = s10k.reduce((m, r) => Math.max(m, Math.min(r.opened, r.echoed)), 0);
    const frontScale = scale.find((r) => r.route === f.route);
    if (s10k.length === 0 && !frontScale) continue;
    const sample = s10kGood[0] ?? s10k[0];
    const held = frontScale ? maxHeld(frontScale) : 0;
    const value = Math.max(best10k, held);
    per10k.push({
      front: f,
      measured: sample
        ? `${fmt(sample.opened)} opened, ${fmt(sample.echoed)} echoed, client TCP connections ${sample.client.tcpEstablished} (from /proc), open in ${fmt(Math.round(sample.openMs))} ms` +
          (sample.proxy ? `; ${f.name} held ${fmt(sample.proxy.accepted)} client + ${fmt(sample.proxy.upstream)} upstream sockets` : '') +
          (frontScale ? `; the scale run held up to ${fmt(held)} echoing sessions on one connection via this front` : '')
        : `the scale run held up to ${fmt(held)} echoing sessions on one connection via the front`,
      value,
      met: value >= 10_000 && (s10kGood.length > 0 || held >= 10_000),
      why: s10kGood.length > 0 ? '' : (sample?.error ?? frontScale?.reason ?? ''),
    });
  }
  targets.push(combine('sessions-10k', goal10k, per10k, 'not run (needs the 10,000-session storm; full profile)'));

  // 1b. 100,000 on one client connection (HTTP/2 upstream), memory per session in each process.
  const perScale: Measured[] = [];
  for (const f of TARGET_FRONTS) {
    const run = scale.find((r) => r.route === f.route && f.upstream === 'h2') ?? scale.find((r) => r.route === 'front-h2up' && f.route === 'front');
    if (!run) continue;
    const largest = Math.max(0, ...run.steps.flatMap((s) => [s.client.rssBytes ?? 0, s.proxy?.rssBytes ?? 0, s.backends.largestRssBytes ?? 0]));
    const reachedAll = run.reached >= SCALE_GOAL;
    perScale.push({
      front: f,
      measured:
        `${run.route === f.route ? '' : `(${ROUTE_LABEL[run.route]}) `}reached ${fmt(run.reached)}${run.stoppedAt ? `, stopped at the ${fmt(run.stoppedAt)} step` : ''}; ` +
        run.steps.map((s) => scaleStepText(s, f.engine)).join(' → ') +
        `; largest process ${mb(largest)}`,
      value: run.reached,
      met: reachedAll && largest <= 2 * 2 ** 30,
      why: [reachedAll ? '' : run.reason, largest > 2 * 2 ** 30 ? `a process passed 2 GB (${mb(largest)})` : ''].filter(Boolean).join('; '),
    });
  }
  targets.push(
    combine(
      'sessions-100k',
      `${fmt(SCALE_GOAL)} sessions on one client connection via the front with HTTP/2 upstream, all echoing, no process above 2 GB (where it stops and why)`,
      perScale,
      'not run (scale scenario; full profile)',
    ),
  );

  // 1c. Memory per idle h2 session after GC in the client and the backends, per front.
  const perIdle: Measured[] = [];
  for (const f of fronts) {
    const run = idle.find((x) => x.ok && !x.aa && x.route === f.route && x.path === 'h2-mux');
    if (!run) continue;
    const { client, backends } = run.perSession;
    const worst = Math.max(client.heapBytes ?? Infinity, backends.heapBytes ?? Infinity);
    perIdle.push({
      front: f,
      measured: `${fmt(run.params.n)} idle sessions: client ${kb(client.heapBytes)}, backends ${kb(backends.heapBytes)} per session (V8 heap + external after a forced GC)`,
      value: Number.isFinite(worst) ? worst : null,
      met: Number.isFinite(worst) ? worst <= 8 * 1024 : null,
      why: '',
    });
  }
  targets.push(combine('idle-8kb', '≤ 8 KB per idle h2 session after GC, in the client and in the backends', perIdle, 'not measured (idle scenario)'));

  // 2. Opening 1,000 sessions: h2 ≥3× faster than h1 via the front.
  const run1k = storm.find((r) => r.params.n === 1000);
  const key1k = run1k ? paramsKey(run1k) : '';
  const medOpen = (path: PathName, route: RouteName) =>
    median(storm.filter((r) => r.ok && !r.aa && r.params.n === 1000 && r.path === path && r.route === route).map((r) => r.openMs));
  const sockets = (path: PathName, route: RouteName) => storm.find((r) => r.ok && r.params.n === 1000 && r.path === path && r.route === route)?.client.tcpEstablished;
  const openRatio = (route: RouteName) => find(ratios, `storm:${key1k}:${route}:h1/h2`);
  const perOpen: Measured[] = [];
  for (const f of fronts) {
    const open1k = openRatio(f.route);
    if (!open1k) continue;
    perOpen.push({
      front: f,
      measured:
        open1k.median != null
          ? `h1/h2 open time ${x2(open1k.median)} (pairs ${open1k.pairs.map((p) => p.toFixed(2)).join(', ')}); h2 ${fmt(Math.round(medOpen('h2-mux', f.route) ?? 0))} ms on ${sockets('h2-mux', f.route) ?? '?'} socket, ` +
            `h1 ${fmt(Math.round(medOpen('h1-upgrade', f.route) ?? 0))} ms on ${fmt(sockets('h1-upgrade', f.route) ?? 0)} sockets`
          : 'not measured',
      value: open1k.median ?? null,
      met: open1k.median == null ? null : open1k.median >= 3,
      why: open1k.median != null && open1k.median < 3 ? openWhy(storm, f) : '',
    });
  }
  const others = (['front-h2up', 'envoy-h2up', 'envoy', 'direct'] as const)
    .filter((route) => !fronts.some((f) => f.route === route))
    .map((route) => {
      const rr = openRatio(route);
      return rr?.median != null ? `${ROUTE_LABEL[route]} ${x2(rr.median)}` : undefined;
    })
    .filter((x): x is string => x !== undefined);
  const open3x = combine('open-3x', 'opening 1,000 sessions via the front: h2-mux ≥3× faster than h1-upgrade (1 vs 1,000 client sockets)', perOpen, 'not measured');
  if (perOpen.length) {
    open3x.measured += '.' + (others.length ? ` Same ratio on the other routes: ${others.join(', ')}.` : '') + aaNote(ratios, 'storm');
    if (open3x.why && others.length) open3x.why += ` Without that upstream leg the ratio grows: ${others.join(', ')}.`;
  }
  targets.push(open3x);

  // 2b. What the h2 load generator (MuxClient) spends per session it opens, in the same storm.
  targets.push(clientCpuTarget(storm, fronts));

  // 3. Echo throughput via the front ≥70% of direct, both paths.
  const tpGroups = [...new Set(throughput.map((r) => JSON.stringify(r.params)))];
  const headline = tpGroups.find((k) => k.includes('"mode":"single"') && k.includes('"size":1024')) ?? tpGroups[0];
  const tpRatio = (path: PathName, key: string | undefined, route: RouteName) => (key ? find(ratios, `throughput:${key}:${path}:${route}/direct`) : undefined);
  const perTp: Measured[] = [];
  for (const f of fronts) {
    if (!headline || !tpRatio('h2-mux', headline, f.route)) continue;
    const h2tp = tpRatio('h2-mux', headline, f.route);
    const h1tp = tpRatio('h1-upgrade', headline, f.route);
    const allTp = tpGroups
      .map((k) => {
        const sample = throughput.find((r) => JSON.stringify(r.params) === k) as ThroughputRun;
        return `${paramsText(sample)}: h2 ${pct(tpRatio('h2-mux', k, f.route)?.median ?? null)}, h1 ${pct(tpRatio('h1-upgrade', k, f.route)?.median ?? null)}`;
      })
      .join('; ');
    const value = h2tp?.median != null && h1tp?.median != null ? Math.min(h2tp.median, h1tp.median) : null;
    perTp.push({
      front: f,
      measured: `headline (${paramsText(throughput.find((r) => JSON.stringify(r.params) === headline)!)}): h2-mux ${pct(h2tp?.median ?? null)}, h1-upgrade ${pct(h1tp?.median ?? null)} of direct. All: ${allTp}.`,
      value,
      met: value === null ? null : value >= 0.7,
      why: value !== null && value < 0.7 ? cpuWhy(throughput, headline, f) : '',
    });
  }
  const tp70 = combine('front-70pct', 'echo throughput via the front ≥70% of direct to a backend, for both paths', perTp, 'not measured');
  if (perTp.length) tp70.measured += aaNote(ratios, 'throughput');
  targets.push(tp70);

  // 4. h2 p99 within 1.5× of h1 at a fixed rate (via the front).
  const latGroups = [...new Set(latency.map((r) => JSON.stringify(r.params)))];
  const latRatio = (k: string, route: RouteName) => find(ratios, `latency:${k}:${route}:h2/h1`);
  const perLat: Measured[] = [];
  for (const f of fronts) {
    const head = latGroups[0];
    if (!head || !latRatio(head, f.route)) continue;
    const worst = latGroups.map((k) => latRatio(k, f.route)?.median).filter((v): v is number => typeof v === 'number');
    perLat.push({
      front: f,
      measured: latGroups
        .map((k) => {
          const sample = latency.find((r) => JSON.stringify(r.params) === k) as LatencyRun;
          const med = (path: PathName) => median(latency.filter((r) => r.ok && !r.aa && JSON.stringify(r.params) === k && r.path === path && r.route === f.route).map((r) => r.latency.p99Ms));
          return `${paramsText(sample)}: h2/h1 p99 ${x2(latRatio(k, f.route)?.median ?? null)} (${(med('h2-mux') ?? NaN).toFixed(2)} vs ${(med('h1-upgrade') ?? NaN).toFixed(2)} ms)`;
        })
        .join('; '),
      value: latRatio(head, f.route)?.median ?? null,
      met: worst.length === 0 ? null : Math.max(...worst) <= 1.5,
      why: '',
    });
  }
  const p99 = combine('p99-1.5x', 'h2-mux p99 echo latency at a fixed rate within 1.5× of h1-upgrade (via the front)', perLat, 'not measured');
  if (perLat.length) p99.measured += '.' + aaNote(ratios, 'latency');
  targets.push(p99);

  // 5. The project's backend ≥95% of a bare `ws` echo server (direct to each), both transports.
  if (headline) {
    const eff = (path: PathName) => find(ratios, `throughput:${headline}:${path}:direct/reference`)?.median ?? null;
    const h2 = eff('h2-mux');
    const h1 = eff('h1-upgrade');
    const value = h2 !== null && h1 !== null ? Math.min(h2, h1) : null;
    const sample = throughput.find((r) => JSON.stringify(r.params) === headline)!;
    targets.push({
      id: 'backend-95pct',
      goal: 'the backend echoes ≥95% as fast as a bare ws server (direct to each), both transports',
      measured:
        value === null
          ? 'not measured (needs the direct and reference routes)'
          : `${paramsText(sample)}: h2-mux ${pct(h2)}, h1-upgrade ${pct(h1)} of bare ws.` + aaNote(ratios, 'throughput'),
      value,
      met: value === null ? null : value >= 0.95,
      why: '',
    });
  }
  return targets;
}

/** The client's CPU per session opened is judged on this storm size (a fresh load generator each run). */
const CLIENT_CPU_N = 1000;
const CLIENT_CPU_GOAL_US = 100;

/**
 * MuxClient's CPU per session opened, from the storm's own windows (first handshake to the last
 * one settled): the median over the runs of each front, and direct (no proxy) beside them. The
 * first front that ran decides; with no front in the run, direct does.
 */
function clientCpuTarget(storm: readonly StormRun[], fronts: readonly TargetFront[]): Target {
  const goal = `the h2 load generator (MuxClient) spends ≤${CLIENT_CPU_GOAL_US} µs CPU per session it opens (storm of ${fmt(CLIENT_CPU_N)}, a fresh process)`;
  const at = (route: RouteName) => {
    const runs = storm.filter((r) => r.ok && !r.aa && r.params.n === CLIENT_CPU_N && r.path === 'h2-mux' && r.route === route && r.cpu);
    return {
      us: median(runs.map((r) => r.cpu!.clientUs ?? NaN)),
      share: median(runs.map((r) => r.cpu!.clientCoreShare ?? NaN)),
      runs: runs.length,
    };
  };
  const places = [...fronts.map((f) => ({ route: f.route as RouteName, name: f.name })), { route: 'direct' as RouteName, name: ROUTE_LABEL.direct }]
    .map((p) => ({ ...p, ...at(p.route) }))
    .filter((p) => p.us !== null);
  const primary = places[0];
  if (!primary) return { id: 'client-100us', goal, measured: `not measured (needs the ${fmt(CLIENT_CPU_N)}-session storm, h2-mux)`, value: null, met: null, why: '' };
  const text = (p: (typeof places)[number]) =>
    `${p.name}: ${p.us!.toFixed(0)} µs per session (client core share ${p.share === null ? '?' : `${(p.share * 100).toFixed(0)}%`}, ${p.runs} run${p.runs === 1 ? '' : 's'})`;
  const met = primary.us! <= CLIENT_CPU_GOAL_US;
  return {
    id: 'client-100us',
    goal,
    measured: places.map(text).join(' | '),
    value: primary.us,
    met,
    why: met
      ? ''
      : `each storm run gets a fresh load generator, so its window holds the process's first connection, the first use of the code and V8 compiling the hot path; ` +
        `per stream, most of the rest is Node's own http2 request() (docs/bench.md, "The client's CPU per session").`,
  };
}

/** Most sessions a scale run had open and echoing on ONE client connection at any step. */
function maxHeld(run: ScaleRun): number {
  return run.steps.filter((s) => s.clientConnections === 1).reduce((m, s) => Math.max(m, Math.min(s.open, s.echoed)), 0);
}

const SCALE_GOAL = 100_000;
const mb = (bytes: number | null | undefined) => (bytes ? `${fmt(Math.round(bytes / 2 ** 20))} MB` : '?');
const kb = (bytes: number | null | undefined) => (bytes == null ? '?' : `${(bytes / 1024).toFixed(1)} KB`);

/** One step of a scale run: open time, upstream connections, RSS and RSS per session of each process. */
function scaleStepText(s: ScaleStep, engine: string): string {
  const per = (bytes: number | null | undefined) => (bytes && s.open ? ` (${kb(bytes / s.open)}/session)` : '');
  return (
    `${fmt(s.open)} open in ${(s.openMs / 1000).toFixed(1)} s: ${engine} ${s.proxy ? `${fmt(s.proxy.upstream)} upstream connections, RSS ${mb(s.proxy.rssBytes)}${per(s.proxy.rssBytes)}` : '?'}, ` +
    `client ${mb(s.client.rssBytes)}${per(s.client.rssBytes)}, largest backend ${mb(s.backends.largestRssBytes)}`
  );
}

/** Why opening via the front is not 3× faster: the upstream leg of each session, from the measurements. */
function openWhy(storm: readonly StormRun[], f: TargetFront): string {
  const at = (path: PathName) => storm.filter((r) => r.ok && !r.aa && r.params.n === 1000 && r.path === path && r.route === f.route);
  const h2 = at('h2-mux');
  const h1 = at('h1-upgrade');
  const upstream = h2.at(-1)?.proxy?.upstream;
  const cpu = (rs: StormRun[], g: (c: NonNullable<StormRun['cpu']>) => number | null) => median(rs.map((r) => (r.cpu ? (g(r.cpu) ?? NaN) : NaN)));
  const part = (rs: StormRun[]) =>
    `${cpu(rs, (c) => c.totalUs)?.toFixed(0) ?? '?'} µs CPU per session (client ${cpu(rs, (c) => c.clientUs)?.toFixed(0) ?? '?'}, ${f.name} ${cpu(rs, (c) => c.proxyUs)?.toFixed(0) ?? '?'}, backends ${cpu(rs, (c) => c.backendsUs)?.toFixed(0) ?? '?'})`;
  const busy = `the h2 load generator itself was busy ${((cpu(h2, (c) => c.clientCoreShare) ?? NaN) * 100).toFixed(0)}% of the open time (client-side cost per stream)`;
  if (f.upstream === 'h2') {
    return (
      `both legs are multiplexed (${upstream === undefined ? '?' : fmt(upstream)} upstream connections for 1,000 h2 sessions), so what is left is work per stream: ` +
      `h2-mux ${part(h2)} vs h1-upgrade ${part(h1)}; ${busy}. All three processes share 2 cores.`
    );
  }
  return (
    `with HTTP/1.1 to the backends ${f.name} still opens one upstream TCP connection and does one HTTP/1.1 Upgrade per h2 stream ` +
    `(${upstream === undefined ? '?' : fmt(upstream)} upstream sockets for 1,000 h2 sessions), so only the client leg is multiplexed: ` +
    `h2-mux ${part(h2)} vs h1-upgrade ${part(h1)}; ${busy}. ` +
    'All three processes share 2 cores, so the handshake work the path does not remove bounds the gain.'
  );
}

/** Where the CPU per message goes via the front vs direct: the usual reason the front costs throughput. */
function cpuWhy(runs: readonly ThroughputRun[], key: string | undefined, f: TargetFront): string {
  if (!key) return '';
  const parts: string[] = [];
  for (const path of ['h2-mux', 'h1-upgrade'] as const) {
    const cpu = (route: RouteName) => {
      const rs = runs.filter((r) => r.ok && !r.aa && r.path === path && r.route === route && JSON.stringify(r.params) === key && r.cpu);
      return {
        total: median(rs.map((r) => r.cpu!.totalUs ?? NaN)),
        proxy: median(rs.map((r) => r.cpu!.proxyUs ?? NaN)),
        client: median(rs.map((r) => r.cpu!.clientCoreShare ?? NaN)),
      };
    };
    const fr = cpu(f.route);
    const d = cpu('direct');
    if (fr.total !== null && d.total !== null) {
      parts.push(`${path}: ${fr.total.toFixed(0)} µs CPU per echo via the front (${f.name} ${fr.proxy?.toFixed(0) ?? '?'} µs) vs ${d.total.toFixed(0)} µs direct`);
    }
  }
  return parts.length
    ? `every route ends at the same backend (b1), and all processes share 2 cores, so throughput follows total CPU per echo — ${parts.join('; ')}. ` +
        'The front adds a third process that touches every message twice (in and out).'
    : '';
}
