// `npm run demo:endpoints`: backends joining and leaving a live proxy, step by step.
// Starts the local stack (temporary state dir), keeps sessions echoing numbered messages, starts and
// registers backend b4, shows new streams landing on it, drains b1 and shows its sessions fall to 0
// (some end on their own, the rest get 1001 at the deadline and reconnect elsewhere) with no lost
// message and no client error.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { MuxClient } from '../client/index.js';
import { SequencedEcho, type SessionTally } from '../client/sequenced-echo.js';
import { startBackendProcess, startStack, type Stack } from '../gateway/harness.js';
import { commandLine, defineCommand } from '../lib/cli.js';
import { gatewaySchema } from '../lib/config.js';
import { GatewayError } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { wrap } from '../lib/text.js';

/** A step of the story: the time, then the text wrapped under it so every line fits 80 columns. */
const say = (text: string) => {
  const [first = '', ...rest] = wrap(text.trimStart(), 22);
  process.stdout.write([`${new Date().toISOString().slice(11, 23)}  ${text.startsWith(' ') ? '        ' : ''}${first.trimStart()}`, ...rest].join('\n') + '\n');
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const spread = (ids: Array<string | undefined>) =>
  Object.entries(ids.reduce<Record<string, number>>((m, id) => ((m[id ?? '?'] = (m[id ?? '?'] ?? 0) + 1), m), {}))
    .sort()
    .map(([id, n]) => `${id}:${n}`)
    .join(' ');

const DEMO_ENDPOINTS = defineCommand({
  name: 'npm run demo:endpoints',
  about: [
    'Backends joining and leaving a live proxy, step by step: a stack (temporary state dir) with',
    'sessions echoing, backend b4 started and registered, new streams landing on it, b1 drained to',
    '0 sessions with no lost message and no client error. Config flags shape the stack it starts.',
  ].join(' '),
  config: gatewaySchema,
  options: z.object({
    drainDeadlineS: z.coerce.number().positive().max(600).default(6).describe("seconds b1's sessions get before 1001"),
  }),
});

const { config: base, options } = commandLine(DEMO_ENDPOINTS);
const stateDir = mkdtempSync(path.join(os.tmpdir(), 'gw-demo-'));
const config = { ...base, stateDir };
const deadlineMs = options.drainDeadlineS * 1000;
const log = logger('demo');

let stack: Stack;
try {
  say(`step 1  starting 3 backends + ${config.front === 'haproxy' ? 'HAProxy' : 'Envoy'} + control plane`);
  stack = await startStack(config, { childOutput: 'lines' });
} catch (err) {
  log.fatal(err instanceof GatewayError ? err.message : String(err));
  process.exit(1);
}
const { registry } = stack;
const mux = new MuxClient(stack.frontUrl);
const load = new SequencedEcho(100);
let clientErrors = 0;
let reopened = 0;

async function openOne(): Promise<SessionTally> {
  const s = await mux.open('/echo');
  const tally = load.add(s);
  // A well-behaved client: 1001 (going away) means "reconnect, elsewhere".
  s.ws.once('close', (code) => {
    if (code === 1001) void openOne().then(() => reopened++, () => clientErrors++);
    else if (code !== 1000) clientErrors++;
  });
  return tally;
}

try {
  say(`        front ${stack.frontUrl}, admin ${stack.adminUrl}`);
  const first = await Promise.all(Array.from({ length: 150 }, openOne));
  load.start();
  say(`step 2  150 sessions on ${mux.stats().connections} HTTP/2 connection, echoing every 100 ms; per backend: ${spread(first.map((t) => t.session.backendId))}`);

  const b4Port = Math.max(...config.backendPorts) + 1;
  say(`step 3  starting backend b4 on ${config.host}:${b4Port} and registering it: POST ${stack.adminUrl}/endpoints`);
  const b4 = await startBackendProcess(config, 'b4', b4Port, log, 'lines');
  const t0 = performance.now();
  await stack.adminFetch(`/endpoints`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'b4', address: `${config.host}:${b4Port}` }) });
  let firstOnB4: number | undefined;
  const added: SessionTally[] = [];
  while (firstOnB4 === undefined) {
    const t = await openOne();
    added.push(t);
    if (t.session.backendId === 'b4') firstOnB4 = performance.now() - t0;
  }
  added.push(...(await Promise.all(Array.from({ length: 80 }, openOne))));
  say(`        first new stream on b4 ${firstOnB4.toFixed(1)} ms after the API call (${stack.front.engine === 'haproxy' ? 'HAProxy runtime API: add server, no reload' : 'Envoy over xDS: a new EDS version, no listener change'})`);
  say(`        ${added.length} new sessions landed: ${spread(added.map((t) => t.session.backendId))}`);

  const onB1 = load.tallies.filter((t) => t.session.backendId === 'b1');
  say(`step 4  draining b1 (${onB1.length} sessions): no new streams; open sessions continue for ${deadlineMs / 1000} s, then 1001`);
  await stack.adminFetch(`/endpoints/b1/drain`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deadlineMs }) });
  await stack.front.settled();
  const probe = await Promise.all(Array.from({ length: 60 }, openOne));
  say(`        60 sessions opened while b1 drains: ${spread(probe.map((t) => t.session.backendId))}  (none on b1)`);

  // Some b1 users leave on their own before the deadline.
  const leaving = onB1.slice(0, Math.floor(onB1.length / 3));
  const started = Date.now();
  for (;;) {
    const open = onB1.filter((t) => t.closeCode === undefined).length;
    const totals = load.totals();
    say(`        t+${((Date.now() - started) / 1000).toFixed(1)}s  b1 sessions open: ${String(open).padStart(3)}   echoed ${totals.echoed}/${totals.sent} sent (${totals.inFlight} in flight), lost ${totals.lost}, reconnected ${reopened}`);
    if (open === 0) break;
    if (leaving.length) leaving.splice(0, 5).forEach((t) => t.session.ws.close(1000, 'user left'));
    await sleep(1_000);
  }
  await sleep(500);
  await load.quiesce();
  const totals = load.totals();
  const b1 = registry.get('b1');
  say(`step 5  b1 is ${b1.state} with 0 sessions; ${totals.open} sessions open on ${spread(load.tallies.filter((t) => t.closeCode === undefined).map((t) => t.session.backendId))}`);
  say(`        messages: ${totals.sent} sent, ${totals.echoed} echoed, ${totals.lost} lost, ${totals.outOfOrder} out of order; client errors: ${clientErrors}; reconnected after 1001: ${reopened}`);
  say('        try it yourself with `npm start` and `npm run endpoints -- list|add|drain|remove|weight` (`--help` on each)');
  if (totals.lost || totals.outOfOrder || clientErrors) process.exitCode = 1;
  await b4.process.stop(3_000);
} finally {
  load.stop();
  await mux.close();
  await stack.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
