// `npm run demo`: the main job. Starts the local stack (3 backends + Envoy, or `--front haproxy`)
// unless --front-url points at a running one, opens 1,000 sessions over ONE HTTP/2 connection and 1,000 over HTTP/1.1 through
// the front, echoes a few messages on each, prints a comparison table and stops what it started.
import './demo-logs.js';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runEchoProbe, type EchoProbeResult } from '../client/echo-probe.js';
import { H1Client, MuxClient, type WsClient } from '../client/index.js';
import { startStack, type Stack } from '../gateway/harness.js';
import { gatewaySchema, loadConfig } from '../lib/config.js';
import { ConfigError, GatewayError } from '../lib/errors.js';
import { logger } from '../lib/log.js';

// Created once the config says where logs go (a file, unless --verbose).
const log = () => logger('demo');

function progress(label: string) {
  let last = 0;
  return (done: number, total: number, phase: string) => {
    if (!process.stderr.isTTY) return;
    const now = Date.now();
    if (done !== total && now - last < 100) return;
    last = now;
    const width = 30;
    const filled = Math.round((done / total) * width);
    process.stderr.write(`\r  ${label.padEnd(18)} ${phase.padEnd(5)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}   `);
    if (done === total && phase === 'echo') process.stderr.write('\n');
  };
}

function table(rows: Array<{ label: string; r: EchoProbeResult }>): string {
  const header = ['path', 'sessions', 'client TCP conns', 'open all (ms)', 'echo p50 (ms)', 'echo p99 (ms)', 'echoes', 'spread over backends'];
  const body = rows.map(({ label, r }) => [
    label,
    String(r.sessions),
    String(r.tcpConnections),
    r.openMs.toFixed(0),
    r.rttMs.p50.toFixed(2),
    r.rttMs.p99.toFixed(2),
    `${r.echoes - r.mismatches}/${r.echoes}`,
    Object.entries(r.spread).sort().map(([b, n]) => `${b}:${n}`).join(' '),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  return [line(header), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...body.map(line)].join('\n');
}

try {
  const { config, flags } = loadConfig(gatewaySchema, process.argv.slice(2), process.env, {
    'front-url': { type: 'string' },
    sessions: { type: 'string' },
    messages: { type: 'string' },
    only: { type: 'string' },
    verbose: { type: 'boolean' },
  });
  // The terminal is for the result: the stack's logs go to a file unless --verbose (demo-logs.ts).
  const logFile = process.env.LOG_FILE;
  const sessions = Number(flags.sessions ?? 1000);
  const messages = Number(flags.messages ?? 5);
  if (!Number.isInteger(sessions) || sessions < 1 || sessions > 10_000) throw new ConfigError('--sessions', 'must be 1..10000');
  if (!Number.isInteger(messages) || messages < 1 || messages > 1000) throw new ConfigError('--messages', 'must be 1..1000');
  if (flags.only !== undefined && flags.only !== 'h1' && flags.only !== 'h2') throw new ConfigError('--only', 'must be h1 or h2');

  let stack: Stack | undefined;
  let result = '';
  let stateDir: string | undefined;
  let front = typeof flags['front-url'] === 'string' ? flags['front-url'] : undefined;
  if (!front) {
    process.stderr.write(`starting the local stack (3 backends + ${config.front}); pass --front-url URL to use a running one${logFile ? `\n  its logs: ${logFile} (--verbose shows them here)` : ''}\n`);
    // A fresh state dir: the demo must not inherit endpoints a previous `npm start` session left behind.
    stateDir = mkdtempSync(path.join(os.tmpdir(), 'gw-demo-'));
    stack = await startStack({ ...config, stateDir }, { childOutput: 'lines' });
    front = stack.frontUrl;
  }
  try {
    const paths: Array<{ label: string; make: () => WsClient }> = [
      { label: 'h2 mux (1 conn)', make: () => new MuxClient(front) },
      { label: 'h1 upgrade', make: () => new H1Client(front) },
    ].filter((p) => !flags.only || p.make().transport === flags.only);
    const rows: Array<{ label: string; r: EchoProbeResult }> = [];
    const failures: string[] = [];
    for (const { label, make } of paths) {
      const client = make();
      try {
        rows.push({ label, r: await runEchoProbe(client, { sessions, messagesPerSession: messages, onProgress: progress(label) }) });
      } catch (err) {
        // One path failing (e.g. HTTP/1.1 beyond HAProxy's maxconn) must not hide the other's result.
        failures.push(`${label}: ${(err as Error).message}`);
      } finally {
        await client.close();
      }
    }
    // Printed after the stack has stopped, so its goodbyes (with --verbose) do not bury the result.
    const out: string[] = [];
    out.push(`\n${sessions} sessions per path through ${front}${stack ? ` (${stack.front.label})` : ''}, ${messages} echoes of 32 B each, one in flight per session\n\n`);
    out.push(table(rows) + '\n\n');
    const [h2, h1] = rows.map((r) => r.r);
    if (h2 && h1) {
      out.push(
        `h2 used ${h2.tcpConnections} TCP connection(s) for ${h2.sessions} sessions; h1 used ${h1.tcpConnections}. ` +
          `Open-all time h1/h2 = ${(h1.openMs / h2.openMs).toFixed(2)}x (one run on a shared machine: noisy; see npm run bench).\n`,
      );
    }
    for (const f of failures) out.push(`FAILED ${f}\n`);
    if (failures.length > 0 || rows.some(({ r }) => r.mismatches > 0)) process.exitCode = 1;
    result = out.join('');
  } finally {
    if (stack) process.stderr.write('stopping the local stack…\n');
    await stack?.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  }
  process.stdout.write(result);
} catch (err) {
  const message = err instanceof GatewayError ? err.message : String((err as Error)?.stack ?? err);
  log().fatal({ code: (err as GatewayError).code }, message);
  // The log may be a file: the failure is said here too.
  if (process.env.LOG_FILE) process.stderr.write(`demo failed: ${message}\n  (logs: ${process.env.LOG_FILE})\n`);
  process.exitCode = 1;
}
