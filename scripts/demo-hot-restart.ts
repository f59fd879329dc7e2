// `npm run demo:hot-restart`: a hot restart of the front under live traffic, as a timeline.
// Keeps N sessions (HTTP/2 streams and HTTP/1.1 connections) echoing numbered messages, restarts
// the front mid-stream (Envoy: a new epoch under the restarter; `--front haproxy`: a master-worker
// reload), keeps opening new sessions, then lets the old sessions end so the old generation exits.
// Prints, every half second: generations and the sessions each holds, messages sent/echoed/lost,
// new-session failures.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { H1Client, MuxClient } from '../client/index.js';
import { SequencedEcho, type SessionTally } from '../client/sequenced-echo.js';
import { startStack, type HotRestartEngine } from '../gateway/harness.js';
import { commandLine, defineCommand } from '../lib/cli.js';
import { gatewaySchema } from '../lib/config.js';
import { GatewayError } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { wrap } from '../lib/text.js';

const DEMO_HOT_RESTART = defineCommand({
  name: 'npm run demo:hot-restart',
  about: [
    'A hot restart of the front under live traffic, as a timeline: sessions per generation (Envoy',
    'epochs, or HAProxy workers with --front haproxy), messages sent/echoed/lost, new-session',
    'failures. Starts its own stack (temporary state dir); config flags shape it.',
  ].join(' '),
  config: gatewaySchema,
  options: z.object({
    h2: z.coerce.number().int().min(0).max(10_000).default(500).describe('sessions as HTTP/2 streams on one connection'),
    h1: z.coerce.number().int().min(0).max(2_000).default(100).describe('sessions over HTTP/1.1, a connection each'),
  }),
});

const { config: base, options } = commandLine(DEMO_HOT_RESTART);
const h2Count = options.h2;
const h1Count = options.h1;
const stateDir = mkdtempSync(path.join(os.tmpdir(), 'gw-demo-'));
const log = logger('demo');
const t0 = Date.now();
/** A timeline entry: the time, then the text wrapped under it so every line fits 80 columns. */
const say = (text: string) => {
  const [first = '', ...rest] = wrap(text, 10);
  process.stdout.write([`t+${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s  ${first.trimStart()}`, ...rest].join('\n') + '\n');
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the demo needs of either stack. */
let stack: { frontUrl: string; hotRestart: HotRestartEngine; stop(): Promise<void> };
let frontName: string;
try {
  const started = await startStack({ ...base, stateDir }, { childOutput: 'lines' });
  stack = started;
  frontName = started.front.engine === 'envoy' ? `${started.front.label} (listeners and endpoints over xDS, epochs under the restarter)` : started.front.label;
} catch (err) {
  log.fatal(err instanceof GatewayError ? err.message : String(err));
  process.exit(1);
}
const mux = new MuxClient(stack.frontUrl);
const h1 = new H1Client(stack.frontUrl);
const load = new SequencedEcho(50);
let newOk = 0;
let newFailed = 0;

async function tick(label = ''): Promise<void> {
  const gens = await stack.hotRestart.generations();
  const g = gens
    .sort((a, b) => a.generation - b.generation)
    .map((x) => `gen ${x.generation} pid ${x.pid} ${x.current ? 'current' : 'draining'} ${x.sessions ?? '?'}`)
    .join(' · ');
  const t = load.totals();
  if (label) say(`← ${label}`);
  say(`sessions ${g} · messages sent ${t.sent} echoed ${t.echoed} lost ${t.lost} out-of-order ${t.outOfOrder} · new sessions ok ${newOk} failed ${newFailed}`);
}

async function openSome(n: number): Promise<void> {
  const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => (i % 5 === 0 ? h1 : mux).open('/echo')));
  for (const r of results) {
    if (r.status === 'fulfilled') {
      load.add(r.value);
      newOk++;
    } else newFailed++;
  }
}

try {
  say(`${frontName} at ${stack.frontUrl}; opening ${h2Count} HTTP/2 streams (one connection) + ${h1Count} HTTP/1.1 sessions`);
  const original: SessionTally[] = [];
  for (const s of await Promise.all([
    ...Array.from({ length: h2Count }, () => mux.open('/echo')),
    ...Array.from({ length: h1Count }, () => h1.open('/echo')),
  ])) original.push(load.add(s));
  load.start();
  for (let i = 0; i < 4; i++) {
    await sleep(500);
    await tick();
  }
  const result = await stack.hotRestart.restart();
  await tick(`HOT RESTART: generation ${result.generation} (pid ${result.newPids.join(',')}) took the listeners in ${result.durationMs} ms; HTTP/2 clients got GOAWAY(NO_ERROR)`);
  for (let i = 0; i < 6; i++) {
    await openSome(20);
    await sleep(500);
    await tick(i === 0 ? 'opening 20 new sessions per tick: they land on the new generation' : '');
  }
  say('the original sessions now end (users leave): the old generation exits once it holds none');
  for (let i = 0; i < original.length; i += Math.ceil(original.length / 6)) {
    original.slice(i, i + Math.ceil(original.length / 6)).forEach((t) => t.session.ws.close(1000, 'user left'));
    await sleep(500);
    await tick();
  }
  const generationsLeft = async () => (await stack.hotRestart.generations()).length;
  for (let i = 0; i < 6 && (await generationsLeft()) > 1; i++) {
    await sleep(500);
    await tick();
  }
  await load.quiesce();
  const t = load.totals();
  say(`done: ${t.sent} messages sent, ${t.echoed} echoed, ${t.lost} lost, ${t.outOfOrder} out of order; new sessions ${newOk} ok / ${newFailed} failed; live generations now: ${(await stack.hotRestart.generations()).map((g) => `${g.generation} (pid ${g.pid})`).join(', ')}`);
  if (t.lost || t.outOfOrder || newFailed) process.exitCode = 1;
} finally {
  load.stop();
  await Promise.all([mux.close(), h1.close()]);
  await stack.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
