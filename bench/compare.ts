import { readFileSync } from 'node:fs';
import { MAIN_METRIC, median, paramsKey, paramsText } from './analysis.js';
import { BenchResultError } from './errors.js';
import { grouped, renderText, type Table } from './report.js';
import { cellLabel, RESULT_SCHEMA, SCENARIOS, type AnyRun, type BenchResult } from './result.js';

// `npm run bench -- --compare A.json B.json`: the main metric of every (scenario, parameters, cell)
// present in both files, as B/A, plus the targets side by side and any difference in conditions.

export function loadResult(file: string): BenchResult {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new BenchResultError(file, `cannot read JSON: ${(err as Error).message}`);
  }
  const r = data as Partial<BenchResult>;
  if (r.schema !== RESULT_SCHEMA) throw new BenchResultError(file, `schema is ${JSON.stringify(r.schema)}, expected ${RESULT_SCHEMA}`);
  if (!r.scenarios || SCENARIOS.some((s) => !Array.isArray(r.scenarios?.[s]))) throw new BenchResultError(file, 'scenarios are missing');
  if (!Array.isArray(r.targets) || !Array.isArray(r.ratios)) throw new BenchResultError(file, 'targets or ratios are missing');
  return r as BenchResult;
}

/** Lower is better for times and bytes; higher for rates and counts. */
const HIGHER_IS_BETTER: Record<string, boolean> = { storm: false, latency: false, throughput: true, fanout: false, idle: false, scale: true };

export interface ComparisonRow {
  scenario: string;
  params: string;
  cell: string;
  metric: string;
  a: number | null;
  b: number | null;
  ratio: number | null;
}

function compareResults(a: BenchResult, b: BenchResult): ComparisonRow[] {
  const rows: ComparisonRow[] = [];
  for (const scenario of SCENARIOS) {
    const metric = MAIN_METRIC[scenario];
    const runsB = b.scenarios[scenario] as AnyRun[];
    for (const g of grouped(a.scenarios[scenario] as AnyRun[])) {
      for (const c of g.cells) {
        const inB = runsB.filter((r) => !r.aa && r.path === c.path && r.route === c.route && paramsKey(r) === g.params);
        if (inB.length === 0) continue;
        const va = median(c.runs.map((r) => metric.of(r) ?? NaN));
        const vb = median(inB.map((r) => metric.of(r) ?? NaN));
        rows.push({
          scenario,
          params: paramsText(g.sample),
          cell: cellLabel(c.path, c.route),
          metric: metric.name,
          a: va,
          b: vb,
          ratio: va !== null && vb !== null && va !== 0 ? vb / va : null,
        });
      }
    }
  }
  return rows;
}

export function compareText(a: BenchResult, b: BenchResult, fileA: string, fileB: string): string {
  const rows = compareResults(a, b);
  const num = (v: number | null) => (v === null ? '–' : v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2));
  const verdict = (scenario: string, r: number | null) => {
    if (r === null) return '';
    if (Math.abs(r - 1) < 0.05) return '≈';
    return (r > 1) === HIGHER_IS_BETTER[scenario] ? 'B better' : 'A better';
  };
  const table: Table = {
    title: `B / A — A = ${fileA} (${a.name}, ${a.startedAt}), B = ${fileB} (${b.name}, ${b.startedAt})`,
    header: ['scenario', 'parameters', 'cell', 'metric', 'A', 'B', 'B/A', ''],
    rows: rows.map((r) => [r.scenario, r.params, r.cell, r.metric, num(r.a), num(r.b), r.ratio === null ? '–' : r.ratio.toFixed(2), verdict(r.scenario, r.ratio)]),
    note: 'Medians over each file\'s alternated repetitions. Compare against each file\'s A/A noise floor (ratios section) before reading a difference as real.',
  };
  const targets: Table = {
    title: 'Targets',
    header: ['target', 'A', 'B'],
    rows: a.targets.map((t) => {
      const tb = b.targets.find((x) => x.id === t.id);
      const show = (x: typeof t | undefined) => (x ? `${x.value === null ? 'n/a' : Number(x.value.toFixed(2)).toLocaleString('en-US')} (${x.met === null ? 'not measured' : x.met ? 'met' : 'missed'})` : '–');
      return [t.id, show(t), show(tb)];
    }),
  };
  const diffs: string[] = [];
  const cmp = (what: string, x: unknown, y: unknown) => JSON.stringify(x) !== JSON.stringify(y) && diffs.push(`${what}: A ${JSON.stringify(x)} vs B ${JSON.stringify(y)}`);
  cmp('profile', a.profile, b.profile);
  cmp('node', a.versions.node, b.versions.node);
  cmp('haproxy', a.versions.haproxy, b.versions.haproxy);
  // Results from before the Envoy routes carry no Envoy version: the same as none.
  cmp('envoy', a.versions.envoy ?? null, b.versions.envoy ?? null);
  cmp('gateway config', a.conditions.gateway, b.conditions.gateway);
  cmp('cpu', `${a.machine.cpuModel} × ${a.machine.cpus}`, `${b.machine.cpuModel} × ${b.machine.cpus}`);
  const aa = (r: BenchResult) =>
    r.ratios
      .filter((x) => x.aa)
      .map((x) => `${x.scenario} ${x.median === null ? '–' : x.median.toFixed(2)}`)
      .join(', ') || '–';
  return [
    renderText(table),
    '',
    renderText(targets),
    '',
    `A/A noise floors — A: ${aa(a)}; B: ${aa(b)}`,
    diffs.length ? `Conditions differ:\n  ${diffs.join('\n  ')}` : 'Conditions: same versions, profile and gateway config.',
  ].join('\n');
}
