import {
  cellLabel,
  ROUTE_LABEL,
  type AnyRun,
  type BenchResult,
  type LatencyRun,
  type PathName,
  type Ratio,
  type RouteName,
  type ScaleRun,
  type ScenarioName,
  type StormRun,
  type Target,
  type ThroughputRun,
} from './result.js';

// Ratios from alternated runs (one per repetition pair, then the median) and the A/A noise floor,
// then the issue's four "numbers to reach", each with what was measured and why where missed.

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
        for (const front of ['front', 'front-h2up', 'ext'] as const) {
          if (!routesOf(s).includes(front) || !routesOf(s).includes('direct')) continue;
          push(
            ratio(runs, s, key, { path, route: front }, { path, route: 'direct' }, `${s}:${key}:${path}:${front}/direct`, `throughput ${what}, ${path}: ${ROUTE_LABEL[front]} / direct`),
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

export function computeTargets(result: Pick<BenchResult, 'scenarios'>, ratios: readonly Ratio[]): Target[] {
  const { storm, throughput, latency, scale } = result.scenarios;
  const targets: Target[] = [];

  // 1. 10,000 sessions on ONE client connection through the front, all echoing.
  const s10k = storm.filter((r) => r.path === 'h2-mux' && r.route === 'front' && r.params.n >= 10_000 && !r.skipped);
  const s10kGood = s10k.filter((r) => r.ok && r.clientConnections === 1 && r.client.tcpEstablished === 1);
  const best10k = s10k.reduce((m, r) => Math.max(m, Math.min(r.opened, r.echoed)), 0);
  const frontScale = scale.find((r) => r.route === 'front');
  if (s10k.length === 0 && !frontScale) {
    targets.push({ id: 'sessions-10k', goal: '≥10,000 sessions on one client TCP connection via the front, all echoing', measured: 'not run (needs the 10,000-session storm; full profile)', value: null, met: null, why: '' });
  } else {
    const sample = s10kGood[0] ?? s10k[0];
    const value = Math.max(best10k, frontScale ? maxHeld(frontScale) : 0);
    targets.push({
      id: 'sessions-10k',
      goal: '≥10,000 sessions on one client TCP connection via the front, all echoing',
      measured: sample
        ? `${fmt(sample.opened)} opened, ${fmt(sample.echoed)} echoed, client TCP connections ${sample.client.tcpEstablished} (from /proc), open in ${fmt(Math.round(sample.openMs))} ms` +
          (sample.proxy ? `; HAProxy held ${fmt(sample.proxy.accepted)} client + ${fmt(sample.proxy.upstream)} upstream sockets` : '') +
          (frontScale ? `; the scale run held up to ${fmt(maxHeld(frontScale))} echoing sessions on one connection via this front` : '')
        : `the scale run held up to ${fmt(frontScale ? maxHeld(frontScale) : 0)} echoing sessions on one connection via the front`,
      value,
      met: value >= 10_000 && (s10kGood.length > 0 || (frontScale ? maxHeld(frontScale) : 0) >= 10_000),
      why: s10kGood.length > 0 ? '' : (sample?.error ?? frontScale?.reason ?? ''),
    });
  }

  // 1b. 50,000 with HTTP/2 to the backends.
  const h2up = scale.find((r) => r.route === 'front-h2up');
  targets.push(
    h2up
      ? {
          id: 'sessions-50k',
          goal: '50,000 sessions on one client connection via the front with HTTP/2 upstream (report where it stops and why)',
          measured: `reached ${fmt(h2up.reached)}${h2up.stoppedAt ? `, stopped at the ${fmt(h2up.stoppedAt)} step` : ''}; ` +
            h2up.steps.map((s) => `${fmt(s.open)} open (HAProxy ${s.proxy ? `${fmt(s.proxy.upstream)} upstream sockets` : '?'}, client RSS ${s.client.rssBytes ? Math.round(s.client.rssBytes / 2 ** 20) : '?'} MB)`).join(' → '),
          value: h2up.reached,
          met: h2up.reached >= 50_000,
          why: h2up.reason,
        }
      : { id: 'sessions-50k', goal: '50,000 sessions on one client connection via the front with HTTP/2 upstream', measured: 'not run (scale scenario; full profile)', value: null, met: null, why: '' },
  );

  // 2. Opening 1,000 sessions: h2 ≥3× faster than h1 via the front.
  const run1k = storm.find((r) => r.params.n === 1000);
  const key1k = run1k ? paramsKey(run1k) : '';
  const open1k = find(ratios, `storm:${key1k}:front:h1/h2`);
  const medOpen = (path: PathName, route: RouteName) =>
    median(storm.filter((r) => r.ok && !r.aa && r.params.n === 1000 && r.path === path && r.route === route).map((r) => r.openMs));
  const sockets = (path: PathName) => storm.find((r) => r.ok && r.params.n === 1000 && r.path === path && r.route === 'front')?.client.tcpEstablished;
  const others = (['front-h2up', 'direct'] as const)
    .map((route) => {
      const rr = find(ratios, `storm:${key1k}:${route}:h1/h2`);
      return rr?.median != null ? `${ROUTE_LABEL[route]} ${x2(rr.median)}` : undefined;
    })
    .filter(Boolean);
  targets.push({
    id: 'open-3x',
    goal: 'opening 1,000 sessions via the front: h2-mux ≥3× faster than h1-upgrade (1 vs 1,000 client sockets)',
    measured: open1k?.median != null
      ? `h1/h2 open time ${x2(open1k.median)} (pairs ${open1k.pairs.map((p) => p.toFixed(2)).join(', ')}); h2 ${fmt(Math.round(medOpen('h2-mux', 'front') ?? 0))} ms on ${sockets('h2-mux') ?? '?'} socket, ` +
        `h1 ${fmt(Math.round(medOpen('h1-upgrade', 'front') ?? 0))} ms on ${fmt(sockets('h1-upgrade') ?? 0)} sockets` +
        (others.length ? `; same ratio ${others.join(', ')}` : '') + '.' + aaNote(ratios, 'storm')
      : 'not measured',
    value: open1k?.median ?? null,
    met: open1k?.median == null ? null : open1k.median >= 3,
    why: open1k?.median != null && open1k.median < 3 ? openWhy(storm, others) : '',
  });

  // 3. Echo throughput via the front ≥70% of direct, both paths.
  const tpGroups = [...new Set(throughput.map((r) => JSON.stringify(r.params)))];
  const headline = tpGroups.find((k) => k.includes('"mode":"single"') && k.includes('"size":1024')) ?? tpGroups[0];
  const tpRatio = (path: PathName, key: string | undefined) => (key ? find(ratios, `throughput:${key}:${path}:front/direct`) : undefined);
  const h2tp = tpRatio('h2-mux', headline);
  const h1tp = tpRatio('h1-upgrade', headline);
  const allTp = tpGroups
    .map((k) => {
      const sample = throughput.find((r) => JSON.stringify(r.params) === k) as ThroughputRun;
      return `${paramsText(sample)}: h2 ${pct(tpRatio('h2-mux', k)?.median ?? null)}, h1 ${pct(tpRatio('h1-upgrade', k)?.median ?? null)}`;
    })
    .join('; ');
  const tpValue = h2tp?.median != null && h1tp?.median != null ? Math.min(h2tp.median, h1tp.median) : null;
  targets.push({
    id: 'front-70pct',
    goal: 'echo throughput via the front ≥70% of direct to a backend, for both paths',
    measured: headline ? `headline (${paramsText(throughput.find((r) => JSON.stringify(r.params) === headline)!)}): h2-mux ${pct(h2tp?.median ?? null)}, h1-upgrade ${pct(h1tp?.median ?? null)} of direct. All: ${allTp}.${aaNote(ratios, 'throughput')}` : 'not measured',
    value: tpValue,
    met: tpValue === null ? null : tpValue >= 0.7,
    why: tpValue !== null && tpValue < 0.7 ? cpuWhy(throughput, headline) : '',
  });

  // 4. h2 p99 within 1.5× of h1 at a fixed rate (via the front).
  const latGroups = [...new Set(latency.map((r) => JSON.stringify(r.params)))];
  const latRatio = (k: string) => find(ratios, `latency:${k}:front:h2/h1`);
  const head = latGroups[0];
  const p99 = head ? latRatio(head) : undefined;
  const worst = latGroups.map((k) => latRatio(k)?.median).filter((v): v is number => typeof v === 'number');
  targets.push({
    id: 'p99-1.5x',
    goal: 'h2-mux p99 echo latency at a fixed rate within 1.5× of h1-upgrade (via the front)',
    measured: head
      ? latGroups
          .map((k) => {
            const sample = latency.find((r) => JSON.stringify(r.params) === k) as LatencyRun;
            const med = (path: PathName) => median(latency.filter((r) => r.ok && !r.aa && JSON.stringify(r.params) === k && r.path === path && r.route === 'front').map((r) => r.latency.p99Ms));
            return `${paramsText(sample)}: h2/h1 p99 ${x2(latRatio(k)?.median ?? null)} (${(med('h2-mux') ?? NaN).toFixed(2)} vs ${(med('h1-upgrade') ?? NaN).toFixed(2)} ms)`;
          })
          .join('; ') + '.' + aaNote(ratios, 'latency')
      : 'not measured',
    value: p99?.median ?? null,
    met: worst.length === 0 ? null : Math.max(...worst) <= 1.5,
    why: '',
  });
  return targets;
}

/** Most sessions a scale run had open and echoing on ONE client connection at any step. */
function maxHeld(run: ScaleRun): number {
  return run.steps.filter((s) => s.clientConnections === 1).reduce((m, s) => Math.max(m, Math.min(s.open, s.echoed)), 0);
}

/** Why opening via the front is not 3× faster: the upstream leg of each session, from the measurements. */
function openWhy(storm: readonly StormRun[], others: Array<string | undefined>): string {
  const at = (path: PathName) => storm.filter((r) => r.ok && !r.aa && r.params.n === 1000 && r.path === path && r.route === 'front');
  const h2 = at('h2-mux');
  const h1 = at('h1-upgrade');
  const upstream = h2.at(-1)?.proxy?.upstream;
  const cpu = (rs: StormRun[], f: (c: NonNullable<StormRun['cpu']>) => number | null) => median(rs.map((r) => (r.cpu ? (f(r.cpu) ?? NaN) : NaN)));
  const part = (rs: StormRun[]) =>
    `${cpu(rs, (c) => c.totalUs)?.toFixed(0) ?? '?'} µs CPU per session (client ${cpu(rs, (c) => c.clientUs)?.toFixed(0) ?? '?'}, HAProxy ${cpu(rs, (c) => c.proxyUs)?.toFixed(0) ?? '?'}, backends ${cpu(rs, (c) => c.backendsUs)?.toFixed(0) ?? '?'})`;
  return (
    `with HTTP/1.1 to the backends HAProxy still opens one upstream TCP connection and does one HTTP/1.1 Upgrade per h2 stream ` +
    `(${upstream === undefined ? '?' : fmt(upstream)} upstream sockets for 1,000 h2 sessions), so only the client leg is multiplexed: ` +
    `h2-mux ${part(h2)} vs h1-upgrade ${part(h1)}; the h2 load generator itself was busy ${((cpu(h2, (c) => c.clientCoreShare) ?? NaN) * 100).toFixed(0)}% of the open time (client-side cost per stream)` +
    (others.length ? `. Without that upstream leg the ratio grows: ${others.join(', ')}` : '') +
    '. All three processes share 2 cores, so the handshake work the path does not remove bounds the gain.'
  );
}

/** Where the CPU per message goes via the front vs direct: the usual reason the front costs throughput. */
function cpuWhy(runs: readonly ThroughputRun[], key: string | undefined): string {
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
    const f = cpu('front');
    const d = cpu('direct');
    if (f.total !== null && d.total !== null) {
      parts.push(
        `${path}: ${f.total.toFixed(0)} µs CPU per echo via the front (HAProxy ${f.proxy?.toFixed(0) ?? '?'} µs) vs ${d.total.toFixed(0)} µs direct`,
      );
    }
  }
  return parts.length
    ? `every route ends at the same backend (b1), and all processes share 2 cores, so throughput follows total CPU per echo — ${parts.join('; ')}. ` +
        'The front adds a third process that touches every message twice (in and out).'
    : '';
}

export function isStorm(r: AnyRun): r is StormRun {
  return r.scenario === 'storm';
}
