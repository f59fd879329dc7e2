import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { defineCommand, exitOnMistake, isUserMistake, parseCommandLine } from '../lib/cli.js';
import { gatewaySchema, upstreamProtocolFor } from '../lib/config.js';
import { GatewayError, UsageError } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { computeRatios, computeTargets } from './analysis.js';
import { compareText, loadResult } from './compare.js';
import { benchEnvoyConcurrency, requireEnvoyForBench } from './envoy-route.js';
import { BenchEnv, packageVersion } from './environment.js';
import { probePeerSettings } from './peer-settings.js';
import { BenchOptionError } from './errors.js';
import { openFilesLimit } from '../lib/procfs.js';
import { FULL, QUICK, type Profile } from './profiles.js';
import { Progress } from '../lib/progress.js';
import { charts, conditionsLines, html, markdown, renderText, tables, targetsTable } from './report.js';
import { cellLabel, ENVOY_ROUTES, PATHS, RESULT_SCHEMA, ROUTES, SCENARIOS, type AnyRun, type BenchResult, type RouteName, type ScenarioName } from './result.js';
import { Runner } from './runner.js';
import { allScenarios, type Item } from './scenarios.js';

export const BENCH = defineCommand({
  name: 'npm run bench',
  about: [
    'HTTP/2 multiplexed vs HTTP/1.1 Upgrade WebSockets, via HAProxy, via Envoy and direct, on a',
    'private stack (loopback, ephemeral ports). Writes a JSON result and an HTML report, prints the',
    'summary tables. Config flags shape the stack, e.g. --upstream-protocol h2 for the "front" route.',
  ].join(' '),
  config: gatewaySchema,
  options: z.object({
    quick: z.boolean().default(false).describe('CI smoke profile: every scenario but scale, small counts, about a minute'),
    scenarios: z.string().optional().describe(`subset of ${SCENARIOS.join(',')}`),
    routes: z
      .string()
      .optional()
      .describe(
        `subset of ${ROUTES.filter((r) => r !== 'ext').join(',')} (full: ${FULL.routes.join(',')}; quick: ${QUICK.routes.join(',')}); ` +
          'front = HAProxy, -h2up = HTTP/2 upstream, reference = a bare ws echo server',
      ),
    reps: z.coerce.number().int().min(1).max(10).optional().describe('alternated repetitions per group (full 2, quick 1); one A/A run is always added'),
    scaleSteps: z.string().optional().describe('scale scenario: session counts to step through on every scale route, e.g. 10000,25000,50000,100000'),
    frontUrl: z.url().optional().describe('also bench an external front you run yourself, as route "ext"'),
    name: z.string().optional().describe('result name (default: <profile>-<timestamp>)'),
    out: z.string().optional().describe('JSON result (default bench/results/<name>.json)'),
    html: z.string().optional().describe('HTML report (default: the JSON path with .html)'),
    charts: z.string().optional().describe('also write each chart as an SVG file into this directory'),
    markdown: z.string().optional().describe('also write a Markdown results section (tables + chart links) to this file'),
    compare: z.string().optional().describe('--compare A.json B.json: print B/A ratios of two result files and exit'),
    report: z.string().optional().describe("--report FILE.json: re-render a result's HTML (and --charts/--markdown) from its JSON"),
  }),
});

const log = logger('bench');

function list<T extends string>(value: unknown, allowed: readonly T[], what: string): T[] | undefined {
  if (typeof value !== 'string') return undefined;
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const i of items) if (!allowed.includes(i as T)) throw new BenchOptionError(`unknown ${what} "${i}" (one of ${allowed.join(', ')})`);
  return items as T[];
}

function itemText(scenario: ScenarioName, item: Item<unknown>): string {
  const p = item.params as Record<string, unknown>;
  const what =
    scenario === 'storm' ? `${p.n} sessions` :
    scenario === 'latency' ? `${p.size} B` :
    scenario === 'throughput' ? `${p.size} B ${p.mode}` :
    scenario === 'fanout' ? `${p.members} members` :
    scenario === 'idle' ? 'idle' : 'scale';
  return `${scenario} ${what} · ${cellLabel(item.cell.path, item.cell.route)}${item.aa ? ' (A/A)' : ''}`;
}

function outcome(run: AnyRun): string {
  if (run.skipped) return `skipped: ${run.skipped}`;
  if (!run.ok) return `FAILED: ${run.error ?? 'unknown'}`;
  switch (run.scenario) {
    case 'storm':
      return `${run.opened} open in ${run.openMs.toFixed(0)} ms`;
    case 'latency':
      return `p99 ${run.latency.p99Ms.toFixed(2)} ms`;
    case 'throughput':
      return `${Math.round(run.msgsPerS).toLocaleString('en-US')} echoes/s`;
    case 'fanout':
      return `p99 ${run.delivery.p99Ms.toFixed(2)} ms`;
    case 'idle':
      return `client ${Math.round(run.perSession.client.heapBytes ?? 0)} B/session`;
    case 'scale':
      return `reached ${run.reached.toLocaleString('en-US')}`;
  }
}

function write(file: string, text: string): void {
  mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  writeFileSync(file, text);
}

async function main(argv: readonly string[]): Promise<number> {
  const parsed = parseCommandLine(BENCH, argv.includes('--compare') || argv.includes('--report') ? argv.filter((a) => a === '--help' || a === '-h') : argv);
  if ('help' in parsed) {
    process.stdout.write(parsed.help);
    return 0;
  }
  const compareAt = argv.indexOf('--compare');
  if (compareAt >= 0) {
    const [a, b] = [argv[compareAt + 1], argv[compareAt + 2]];
    if (!a || !b) throw new BenchOptionError('--compare needs two result files: --compare A.json B.json');
    process.stdout.write(compareText(loadResult(a), loadResult(b), a, b) + '\n');
    return 0;
  }
  const reportAt = argv.indexOf('--report');
  if (reportAt >= 0) return rerender(argv, reportAt);
  const { config, options: flags } = parsed;

  const base = flags.quick ? QUICK : FULL;
  const profile: Profile = structuredClone(base);
  profile.scenarios = list(flags.scenarios, SCENARIOS, 'scenario') ?? profile.scenarios;
  profile.routes = list(flags.routes, ROUTES, 'route') ?? profile.routes;
  if (flags.frontUrl !== undefined && !profile.routes.includes('ext')) profile.routes.push('ext');
  if (flags.reps !== undefined) profile.reps = flags.reps;
  if (flags.scaleSteps !== undefined) {
    const steps = flags.scaleSteps.split(',').map((x) => Number(x.trim()));
    if (steps.some((n) => !Number.isInteger(n) || n < 1) || steps.some((n, i) => i > 0 && n <= steps[i - 1]!)) {
      throw new BenchOptionError(`--scale-steps "${flags.scaleSteps}": rising positive session counts, e.g. 10000,25000,50000`);
    }
    for (const s of profile.scale.routes) s.steps = steps;
    profile.h2upStreams = Math.max(profile.h2upStreams, Math.ceil(steps.at(-1)! * 1.1));
  }
  // The scale scenario needs the routes it measures; with --routes it measures only those given.
  if (flags.routes === undefined) {
    for (const s of profile.scale.routes) if (profile.scenarios.includes('scale') && !profile.routes.includes(s.route)) profile.routes.push(s.route);
  }

  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const name = flags.name ?? `${profile.name}-${stamp}`;
  const out = flags.out ?? path.join('bench', 'results', `${name}.json`);
  const htmlFile = flags.html ?? out.replace(/\.json$/i, '') + '.html';

  const startedAt = new Date();
  const loadAvgStart = os.loadavg();
  // Before anything starts: the Envoy routes need the binary scripts/install-deps installs.
  const envoyRoutes = profile.routes.filter((r) => (ENVOY_ROUTES as readonly RouteName[]).includes(r));
  if (envoyRoutes.length > 0) requireEnvoyForBench(envoyRoutes);
  const count = (names: readonly RouteName[]) => profile.routes.filter((r) => names.includes(r)).length;
  const proxies = [['HAProxy', count(['front', 'front-h2up'])], ['Envoy', count(['envoy', 'envoy-h2up'])]] as const;
  const fronts = proxies.filter(([, n]) => n > 0).map(([what, n]) => ` + ${what}${n > 1 ? ` ×${n}` : ''}`).join('');
  process.stderr.write(`bench: starting the stack (${config.backendPorts.length} backends${fronts}) on private loopback ports…\n`);
  const envoyConcurrency = benchEnvoyConcurrency();
  const env = await BenchEnv.start({
    routes: profile.routes,
    config,
    h2upStreams: profile.h2upStreams,
    envoyConcurrency,
    extUrl: flags.frontUrl,
    onStackOutput: (line) => process.stderr.write(`${line}\n`),
  });

  const scenarios = allScenarios();
  const plans = profile.scenarios.map((s) => ({ name: s, scenario: scenarios[s], items: scenarios[s].plan(profile) }));
  const total = plans.reduce((n, p) => n + p.items.length, 0);
  const progress = new Progress('bench', total);
  const runner = new Runner(env, profile, progress);

  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    progress.note('bench: interrupted — stopping load generators and the stack');
    runner.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const runs: Record<ScenarioName, AnyRun[]> = { storm: [], latency: [], throughput: [], fanout: [], idle: [], scale: [] };
  const haproxyInfo: Record<string, Record<string, string>> = {};
  const envoyInfo: Record<string, Record<string, string>> = {};
  try {
    for (const route of env.routes.values()) {
      runner.peers.set(route.name, (await probePeerSettings(route.url)) ?? null);
      if (route.proxy?.engine === 'haproxy') {
        const info = await env.proxyInfo(route);
        haproxyInfo[route.name] = Object.fromEntries(
          ['Version', 'Nbthread', 'Maxconn', 'Hard_maxconn', 'Ulimit-n', 'Maxsock', 'Maxpipes'].filter((k) => info[k] !== undefined).map((k) => [k, info[k]!]),
        );
      } else if (route.proxy?.engine === 'envoy') {
        envoyInfo[route.name] = await env.proxyInfo(route);
      }
    }
    for (const p of plans) {
      for (const item of p.items) {
        if (interrupted) break;
        progress.start(itemText(p.name, item));
        let run: AnyRun;
        try {
          run = await p.scenario.run(runner, item);
        } catch (err) {
          if (interrupted) break;
          throw err;
        }
        runs[p.name].push(run);
        progress.finish(outcome(run));
      }
      await runner.releaseAll();
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await runner.releaseAll().catch(() => {});
    for (const route of env.routes.values()) runner.events.push(...(route.proxy?.logSummary() ?? []));
    progress.end();
    await env.stop().catch((err: unknown) => log.warn({ err: (err as Error).message }, 'stopping the stack'));
  }
  if (interrupted) return 130;

  const all = Object.values(runs).flat();
  const ratios = computeRatios(all);
  const h2upRoute = env.routes.get('front-h2up') ?? env.routes.get('envoy-h2up');
  const envoyRan = env.envoyVersion !== '';
  const result: BenchResult = {
    schema: RESULT_SCHEMA,
    name,
    profile: profile.name,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    wallS: (Date.now() - startedAt.getTime()) / 1000,
    command: `npm run bench -- ${argv.join(' ')}`.trim(),
    machine: {
      hostname: os.hostname(),
      platform: os.platform(),
      kernel: os.release(),
      arch: os.arch(),
      cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
      cpus: os.cpus().length,
      memoryMb: Math.round(os.totalmem() / 2 ** 20),
      openFilesLimit: openFilesLimit() ?? null,
      loadAvgStart,
      loadAvgEnd: os.loadavg(),
    },
    versions: {
      node: process.version,
      v8: process.versions.v8,
      haproxy: env.haproxyVersion || null,
      envoy: env.envoyVersion || null,
      ws: packageVersion('ws'),
      hdrHistogram: packageVersion('hdr-histogram-js'),
    },
    conditions: {
      backends: env.backends.filter((b) => b.id !== 'ref').length,
      loopback: true,
      gateway: {
        // The bench's own stack is HAProxy's (route "front").
        upstreamProtocol: upstreamProtocolFor({ ...env.config, front: 'haproxy' }),
        h2MaxConcurrentStreams: env.config.h2MaxConcurrentStreams,
        h2upStreams: h2upRoute ? profile.h2upStreams : null,
        haproxyMaxconn: env.config.haproxyMaxconn,
        envoyConcurrency: envoyRan ? envoyConcurrency : null,
        maxSessionMemoryMb: env.config.maxSessionMemoryMb,
        maxPayloadBytes: env.config.maxPayloadBytes,
      },
      haproxyInfo,
      envoyInfo,
      reps: profile.reps,
      notes: [
        'The machine is shared: other processes may run during the bench. Read ratios of alternated runs against the A/A noise floor, not absolute numbers.',
        'Backends run with --inspect=127.0.0.1:0 (idle, no session attached) so the bench can force a GC in them.',
        'Direct routes target backend b1 only; via a front, sessions are balanced per stream over all backends, except in the throughput scenario where the fronts are pinned to b1 too (front/direct then isolates the proxy hop).',
        ...(envoyRan
          ? [
              `Envoy runs with --concurrency ${envoyConcurrency}, one worker per core, as HAProxy runs one thread per core (nbthread default). Each Envoy route has its own xDS server and registry: pinning marks the other endpoints DRAINING over EDS.`,
            ]
          : []),
        `Burst regime: min(${profile.throughput.burstWindow}, ${profile.throughput.burstBytes} B / size) messages in flight per session.`,
        // The same event twice (e.g. two releases of the same stuck sessions) is one note.
        ...new Set(runner.events),
      ],
    },
    options: { ...profile },
    routes: [...env.routes.values()].map((r) => ({ name: r.name, url: r.url, upstreamProtocol: r.upstreamProtocol, peer: runner.peers.get(r.name) ?? null })),
    paths: [...PATHS],
    scenarios: runs as BenchResult['scenarios'],
    ratios,
    targets: [],
  };
  result.targets = computeTargets(result, ratios);

  write(out, JSON.stringify(result, null, 2) + '\n');
  emit(result, { json: out, html: htmlFile, charts: flags.charts, markdown: flags.markdown });
  const failed = all.filter((r) => !r.ok && !r.skipped).length;
  if (failed) process.stderr.write(`bench: ${failed} of ${all.length} runs failed (recorded in the result with their errors)\n`);
  return 0;
}

/** Write the HTML (and optional SVG files and Markdown) of a result and print its summary. */
function emit(result: BenchResult, files: { json: string; html: string; charts?: unknown; markdown?: unknown }): void {
  write(files.html, html(result));
  const chartFiles: Array<{ id: string; title: string; file: string }> = [];
  if (typeof files.charts === 'string') {
    for (const c of charts(result)) {
      const file = path.join(files.charts, `${c.id}.svg`);
      write(file, c.svg + '\n');
      chartFiles.push({ id: c.id, title: c.title, file });
    }
  }
  if (typeof files.markdown === 'string') write(files.markdown, markdown(result, chartFiles));
  const text = [
    '',
    ...conditionsLines(result),
    '',
    ...tables(result).map((t) => renderText(t) + '\n'),
    renderText(targetsTable(result)),
    '',
    `JSON: ${files.json}`,
    `HTML: ${files.html}`,
    ...(chartFiles.length ? [`charts: ${chartFiles.map((c) => c.file).join(', ')}`] : []),
    ...(typeof files.markdown === 'string' ? [`markdown: ${files.markdown}`] : []),
  ];
  process.stdout.write(text.join('\n') + '\n');
}

/** --report FILE.json: ratios and targets recomputed from the recorded runs, then every output again. */
function rerender(argv: readonly string[], at: number): number {
  const file = argv[at + 1];
  if (!file) throw new BenchOptionError('--report needs a result file: --report bench/results/x.json');
  const value = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const result = loadResult(file);
  const runs = Object.values(result.scenarios).flat() as AnyRun[];
  result.ratios = computeRatios(runs);
  result.targets = computeTargets(result, result.ratios);
  emit(result, { json: file, html: value('--html') ?? file.replace(/\.json$/i, '') + '.html', charts: value('--charts'), markdown: value('--markdown') });
  return 0;
}

export async function cli(argv: readonly string[]): Promise<void> {
  try {
    process.exitCode = await main(argv);
  } catch (err) {
    // A wrong option is the user's to fix: one line and exit code 2, as every command does.
    if (isUserMistake(err)) exitOnMistake(BENCH, err);
    if (err instanceof BenchOptionError) exitOnMistake(BENCH, new UsageError(err.message));
    const message = err instanceof GatewayError ? `${err.code}: ${err.message}` : String((err as Error)?.stack ?? err);
    process.stderr.write(`bench failed: ${message}\n`);
    process.exitCode = 1;
  }
}

export type { RouteName };
