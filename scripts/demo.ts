// `npm run demo`: the main job. Starts the local stack (3 backends + Envoy, or `--front haproxy`)
// unless --front-url points at a running one, opens 1,000 sessions over ONE HTTP/2 connection and 1,000 over HTTP/1.1 through
// the front, echoes a few messages on each, prints a comparison table and stops what it started.
import './demo-logs.js';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { runEchoProbe, type EchoProbeResult } from '../client/echo-probe.js';
import { H1Client, MuxClient, type WsClient } from '../client/index.js';
import { startStack, type Stack } from '../gateway/harness.js';
import { commandLine, defineCommand, exitOnMistake, isUserMistake } from '../lib/cli.js';
import { gatewaySchema } from '../lib/config.js';
import { GatewayError } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { Progress } from '../lib/progress.js';

// Created once the config says where logs go (a file, unless --verbose).
const log = () => logger('demo');

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

const DEMO = defineCommand({
  name: 'npm run demo',
  about: [
    'Starts a stack (fresh state dir; Envoy unless --front haproxy), or uses the one at --front-url,',
    'opens N sessions over ONE HTTP/2 connection and N over HTTP/1.1 (a connection each), echoes M',
    'messages on each, prints a comparison table and stops what it started. Config flags shape the',
    'stack it starts (e.g. --upstream-protocol h2).',
  ].join(' '),
  config: gatewaySchema,
  options: z.object({
    frontUrl: z.url().optional().describe('a running front to use instead of starting a stack'),
    sessions: z.coerce.number().int().min(1).max(10_000).default(1000).describe('sessions per path'),
    messages: z.coerce.number().int().min(1).max(1000).default(5).describe('echoes per session'),
    only: z.enum(['h1', 'h2']).optional().describe('run one path only'),
    verbose: z.boolean().default(false).describe("the stack's logs on this terminal (default: <state dir>/demo.log)"),
  }),
});

const { config, options: flags } = commandLine(DEMO);
try {
  const { sessions, messages } = flags;
  // The terminal is for the result: the stack's logs go to a file unless --verbose (demo-logs.ts).
  const logFile = process.env.LOG_FILE;
  let stack: Stack | undefined;
  let result = '';
  let stateDir: string | undefined;
  let front = flags.frontUrl;
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
    const progress = new Progress('demo', paths.length);
    for (const { label, make } of paths) {
      const client = make();
      progress.start(label);
      try {
        const r = await runEchoProbe(client, { sessions, messagesPerSession: messages, onProgress: (done, total, phase) => progress.step(done, total, phase) });
        rows.push({ label, r });
        progress.finish(`${r.echoes - r.mismatches}/${r.echoes} echoes`);
      } catch (err) {
        // One path failing (e.g. HTTP/1.1 beyond HAProxy's maxconn) must not hide the other's result.
        failures.push(`${label}: ${(err as Error).message}`);
        progress.finish('FAILED');
      } finally {
        await client.close();
      }
    }
    progress.end();
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
  if (isUserMistake(err)) exitOnMistake(DEMO, err);
  const message = err instanceof GatewayError ? err.message : String((err as Error)?.stack ?? err);
  log().fatal({ code: (err as GatewayError).code }, message);
  // The log may be a file: the failure is said here too.
  if (process.env.LOG_FILE) process.stderr.write(`demo failed: ${message}\n  (logs: ${process.env.LOG_FILE})\n`);
  process.exitCode = 1;
}
