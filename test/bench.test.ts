import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { median } from '../bench/analysis.js';
import { envoyMessageKind } from '../bench/envoy-route.js';
import { PATHS, RESULT_SCHEMA, SCENARIOS, type BenchResult } from '../bench/result.js';
import { alternate } from '../bench/runner.js';
import { barChart, lineChart } from '../bench/svg.js';

// The bench as CI runs it: `--quick` on a private stack (HAProxy, the real Envoy of
// scripts/install-deps, and direct), then checks that it produced a valid JSON result and a
// self-contained HTML report of the expected shape. Never a timing threshold: the numbers
// themselves are whatever this machine gave.

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = path.join(ROOT, 'bench', 'main.ts');

function bench(args: string[], timeoutMs: number) {
  return run(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    timeout: timeoutMs,
    maxBuffer: 16 * 2 ** 20,
    env: { ...process.env, LOG_LEVEL: 'error', LOG_FORMAT: 'json' },
  });
}

describe('npm run bench -- --quick (CI smoke: the bench works, whatever the numbers)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-bench-test-'));
  const json = path.join(dir, 'quick.json');
  const htmlFile = path.join(dir, 'quick.html');
  const charts = path.join(dir, 'charts');
  const md = path.join(dir, 'results.md');
  let stdout = '';
  let result: BenchResult;

  beforeAll(async () => {
    // A hang guard, not a performance gate: the quick profile takes about a minute on a quiet
    // machine, and up to three on this shared 2-core one.
    const out = await bench(['--quick', '--name', 'ci-smoke', '--out', json, '--html', htmlFile, '--charts', charts, '--markdown', md], 330_000);
    stdout = out.stdout;
    result = JSON.parse(readFileSync(json, 'utf8')) as BenchResult;
  }, 340_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a JSON result with machine, versions and conditions', () => {
    expect(result.schema).toBe(RESULT_SCHEMA);
    expect(result.name).toBe('ci-smoke');
    expect(result.profile).toBe('quick');
    expect(result.versions.node).toBe(process.version);
    expect(result.versions.haproxy).toMatch(/^\d+\.\d+/);
    expect(result.versions.envoy).toMatch(/^\d+\.\d+\.\d+$/);
    expect(result.machine.cpus).toBeGreaterThan(0);
    expect(result.conditions.gateway).toMatchObject({
      h2MaxConcurrentStreams: expect.any(Number),
      haproxyMaxconn: expect.any(Number),
      maxSessionMemoryMb: expect.any(Number),
      envoyConcurrency: expect.any(Number),
    });
    expect(result.paths).toEqual([...PATHS]);
    const routes = result.routes.map((r) => r.name).sort();
    expect(routes).toEqual(['direct', 'envoy-h2up', 'front']);
    // HAProxy, Envoy and the backend all speak RFC 8441 over h2c; their SETTINGS are recorded.
    for (const r of result.routes) expect(r.peer?.enableConnectProtocol, r.name).toBe(true);
    // Envoy's front listener carries the stream limit the bench gave its xDS server.
    expect(result.routes.find((r) => r.name === 'envoy-h2up')?.peer?.maxConcurrentStreams).toBe(result.conditions.gateway.h2upStreams);
    expect(result.conditions.envoyInfo?.['envoy-h2up']).toMatchObject({ Version: result.versions.envoy, Concurrency: String(result.conditions.gateway.envoyConcurrency), Upstream: 'h2' });
  });

  it('runs every scenario of the quick profile over the whole path × route matrix, alternated, with one A/A run each', () => {
    const expected = ['storm', 'latency', 'throughput', 'fanout', 'idle'] as const;
    expect(Object.keys(result.scenarios).sort()).toEqual([...SCENARIOS].sort());
    expect(result.scenarios.scale).toEqual([]);
    const seqs: number[] = [];
    for (const name of expected) {
      const runs = result.scenarios[name];
      expect(runs.length, name).toBeGreaterThan(0);
      const cells = new Set(runs.map((r) => `${r.path}|${r.route}`));
      expect([...cells].sort(), name).toEqual(['h1-upgrade|direct', 'h1-upgrade|envoy-h2up', 'h1-upgrade|front', 'h2-mux|direct', 'h2-mux|envoy-h2up', 'h2-mux|front']);
      expect(runs.filter((r) => r.aa).length, `${name} A/A runs`).toBe(1);
      for (const r of runs) {
        expect(r.scenario).toBe(name);
        expect(typeof r.ok).toBe('boolean');
        expect(r.conditions).toMatchObject({ node: process.version, route: r.route, backendStreamLimit: expect.any(Number) });
        // Which proxy a run went through is recorded with it.
        expect(r.conditions.haproxy === null, `${r.label} haproxy`).toBe(r.route !== 'front');
        expect(r.conditions.envoy ?? null, `${r.label} envoy`).toBe(r.route === 'envoy-h2up' ? result.versions.envoy : null);
        seqs.push(r.seq);
      }
    }
    expect(new Set(seqs).size).toBe(seqs.length);
  });

  it('records latency percentiles, a CDF, throughput in both regimes, sockets, memory and CPU per unit', () => {
    for (const r of result.scenarios.latency.filter((x) => x.ok)) {
      const l = r.latency;
      expect(l.count).toBeGreaterThan(0);
      expect(l.p50Ms).toBeLessThanOrEqual(l.p90Ms);
      expect(l.p90Ms).toBeLessThanOrEqual(l.p99Ms);
      expect(l.p99Ms).toBeLessThanOrEqual(l.p999Ms);
      expect(l.p999Ms).toBeLessThanOrEqual(l.maxMs);
      const values = l.cdf.map(([, v]) => v);
      expect(values).toEqual([...values].sort((a, b) => a - b));
      expect(r.cpu?.totalUs).toBeGreaterThanOrEqual(0);
      // The proxy's CPU comes from /proc of its process: HAProxy's worker, Envoy itself.
      if (r.route !== 'direct') expect(r.cpu?.proxyUs, r.label).toEqual(expect.any(Number));
    }
    expect(new Set(result.scenarios.throughput.map((r) => r.params.mode))).toEqual(new Set(['single', 'burst']));
    for (const r of result.scenarios.throughput) {
      expect(r.msgsPerS).toBeGreaterThanOrEqual(0);
      expect(r.mbPerS).toBeGreaterThanOrEqual(0);
    }
    for (const r of result.scenarios.storm.filter((x) => x.ok)) {
      // Sockets are read from /proc, not assumed: h2 carries every session on one connection.
      expect(r.client.tcpEstablished).toBe(r.path === 'h2-mux' ? 1 : r.params.n);
      expect(r.proxy === null).toBe(r.route === 'direct');
      expect(r.handshake.count).toBe(r.opened);
    }
    for (const r of result.scenarios.idle.filter((x) => x.ok)) {
      expect(r.perSession.client.heapBytes).toEqual(expect.any(Number));
      expect(r.perSession.backends.heapBytes).toEqual(expect.any(Number));
      expect(r.perSession.proxy === null).toBe(r.route === 'direct');
      // HAProxy's pools in use, Envoy's heap allocated (admin /memory).
      if (r.route !== 'direct') expect(r.perSession.proxy?.poolBytes, r.label).toEqual(expect.any(Number));
    }
    // Throughput pins every front to b1: for Envoy through its own registry (the others DRAINING over EDS).
    for (const r of result.scenarios.throughput) expect(r.params.pinnedTo).toBe('b1');
    for (const r of result.scenarios.fanout.filter((x) => x.ok)) expect(r.delivered).toBe(r.expected);
  });

  it('computes ratios (with the A/A noise floor) and reports every target, measured or not', () => {
    expect(result.ratios.some((r) => r.aa)).toBe(true);
    expect(result.ratios.some((r) => !r.aa && r.description.includes('h1-upgrade / h2-mux'))).toBe(true);
    expect(result.targets.map((t) => t.id)).toEqual(['sessions-10k', 'sessions-100k', 'idle-8kb', 'open-3x', 'client-100us', 'front-70pct', 'p99-1.5x', 'backend-95pct']);
    for (const t of result.targets) {
      expect([true, false, null]).toContain(t.met);
      expect(t.measured.length).toBeGreaterThan(0);
    }
    // Both fronts stand side by side under each measured target.
    const measured = result.targets.filter((t) => t.met !== null);
    expect(measured.length).toBeGreaterThan(0);
    for (const t of measured) {
      expect(t.measured, t.id).toMatch(/(^| \| )Envoy: /);
      expect(t.measured, t.id).toMatch(/ \| HAProxy: /);
    }
    expect(result.ratios.some((r) => /via Envoy.* \/ direct/.test(r.description))).toBe(true);
  });

  it('writes a self-contained HTML report with inline SVG charts, plus SVG files and a Markdown section', () => {
    const page = readFileSync(htmlFile, 'utf8');
    expect(page.startsWith('<!doctype html>')).toBe(true);
    expect(page.match(/<svg /g)?.length ?? 0).toBeGreaterThanOrEqual(5);
    for (const id of ['latency-cdf-32', 'throughput-single', 'throughput-burst', 'storm', 'idle-memory']) expect(page).toContain(`id="${id}"`);
    // Opens without a network: nothing is fetched from anywhere.
    expect(page).not.toMatch(/<script[^>]+src=|<link[^>]+href=|<img[^>]+src="http|@import|url\(http/i);
    const embedded = /<script type="application\/json" id="bench-result">([\s\S]*?)<\/script>/.exec(page)?.[1];
    expect(JSON.parse(embedded ?? '{}').name).toBe('ci-smoke');
    const svgs = readdirSync(charts).filter((f) => f.endsWith('.svg'));
    expect(svgs.length).toBeGreaterThanOrEqual(5);
    for (const f of svgs) expect(readFileSync(path.join(charts, f), 'utf8').trim()).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[\s\S]*<\/svg>$/);
    expect(existsSync(md)).toBe(true);
    expect(readFileSync(md, 'utf8')).toContain('**Targets**');
  });

  it('prints the summary table on stdout', () => {
    expect(stdout).toContain('Connect storm');
    expect(stdout).toMatch(/versions: .*HAProxy \d.*Envoy \d/);
    for (const label of ['via HAProxy', 'via Envoy', 'direct']) expect(stdout).toContain(`| ${label} `);
    expect(stdout).toMatch(/^Targets\n\| target /m);
    expect(stdout).toContain(json);
  });

  it('--report re-renders the HTML of a result from its JSON', async () => {
    const again = path.join(dir, 'again.html');
    const { stdout: out } = await bench(['--report', json, '--html', again], 60_000);
    expect(out).toMatch(/^Targets\n\| target /m);
    expect(readFileSync(again, 'utf8')).toContain('id="bench-result"');
  });

  it('--compare prints B/A ratios of two result files', async () => {
    const { stdout: out } = await bench(['--compare', json, json], 60_000);
    expect(out).toContain('B/A');
    expect(out).toMatch(/\| 1\.00 /);
    expect(out).toContain('Conditions: same');
  });
});

describe('npm run bench where no HAProxy is installed (the compose bench container)', () => {
  it('routes that need no HAProxy (direct) run with haproxy off PATH, and the result says no HAProxy was used', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-bench-nohaproxy-'));
    try {
      const json = path.join(dir, 'direct.json');
      const PATH = (process.env.PATH ?? '').split(':').filter((d) => !existsSync(path.join(d, 'haproxy'))).join(':');
      await run(process.execPath, ['--import', 'tsx', MAIN, '--quick', '--routes', 'direct', '--scenarios', 'latency', '--out', json, '--html', path.join(dir, 'direct.html')], {
        cwd: ROOT,
        timeout: 120_000,
        maxBuffer: 16 * 2 ** 20,
        env: { ...process.env, PATH, LOG_LEVEL: 'error', LOG_FORMAT: 'json' },
      });
      const result = JSON.parse(readFileSync(json, 'utf8')) as BenchResult;
      const runs = result.scenarios.latency;
      expect(runs.length).toBeGreaterThan(0);
      expect(runs.every((r) => r.ok && r.route === 'direct')).toBe(true);
      expect(result.routes.map((r) => r.name)).toEqual(['direct']);
      expect(result.versions.haproxy).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 130_000);
});

describe('npm run bench where no Envoy is installed', () => {
  it('refuses the Envoy routes before starting anything, naming scripts/install-deps and how to bench without them', async () => {
    const failure = await run(process.execPath, ['--import', 'tsx', MAIN, '--quick', '--routes', 'envoy,direct', '--scenarios', 'latency', '--out', path.join(os.tmpdir(), 'gw-bench-noenvoy.json')], {
      cwd: ROOT,
      timeout: 60_000,
      // ENVOY_BIN pointing nowhere: findEnvoyBinary then looks no further (not .venv, not PATH).
      env: { ...process.env, ENVOY_BIN: path.join(os.tmpdir(), 'no-such-envoy'), LOG_LEVEL: 'error', LOG_FORMAT: 'json' },
    }).then(
      () => undefined,
      (err: { code?: number; stderr?: string }) => err,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toContain('GW_ERR_MISSING_TOOL');
    expect(failure?.stderr).toContain('scripts/install-deps');
    expect(failure?.stderr).toContain('--routes front,front-h2up,direct');
    expect(failure?.stderr).not.toContain('starting the stack');
  }, 70_000);
});

describe('bench building blocks', () => {
  it('reads Envoy log lines by kind, leaving out the stack trace an ENVOY_BUG prints', () => {
    const at = '[2026-12-01 01:55:00.965][23505][error][envoy_bug]';
    expect(envoyMessageKind(`${at} [source/common/network/socket_interface_impl.cc:116] envoy bug failure: false. Details: socket(2) failed, got error: Too many open files`)).toBe(
      'error: envoy bug failure: false. Details: socket(2) failed, got error: Too many open files',
    );
    expect(envoyMessageKind(`${at} [./source/common/common/assert.h:60] stacktrace for envoy bug`)).toBeUndefined();
    expect(envoyMessageKind(`${at} [./source/common/common/assert.h:66] #11 UNKNOWN [0x55954644f1b0]`)).toBeUndefined();
    expect(envoyMessageKind('[symbolize_elf.inc : 357] RAW: Unable to get high fd: rc=0, limit=400')).toBeUndefined();
    expect(envoyMessageKind('[2026-12-01 01:54:16.905][22256][warning][main] [source/server/server.cc:1028] caught ENVOY_SIGTERM')).toBe('warning: caught ENVOY_SIGTERM');
  });

  it('alternates cells forward and backward and ends with an A/A run of the first cell', () => {
    const cells = [
      { path: 'h2-mux' as const, route: 'front' as const },
      { path: 'h1-upgrade' as const, route: 'front' as const },
    ];
    const order = alternate(cells, 2, true).map((p) => `${p.cell.path}${p.aa ? '*' : ''}`);
    expect(order).toEqual(['h2-mux', 'h1-upgrade', 'h1-upgrade', 'h2-mux', 'h2-mux*']);
  });

  it('takes medians that ignore missing values', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, NaN, 3, 2])).toBe(2.5);
    expect(median([])).toBeNull();
  });

  it('draws standalone SVG charts, including with no data', () => {
    const line = lineChart({ title: 'a<b', xLabel: 'x', yLabel: 'y', yLog: true, series: [{ name: 's', color: '#000', points: [[1, 1], [2, 10]] }] });
    expect(line).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(line).toContain('a&lt;b');
    expect(line.endsWith('</svg>')).toBe(true);
    expect(lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [] })).toContain('no data');
    const bars = barChart({ title: 't', yLabel: 'y', groups: [{ label: 'g', bars: [{ name: 'a', value: 3, color: '#111' }, { name: 'b', value: null, color: '#222' }] }] });
    expect(bars).toContain('n/a');
    expect(bars.endsWith('</svg>')).toBe(true);
  });
});
