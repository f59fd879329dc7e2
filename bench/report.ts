import { median, paramsKey, paramsText, sizeText } from './analysis.js';
import {
  cellLabel,
  ENVOY_ROUTES,
  HAPROXY_ROUTES,
  PATHS,
  ROUTE_LABEL,
  type AnyRun,
  type BenchResult,
  type CpuPerUnit,
  type LatencyRun,
  type PathName,
  type RouteName,
} from './result.js';
import { barChart, esc, lineChart, type Series } from './svg.js';

// One source for every view of a result: tables (rendered as terminal text, Markdown or HTML),
// charts (inline SVG), the conditions block, and the self-contained HTML report.

export interface Table {
  title: string;
  header: string[];
  rows: string[][];
  note?: string;
}

const COLORS: Record<string, string> = {
  'h2-mux|front': '#1f77b4',
  'h1-upgrade|front': '#ff7f0e',
  'h2-mux|front-h2up': '#2ca02c',
  'h1-upgrade|front-h2up': '#d62728',
  'h2-mux|envoy': '#e377c2',
  'h1-upgrade|envoy': '#7f7f7f',
  'h2-mux|envoy-h2up': '#393b79',
  'h1-upgrade|envoy-h2up': '#ad494a',
  'h2-mux|direct': '#9467bd',
  'h1-upgrade|direct': '#8c564b',
  'h2-mux|ext': '#17becf',
  'h1-upgrade|ext': '#bcbd22',
};
const colorOf = (path: PathName, route: RouteName) => COLORS[`${path}|${route}`] ?? '#555';

/** Tables and charts list routes in this order: the HAProxy routes, the Envoy routes, the rest. */
const ROUTE_ORDER: readonly RouteName[] = ['front', 'front-h2up', 'envoy', 'envoy-h2up', 'ext', 'direct', 'reference'];

/** The proxy a route goes through, for labels: 'HAProxy', 'Envoy', or 'proxy' (ext: not ours). */
const proxyName = (r: RouteName) =>
  (ENVOY_ROUTES as readonly RouteName[]).includes(r) ? 'Envoy' : (HAPROXY_ROUTES as readonly RouteName[]).includes(r) ? 'HAProxy' : 'proxy';

const int = (n: number | null | undefined) => (n === null || n === undefined || !Number.isFinite(n) ? '–' : Math.round(n).toLocaleString('en-US'));
const ms = (n: number | null | undefined) =>
  n === null || n === undefined || !Number.isFinite(n) ? '–' : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n).toLocaleString('en-US');
const mb = (bytes: number | null | undefined) => (bytes === null || bytes === undefined ? '–' : (bytes / 2 ** 20).toFixed(0));
const bytesText = (b: number | null | undefined) =>
  b === null || b === undefined || !Number.isFinite(b) ? '–' : Math.abs(b) >= 10_240 ? `${(b / 1024).toFixed(1)} KiB` : `${Math.round(b).toLocaleString('en-US')} B`;
const x2 = (n: number | null | undefined) => (n === null || n === undefined ? '–' : n.toFixed(2));

function cpuText(c: CpuPerUnit | null | undefined): string {
  if (!c) return '–';
  const f = (v: number | null) => (v === null ? '–' : v.toFixed(v < 10 ? 1 : 0));
  return `${f(c.totalUs)} (${f(c.clientUs)}/${f(c.proxyUs)}/${f(c.backendsUs)}${c.busUs == null ? '' : `/${f(c.busUs)}`})`;
}

/** Runs of one scenario grouped by parameters, then by cell, in plan order; A/A runs left out. */
export function grouped<R extends AnyRun>(runs: readonly R[]): Array<{ params: string; sample: R; cells: Array<{ path: PathName; route: RouteName; runs: R[] }> }> {
  const groups: Array<{ params: string; sample: R; cells: Array<{ path: PathName; route: RouteName; runs: R[] }> }> = [];
  for (const r of runs) {
    if (r.aa) continue;
    const key = paramsKey(r);
    let g = groups.find((x) => x.params === key);
    if (!g) groups.push((g = { params: key, sample: r, cells: [] }));
    let c = g.cells.find((x) => x.path === r.path && x.route === r.route);
    if (!c) g.cells.push((c = { path: r.path, route: r.route, runs: [] }));
    c.runs.push(r);
  }
  const routeOrder = (r: RouteName) => ROUTE_ORDER.indexOf(r);
  for (const g of groups) g.cells.sort((a, b) => routeOrder(a.route) - routeOrder(b.route) || PATHS.indexOf(a.path) - PATHS.indexOf(b.path));
  return groups;
}

/** Median over the successful runs of a cell. */
function med<R extends AnyRun>(runs: readonly R[], f: (r: R) => number | null | undefined): number | null {
  return median(runs.filter((r) => r.ok).map((r) => f(r) ?? NaN));
}

function medCpu<R extends AnyRun>(runs: readonly R[]): CpuPerUnit | null {
  const ok = runs.filter((r) => r.ok && r.cpu);
  if (ok.length === 0) return null;
  const m = (f: (c: CpuPerUnit) => number | null) => median(ok.map((r) => f(r.cpu!) ?? NaN));
  return {
    clientUs: m((c) => c.clientUs),
    proxyUs: m((c) => c.proxyUs),
    backendsUs: m((c) => c.backendsUs),
    busUs: m((c) => c.busUs ?? null),
    totalUs: m((c) => c.totalUs),
    clientCoreShare: m((c) => c.clientCoreShare),
  };
}

function okText(runs: readonly AnyRun[]): string {
  const skipped = runs.filter((r) => r.skipped).length;
  const ok = runs.filter((r) => r.ok).length;
  return skipped === runs.length ? 'skipped' : `${ok}/${runs.length - skipped}`;
}

export function tables(result: BenchResult): Table[] {
  const out: Table[] = [];
  const s = result.scenarios;
  const routeText = (r: RouteName) => ROUTE_LABEL[r];

  if (s.storm.length) {
    out.push({
      title: 'Connect storm: open N sessions (at most 1,000 handshakes in flight), then one echo on each',
      header: ['sessions', 'path', 'route', 'runs ok', 'opened', 'echoed', 'open all ms', 'handshake p50/p99 ms', 'client TCP', 'proxy sockets in/up', 'backend sockets', 'RSS MB client/proxy/backends', 'CPU µs/session total (client/proxy/backends)'],
      rows: grouped(s.storm).flatMap((g) =>
        g.cells.map((c) => {
          const last = c.runs.filter((r) => !r.skipped).at(-1) ?? c.runs[0]!;
          return [
            int(g.sample.params.n),
            c.path,
            routeText(c.route),
            okText(c.runs),
            int(med(c.runs, (r) => r.opened) ?? last.opened),
            int(med(c.runs, (r) => r.echoed) ?? last.echoed),
            ms(med(c.runs, (r) => r.openMs)),
            `${ms(med(c.runs, (r) => r.handshake.p50Ms))} / ${ms(med(c.runs, (r) => r.handshake.p99Ms))}`,
            int(last.client.tcpEstablished),
            last.proxy ? `${int(last.proxy.accepted)} / ${int(last.proxy.upstream)}` : '–',
            int(last.backends.tcpEstablished),
            `${mb(last.client.rssBytes)} / ${mb(last.proxy?.rssBytes)} / ${mb(last.backends.rssBytes)}`,
            cpuText(medCpu(c.runs)),
          ];
        }),
      ),
      note: 'Medians over the alternated repetitions; sockets and RSS from /proc of the last run (backend sockets: connections from the client or this route\'s proxy). A failed or skipped cell shows its last attempt.',
    });
  }
  if (s.latency.length) {
    out.push({
      title: 'Echo latency at a fixed offered rate (open loop, coordinated-omission corrected)',
      header: ['size @ rate', 'path', 'route', 'runs ok', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'lost', 'CPU µs/msg total (client/proxy/backends)'],
      rows: grouped(s.latency).flatMap((g) =>
        g.cells.map((c) => [
          `${sizeText(g.sample.params.size)} @ ${int(g.sample.params.ratePerS)}/s`,
          c.path,
          routeText(c.route),
          okText(c.runs),
          ms(med(c.runs, (r) => r.latency.p50Ms)),
          ms(med(c.runs, (r) => r.latency.p90Ms)),
          ms(med(c.runs, (r) => r.latency.p99Ms)),
          ms(med(c.runs, (r) => r.latency.p999Ms)),
          ms(med(c.runs, (r) => r.latency.maxMs)),
          int(c.runs.reduce((a, r) => a + r.lost, 0)),
          cpuText(medCpu(c.runs)),
        ]),
      ),
      note: `${s.latency[0]?.params.sessions ?? '?'} sessions per path; latency from each message's intended send time.`,
    });
  }
  if (s.throughput.length) {
    out.push({
      title: 'Max echo throughput (closed loop: single = 1 message in flight per session, burst = a window of them)',
      header: ['size', 'regime', 'path', 'route', 'runs ok', 'echoes/s', 'MB/s', 'RTT p50/p99 ms', 'client core share', 'CPU µs/msg total (client/proxy/backends)'],
      rows: grouped(s.throughput).flatMap((g) =>
        g.cells.map((c) => {
          const cpu = medCpu(c.runs);
          return [
            sizeText(g.sample.params.size),
            `${g.sample.params.mode} (${g.sample.params.window})`,
            c.path,
            routeText(c.route),
            okText(c.runs),
            int(med(c.runs, (r) => r.msgsPerS)),
            x2(med(c.runs, (r) => r.mbPerS)),
            `${ms(med(c.runs, (r) => r.rtt.p50Ms))} / ${ms(med(c.runs, (r) => r.rtt.p99Ms))}`,
            cpu?.clientCoreShare == null ? '–' : `${(cpu.clientCoreShare * 100).toFixed(0)}%`,
            cpuText(cpu),
          ];
        }),
      ),
      note: `${s.throughput[0]?.params.sessions ?? '?'} sessions per path. MB/s = payload echoed per second, one way. Client core share near 100% would mean the load generator was the bottleneck.`,
    });
  }
  if (s.fanout.length) {
    out.push({
      title: 'Fan-out: one publisher in a chat room of N, delivery latency to every other member',
      header: ['members', 'path', 'route', 'runs ok', 'delivered', 'p50 ms', 'p99 ms', 'max ms', 'to all p50/max ms', 'CPU µs/delivery total (client/proxy/backends/bus)'],
      rows: grouped(s.fanout).flatMap((g) =>
        g.cells.map((c) => [
          int(g.sample.params.members),
          c.path,
          routeText(c.route),
          okText(c.runs),
          `${int(med(c.runs, (r) => r.delivered))}/${int(med(c.runs, (r) => r.expected))}`,
          ms(med(c.runs, (r) => r.delivery.p50Ms)),
          ms(med(c.runs, (r) => r.delivery.p99Ms)),
          ms(med(c.runs, (r) => r.delivery.maxMs)),
          `${ms(med(c.runs, (r) => r.allDelivered.p50Ms))} / ${ms(med(c.runs, (r) => r.allDelivered.maxMs))}`,
          cpuText(medCpu(c.runs)),
        ]),
      ),
      note: s.fanout[0]?.params.pinnedTo
        ? `No room bus: rooms live in one backend's memory, so every member is pinned to ${s.fanout[0].params.pinnedTo} (the front's other servers in maintenance during this scenario).`
        : `Room bus: ${s.fanout[0]?.bus ?? '?'} — members are balanced over the backends as usual and each message goes publisher → backend → bus → every backend → members. CPU includes the bus process.`,
    });
  }
  if (s.idle.length) {
    out.push({
      title: 'Idle cost per session, after forced GC (client: the load generator; backends: via their inspector)',
      header: ['path', 'route', 'runs ok', 'client heap', 'client RSS', 'proxy memory', 'proxy RSS', 'backends heap', 'backends RSS', 'sockets/session client/proxy/backends'],
      rows: grouped(s.idle).flatMap((g) =>
        g.cells.map((c) => {
          const m = (f: (r: (typeof c.runs)[number]) => number | null | undefined) => med(c.runs, f);
          return [
            c.path,
            routeText(c.route),
            okText(c.runs),
            bytesText(m((r) => r.perSession.client.heapBytes)),
            bytesText(m((r) => r.perSession.client.rssBytes)),
            c.route === 'direct' ? '–' : bytesText(m((r) => r.perSession.proxy?.poolBytes)),
            c.route === 'direct' ? '–' : bytesText(m((r) => r.perSession.proxy?.rssBytes)),
            bytesText(m((r) => r.perSession.backends.heapBytes)),
            bytesText(m((r) => r.perSession.backends.rssBytes)),
            `${x2(m((r) => r.perSession.client.sockets))} / ${c.route === 'direct' ? '–' : x2(m((r) => r.perSession.proxy?.sockets))} / ${x2(m((r) => r.perSession.backends.sockets))}`,
          ];
        }),
      ),
      note: `${int(s.idle[0]?.params.n)} idle sessions per run; growth between before and after opening them, divided by the sessions. RSS rarely shrinks, so RSS growth can read low after earlier scenarios; heap and proxy memory figures are the ones to compare. Proxy memory: HAProxy's pools in use (PoolUsed_bytes), Envoy's heap allocated (admin /memory).`,
    });
  }
  if (s.scale.length) {
    out.push({
      title: 'Scale: sessions on ONE client connection (h2-mux), step by step until something stops it',
      header: ['route', 'step', 'open', 'echoed', 'client TCP', 'proxy sockets in/up', 'proxy counts conns/streams/upstream', 'RSS MB client/proxy/backends', 'open ms'],
      rows: s.scale.flatMap((r) =>
        r.steps.map((st) => [
          routeText(r.route),
          int(st.target),
          int(st.open),
          int(st.echoed),
          int(st.client.tcpEstablished),
          st.proxy ? `${int(st.proxy.accepted)} / ${int(st.proxy.upstream)}` : '–',
          `${int(st.proxy?.reported?.connections ?? st.proxy?.currConns)} / ${int(st.proxy?.reported?.sessions)} / ${int(st.proxy?.reported?.upstream)}`,
          `${mb(st.client.rssBytes)} / ${mb(st.proxy?.rssBytes)} / ${mb(st.backends.rssBytes)}`,
          ms(st.openMs),
        ]),
      ),
      note: s.scale.map((r) => `${routeText(r.route)}: reached ${int(r.reached)}${r.stoppedAt ? `, stopped at ${int(r.stoppedAt)}` : ''} — ${r.reason}`).join(' | '),
    });
  }
  if (result.ratios.length) {
    out.push({
      title: 'Ratios of alternated runs (one per repetition pair; median) and the A/A noise floor',
      header: ['comparison', 'metric', 'pairs', 'median'],
      rows: result.ratios.map((r) => [r.description, r.metric, r.pairs.map((p) => p.toFixed(2)).join(', ') || '–', x2(r.median)]),
    });
  }
  return out;
}

export function targetsTable(result: BenchResult): Table {
  return {
    title: 'Targets',
    header: ['target', 'measured', 'met', 'why (where missed)'],
    rows: result.targets.map((t) => [t.goal, t.measured, t.met === null ? 'not measured' : t.met ? 'yes' : 'NO', t.why || '–']),
  };
}

export function conditionsLines(result: BenchResult): string[] {
  const c = result.conditions;
  const g = c.gateway;
  const lines = [
    `${result.name} · profile ${result.profile} · ${result.startedAt} · ${result.wallS.toFixed(0)} s`,
    `machine: ${result.machine.cpuModel} × ${result.machine.cpus}, ${(result.machine.memoryMb / 1024).toFixed(0)} GB, ${result.machine.platform} ${result.machine.kernel}, open files ${result.machine.openFilesLimit ?? '?'}, load ${result.machine.loadAvgStart.map((l) => l.toFixed(2)).join(' ')} → ${result.machine.loadAvgEnd.map((l) => l.toFixed(2)).join(' ')}`,
    `versions: Node ${result.versions.node} (V8 ${result.versions.v8}), HAProxy ${result.versions.haproxy ?? '–'}, Envoy ${result.versions.envoy ?? '–'}, ws ${result.versions.ws ?? '?'}, hdr-histogram-js ${result.versions.hdrHistogram ?? '?'}`,
    `gateway: ${c.backends} backends, front upstream ${g.upstreamProtocol}, streams/connection ${g.h2MaxConcurrentStreams}${g.h2upStreams ? ` (h2-upstream fronts ${g.h2upStreams})` : ''}, HAProxy maxconn ${g.haproxyMaxconn}${g.envoyConcurrency ? `, Envoy concurrency ${g.envoyConcurrency}` : ''}, maxSessionMemory ${g.maxSessionMemoryMb} MB (client and backends), ${c.reps} alternated repetition(s) + A/A, loopback only`,
  ];
  for (const r of result.routes) {
    const p = r.peer;
    lines.push(
      `route ${ROUTE_LABEL[r.name]} (${r.url}): upstream ${r.upstreamProtocol ?? '–'}; peer SETTINGS ${p ? `max streams ${p.maxConcurrentStreams ?? '∞'}, initial window ${p.initialWindowSize ?? '?'}, max frame ${p.maxFrameSize ?? '?'}, connection window ${p.connectionWindow ?? '?'}, extended CONNECT ${p.enableConnectProtocol ? 'yes' : 'no'}` : 'n/a (no h2c)'}`,
    );
  }
  for (const n of c.notes) lines.push(`note: ${n}`);
  return lines;
}

// ---- renderers ---------------------------------------------------------------------------------

export function renderText(t: Table): string {
  const widths = t.header.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  const body = [line(t.header), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...t.rows.map(line)];
  return [`${t.title}`, ...body, ...(t.note ? [t.note] : [])].join('\n');
}

function renderMarkdown(t: Table): string {
  const cell = (c: string) => c.replace(/\|/g, '\\|');
  return [
    `**${t.title}**`,
    '',
    `| ${t.header.map(cell).join(' | ')} |`,
    `|${t.header.map(() => '---').join('|')}|`,
    ...t.rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
    ...(t.note ? ['', `_${t.note}_`] : []),
  ].join('\n');
}

function renderHtmlTable(t: Table): string {
  return (
    `<h3>${esc(t.title)}</h3><table><thead><tr>${t.header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>` +
    t.rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('') +
    `</tbody></table>${t.note ? `<p class="note">${esc(t.note)}</p>` : ''}`
  );
}

// ---- charts ------------------------------------------------------------------------------------

export interface Chart {
  id: string;
  title: string;
  svg: string;
}

/** Short route names under the idle-memory bars. */
const IDLE_LABEL: Record<RouteName, string> = { front: 'HAProxy', 'front-h2up': 'HAProxy h2up', envoy: 'Envoy', 'envoy-h2up': 'Envoy h2up', direct: 'direct', reference: 'bare ws', ext: 'ext' };

/** x position of a percentile on a "nines" axis: 90% → 1, 99% → 2, 99.9% → 3 … */
const nines = (p: number) => -Math.log10(Math.max(1e-5, 1 - p / 100));

export function charts(result: BenchResult): Chart[] {
  const out: Chart[] = [];
  const s = result.scenarios;
  for (const g of grouped(s.latency)) {
    const series: Series[] = g.cells.map((c) => {
      // The repetition with the median p99 represents the cell.
      const ok = c.runs.filter((r) => r.ok).sort((a, b) => a.latency.p99Ms - b.latency.p99Ms);
      const rep: LatencyRun | undefined = ok[Math.floor((ok.length - 1) / 2)];
      return {
        name: cellLabel(c.path, c.route),
        color: colorOf(c.path, c.route),
        dashed: c.path === 'h1-upgrade',
        points: (rep?.latency.cdf ?? []).map(([p, v]) => [p === 100 ? 5 : nines(p), v] as [number, number]),
      };
    });
    const sample = g.sample;
    out.push({
      id: `latency-cdf-${sample.params.size}`,
      title: `Echo latency CDF, ${sizeText(sample.params.size)} at ${sample.params.ratePerS}/s`,
      svg: lineChart({
        title: `Echo latency by percentile — ${sizeText(sample.params.size)} at ${sample.params.ratePerS} msg/s`,
        xLabel: 'percentile',
        yLabel: 'latency (ms, log)',
        yLog: true,
        xTicks: [[0, '0%'], [1, '90%'], [2, '99%'], [3, '99.9%'], [4, '99.99%'], [5, 'max']],
        series,
      }),
    });
  }
  const tp = grouped(s.throughput);
  for (const mode of ['single', 'burst'] as const) {
    const groups = tp.filter((g) => g.sample.params.mode === mode);
    if (groups.length === 0) continue;
    out.push({
      id: `throughput-${mode}`,
      title: `Throughput (${mode})`,
      svg: barChart({
        title: `Max echo throughput, ${mode === 'single' ? 'one message in flight per session' : 'burst: several in flight per session'}`,
        yLabel: 'echoes per second',
        groups: groups.map((g) => ({
          label: mode === 'single' ? sizeText(g.sample.params.size) : `${sizeText(g.sample.params.size)} × ${g.sample.params.window} in flight`,
          bars: g.cells.map((c) => ({
            name: cellLabel(c.path, c.route),
            color: colorOf(c.path, c.route),
            value: med(c.runs, (r) => r.msgsPerS),
            missing: c.runs.some((r) => r.ok) ? undefined : 'failed',
          })),
        })),
      }),
    });
  }
  if (s.storm.length) {
    const cells = grouped(s.storm).flatMap((g) => g.cells.map((c) => `${c.path}|${c.route}`));
    const unique = [...new Set(cells)];
    const series: Series[] = unique.map((key) => {
      const [path, route] = key.split('|') as [PathName, RouteName];
      const points: Array<[number, number]> = [];
      for (const g of grouped(s.storm)) {
        const c = g.cells.find((x) => x.path === path && x.route === route);
        const v = c ? med(c.runs, (r) => r.openMs) : null;
        if (v !== null) points.push([g.sample.params.n, v]);
      }
      return { name: cellLabel(path, route), color: colorOf(path, route), dashed: path === 'h1-upgrade', points };
    });
    out.push({
      id: 'storm',
      title: 'Connect storm: time to open all vs N',
      svg: lineChart({ title: 'Connect storm: time until all N sessions are open', xLabel: 'sessions (log)', yLabel: 'ms (log)', xLog: true, yLog: true, series }),
    });
  }
  if (s.idle.length) {
    const g = grouped(s.idle)[0]!;
    out.push({
      id: 'idle-memory',
      title: 'Memory per idle session',
      svg: barChart({
        title: 'Memory per idle session after forced GC (bytes)',
        yLabel: 'bytes per session',
        groups: g.cells.map((c) => ({
          label: `${c.path === 'h2-mux' ? 'h2' : 'h1'} ${IDLE_LABEL[c.route]}`,
          bars: [
            { name: 'client heap', color: '#4e79a7', value: med(c.runs, (r) => r.perSession.client.heapBytes) },
            { name: 'proxy (HAProxy pools, Envoy heap)', color: '#f28e2b', value: c.route === 'direct' ? null : med(c.runs, (r) => r.perSession.proxy?.poolBytes) },
            { name: 'backends heap', color: '#59a14f', value: med(c.runs, (r) => r.perSession.backends.heapBytes) },
          ],
        })),
      }),
    });
  }
  if (s.fanout.length) {
    out.push({
      id: 'fanout',
      title: 'Fan-out delivery p99',
      svg: barChart({
        title: 'Fan-out: delivery latency p99 to every member (ms)',
        yLabel: 'ms',
        groups: grouped(s.fanout).map((g) => ({
          label: `${g.sample.params.members} members`,
          bars: g.cells.map((c) => ({ name: cellLabel(c.path, c.route), color: colorOf(c.path, c.route), value: med(c.runs, (r) => r.delivery.p99Ms) })),
        })),
      }),
    });
  }
  if (s.scale.length) {
    out.push({
      id: 'scale',
      title: 'Scale: client and proxy memory vs sessions on one connection',
      svg: lineChart({
        title: 'Sessions on one client connection: RSS as they grow',
        xLabel: 'sessions open and echoing',
        yLabel: 'RSS (MB)',
        series: s.scale.flatMap((r) => [
          { name: `client, ${ROUTE_LABEL[r.route]}`, color: colorOf('h2-mux', r.route), points: r.steps.map((st) => [st.open, (st.client.rssBytes ?? NaN) / 2 ** 20] as [number, number]) },
          { name: `${proxyName(r.route)}, ${ROUTE_LABEL[r.route]}`, color: colorOf('h1-upgrade', r.route), dashed: true, points: r.steps.map((st) => [st.open, (st.proxy?.rssBytes ?? NaN) / 2 ** 20] as [number, number]) },
        ]),
      }),
    });
  }
  return out;
}

// ---- HTML report -------------------------------------------------------------------------------

const CSS = `body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1320px;padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}h3{font-size:15px;margin:22px 0 6px}
table{border-collapse:collapse;font-size:12px;margin:4px 0}th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f6f6f6}tr:nth-child(even) td{background:#fbfbfb}.note{color:#666;font-size:12px;margin:4px 0 0}
.charts{display:flex;flex-wrap:wrap;gap:16px}.charts figure{margin:0;border:1px solid #eee}
.cond{font:12px/1.5 ui-monospace,Menlo,Consolas,monospace;background:#f8f8f8;padding:10px;white-space:pre-wrap}
.met-yes{color:#1a7f37;font-weight:600}.met-NO{color:#c62828;font-weight:600}`;

export function html(result: BenchResult): string {
  const t = targetsTable(result);
  const targets =
    `<table><thead><tr>${t.header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>` +
    t.rows.map((r) => `<tr>${r.map((c, i) => `<td${i === 2 ? ` class="met-${esc(c)}"` : ''}>${esc(c)}</td>`).join('')}</tr>`).join('') +
    '</tbody></table>';
  const chartHtml = charts(result)
    .map((c) => `<figure id="${esc(c.id)}">${c.svg}</figure>`)
    .join('\n');
  const data = JSON.stringify(result).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bench ${esc(result.name)}: HTTP/2 multiplexed vs HTTP/1.1 Upgrade</title><style>${CSS}</style></head>
<body>
<h1>WebSocket gateway bench — HTTP/2 multiplexed (RFC 8441) vs HTTP/1.1 Upgrade, via HAProxy, via Envoy and direct</h1>
<div class="cond">${esc(conditionsLines(result).join('\n'))}</div>
<h2>Targets</h2>${targets}
<h2>Charts</h2><div class="charts">${chartHtml}</div>
<h2>Results</h2>${tables(result).map(renderHtmlTable).join('\n')}
<h2>Method</h2><ul>
<li>Loopback only; every scenario bounded in count and time. The load generator is its own process (forked, one per path × route), so the client has its own event loop and CPU account.</li>
<li>Runs alternate A B … B A over the cells; each scenario repeats one run (A/A) to show the noise floor. Ratios are per repetition pair, then the median.</li>
<li>CPU per unit: the load generator's process.cpuUsage(), the proxy (HAProxy's worker, the Envoy process) and each backend from /proc/&lt;pid&gt;/stat, between the start and end marks of the measured window.</li>
<li>Latency at a fixed rate: open loop, each message measured from its intended send time (coordinated omission corrected); HdrHistogram, 3 significant digits.</li>
<li>Sockets from /proc/&lt;pid&gt;/fd matched to /proc/net/tcp; memory after forced GC (load generator: --expose-gc; backends: V8 inspector HeapProfiler.collectGarbage).</li>
</ul>
<script type="application/json" id="bench-result">${data}</script>
</body></html>
`;
}

// ---- README section ---------------------------------------------------------------------------

export function markdown(result: BenchResult, chartFiles: Array<{ id: string; title: string; file: string }>): string {
  const t = targetsTable(result);
  const pick = (title: string) => tables(result).find((x) => x.title.startsWith(title));
  const parts = [
    '```',
    ...conditionsLines(result),
    '```',
    '',
    renderMarkdown(t),
    '',
    ...chartFiles.map((c) => `![${c.title}](${c.file})`),
    '',
  ];
  for (const title of ['Connect storm', 'Echo latency', 'Max echo throughput', 'Fan-out', 'Idle cost', 'Scale']) {
    const table = pick(title);
    if (table) parts.push(renderMarkdown(table), '');
  }
  return parts.join('\n');
}

export { paramsText };
