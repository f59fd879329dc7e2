// `npm run bench:rooms`: the two ways to make a chat room work behind a per-stream balancer, side by side.
//   A. round robin + Redis: members spread over every backend; each message takes a bus hop.
//   B. sticky-by-room, no bus: the front hashes /chat/<room>, so the whole room sits on one backend.
// One publisher, N members (HTTP/2, one connection), M messages; reported: delivery latency to every
// member (p50/p99/max, hdr-histogram) and CPU per delivered message for the backends (and Redis).
// Alternated A/B runs; loopback only; bounded in members, messages and time.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import * as hdr from 'hdr-histogram-js';
import { MuxClient } from '../client/index.js';
import { startStack, type Stack } from '../gateway/harness.js';
import { privatePorts } from '../lib/ports.js';
import { commandLine, defineCommand } from '../lib/cli.js';
import { defaults, gatewaySchema, type GatewayConfig } from '../lib/config.js';
import { cpuMs } from '../lib/procfs.js';

const ROOMS = defineCommand({
  name: 'npm run bench:rooms',
  about: [
    'Fan-out in one chat room behind a per-stream balancer, two ways, alternated: A. round robin +',
    'Redis (members on every backend, a bus hop per message); B. sticky-by-room with no bus. Each',
    'variant runs on a private stack (loopback, ephemeral ports).',
  ].join(' '),
  config: gatewaySchema.pick({ front: true }),
  options: z.object({
    members: z.coerce.number().int().min(2).max(2_000).default(300).describe('sessions in the room (one publishes)'),
    messages: z.coerce.number().int().min(1).max(1_000).default(50).describe('messages published, 50 per second'),
    reps: z.coerce.number().int().min(1).max(5).default(2).describe('alternated A/B repetitions'),
  }),
});
const { config: chosen, options } = commandLine(ROOMS);
const { members, messages, reps } = options;

interface Result {
  variant: string;
  backendsUsed: number;
  delivered: number;
  expected: number;
  p50: number;
  p99: number;
  max: number;
  backendCpuUsPerDelivery: number;
  busCpuUsPerDelivery: number;
}

async function variantStack(variant: 'A' | 'B'): Promise<{ stack: Stack; dir: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-rooms-'));
  const overrides: Partial<GatewayConfig> =
    variant === 'A' ? { balance: 'roundrobin', roomBus: 'redis' } : { balance: 'room', roomBus: 'none' };
  const config = defaults(gatewaySchema, {
    ...overrides,
    front: chosen.front,
    stateDir: dir,
    ...(await privatePorts(3)),
    maxMessagesPerSecond: 1_000_000,
    maxSessionsPerIp: 1_000_000,
    haproxySessionOpensPer10sPerIp: 1_000_000,
  });
  return { stack: await startStack(config, { childOutput: 'lines' }), dir };
}

async function run(variant: 'A' | 'B', stack: Stack, rep: number): Promise<Result> {
  const mux = new MuxClient(stack.frontUrl);
  const room = `/chat/bench-${variant}-${rep}`;
  const sessions = await Promise.all(Array.from({ length: members }, () => mux.open(room)));
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let delivered = 0;
  let lastFrameAt = performance.now();
  const sentAt = new Map<string, number>();
  for (const s of sessions) {
    s.ws.on('message', (data) => {
      lastFrameAt = performance.now();
      const m = JSON.parse(data.toString()) as { type: string; text?: string };
      if (m.type !== 'message' || !m.text) return;
      const t0 = sentAt.get(m.text);
      if (t0 !== undefined) histogram.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
      delivered++;
    });
  }
  // N joins make N² join notices: start measuring once that storm is over.
  while (performance.now() - lastFrameAt < 500) await new Promise((r) => setTimeout(r, 50));
  const pids = stack.backends.map((b) => b.process.pid!).filter(Boolean);
  const cpu0 = pids.map((p) => cpuMs(p) ?? 0);
  const publisher = sessions[0]!;
  for (let i = 0; i < messages; i++) {
    const text = `m${i}`;
    sentAt.set(text, performance.now());
    publisher.ws.send(JSON.stringify({ text }));
    await new Promise((r) => setTimeout(r, 20)); // 50 messages/s: latency, not saturation
  }
  const expected = messages * members;
  const deadline = Date.now() + 20_000;
  while (delivered < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const cpu1 = pids.map((p) => cpuMs(p) ?? 0);
  const backendCpuMs = cpu1.reduce((n, c, i) => n + c - cpu0[i]!, 0);
  const result: Result = {
    variant: variant === 'A' ? 'round robin + Redis' : 'sticky-by-room, no bus',
    backendsUsed: new Set(sessions.map((s) => s.backendId)).size,
    delivered,
    expected,
    p50: histogram.getValueAtPercentile(50) / 1000,
    p99: histogram.getValueAtPercentile(99) / 1000,
    max: histogram.maxValue / 1000,
    backendCpuUsPerDelivery: (backendCpuMs * 1000) / Math.max(1, delivered),
    busCpuUsPerDelivery: 0,
  };
  histogram.destroy();
  await mux.close();
  return result;
}

const stacks = { A: await variantStack('A'), B: await variantStack('B') };
const redisPid = async (stack: Stack) => {
  // The local redis-server is the child listening on the stack's redis port.
  const { execFileSync } = await import('node:child_process');
  const port = new URL(stack.redisUrl!).port;
  const out = execFileSync('sh', ['-c', `ss -ltnpH 'sport = :${port}' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2`], { encoding: 'utf8' }).trim();
  return out ? Number(out) : undefined;
};
const busPid = await redisPid(stacks.A.stack);
const results: Result[] = [];
try {
  for (let rep = 0; rep < reps; rep++) {
    for (const variant of rep % 2 === 0 ? (['A', 'B'] as const) : (['B', 'A'] as const)) {
      const bus0 = variant === 'A' && busPid ? cpuMs(busPid) ?? 0 : 0;
      const r = await run(variant, stacks[variant].stack, rep);
      if (variant === 'A' && busPid) r.busCpuUsPerDelivery = (((cpuMs(busPid) ?? 0) - bus0) * 1000) / Math.max(1, r.delivered);
      results.push(r);
      process.stderr.write(`  rep ${rep + 1}/${reps} ${r.variant}: p99 ${r.p99.toFixed(2)} ms\n`);
    }
  }
} finally {
  for (const { stack, dir } of Object.values(stacks)) {
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows = results.map((r) => [
  r.variant,
  String(r.backendsUsed),
  `${r.delivered}/${r.expected}`,
  r.p50.toFixed(2),
  r.p99.toFixed(2),
  r.max.toFixed(2),
  r.backendCpuUsPerDelivery.toFixed(1),
  r.busCpuUsPerDelivery.toFixed(1),
]);
const header = ['variant', 'backends used', 'delivered', 'p50 ms', 'p99 ms', 'max ms', 'backend CPU µs/delivery', 'Redis CPU µs/delivery'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
process.stdout.write(
  `\nroom of ${members} members (HTTP/2, one connection, via ${stacks.A.stack.front.label}), one publisher, ${messages} messages at 50/s, ${reps} alternated reps\n\n` +
    [line(header), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.map(line)].join('\n') +
    '\n',
);
