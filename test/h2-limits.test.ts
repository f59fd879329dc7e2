import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rssBytes } from '../lib/procfs.js';
import { H1Client, MuxClient } from '../client/index.js';
import type { BackendProcess } from '../gateway/core/backend-process.js';
import type { Front } from '../gateway/core/stack.js';
import type { GatewayConfig } from '../lib/config.js';
import { openAttackSessions, type AttackSession, type Transport } from './helpers/attack-session.js';
import { describeEachFront } from './helpers/front-matrix.js';
import { closePayload, frame } from './helpers/raw-ws.js';
import { echo, sleep, startTestBackend, startTestStack, waitUntil } from './helpers/stack.js';

// The limits a WebSocket session lives under, attacked one class at a time, directly at a backend
// and through each front, over HTTP/1.1 and RFC 8441. The fronts run with an HTTP/2 upstream, so
// both client transports reach the backend as HTTP/2 streams: the path these bounds were missing
// on (an HTTP/1.1 upstream hands the backend an HTTP/1.1 session, which ws bounds by itself).
// Each case asserts what the attacker gets (close code, or a session dropped without one), that
// the backend counted the limit, that the backend's RSS stayed bounded (printed), and that the
// same backend process then serves a fresh session. docs/hostile-input.md has the table.

/** Lowered where the default would make a case slow; the rest are the defaults (lib/config.ts). */
const LIMITS = {
  // ws's 262,144 is kept in production; reaching it one chunk at a time takes minutes.
  maxBufferedChunks: 1_024,
  slowConsumerBytes: 1024 * 1024,
  maxConnectionUnsentBytes: 4 * 1024 * 1024,
  writeStallTimeoutMs: 5_000,
  // Message rate and heartbeat are other limits: off the way of these attacks.
  maxMessagesPerSecond: 1_000_000,
  pingIntervalMs: 0,
} satisfies Partial<GatewayConfig>;
/** Growth of the backend's RSS any case may cause (before the bounds: up to +425 MB). */
const RSS_BOUND_MB = 64;

const OK_STATUS: Record<Transport, number> = { h1: 101, h2: 200 };
const X = Buffer.from('x');

interface Target {
  route: string;
  port: number;
  backend: BackendProcess;
  front?: Front;
}

interface Outcome {
  /** Per attacking session: the server's close code, 1006 for none. */
  codes: number[];
  /** What the attacker sent (fragments, bytes, pings, messages). */
  sent: number;
  /** RST_STREAM codes of reset h2 streams, for the report. */
  resets?: Array<number | undefined>;
}

const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;

/** Samples a process's RSS every 100 ms: before, peak, and the last reading. */
function rssTrace(pid: number): { stop(): { before: number; peak: number; after: number } } {
  const before = rssBytes(pid) ?? 0;
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, rssBytes(pid) ?? 0)), 100);
  return {
    stop() {
      clearInterval(timer);
      const after = rssBytes(pid) ?? 0;
      return { before: mb(before), peak: mb(Math.max(peak, after)), after: mb(after) };
    },
  };
}

/** The sum of a counter's series that carry `label="value"` (e.g. every transport's). */
async function metric(backend: BackendProcess, name: string, label: string, value: string): Promise<number> {
  const text = await (await fetch(`${backend.url}/metrics`)).text();
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}\\{[^}]*${label}="${value}"[^}]*\\} (\\d+)`, 'gm'))) sum += Number(m[1]);
  return sum;
}
const limitHits = (backend: BackendProcess, limit: string) => metric(backend, 'ws_limit_hits_total', 'limit', limit);

async function backendSessions(backend: BackendProcess): Promise<number> {
  return ((await (await fetch(`${backend.url}/healthz`)).json()) as { sessions: number }).sessions;
}

/** How long one write may hang before the attacker counts itself held back by the front. */
const HELD_BACK_MS = 2 * LIMITS.writeStallTimeoutMs;

/**
 * Writes `batch` until `done()`, the session ends, `budget` batches, or one write hangs for
 * HELD_BACK_MS (a front that stops reading a client it cannot deliver to); returns the batches
 * written. `done()` is asked every 100 ms meanwhile.
 */
async function pump(session: AttackSession, batch: Buffer, budget: number, done: () => boolean | Promise<boolean>): Promise<number> {
  let written = 0;
  let pumping = true;
  const finished = (async () => {
    while (pumping && !session.ended() && !(await done())) await sleep(100);
  })();
  while (written < budget && !session.ended()) {
    const heldBack = sleep(HELD_BACK_MS).then(() => 'held back');
    const result = await Promise.race([session.write(batch).then(() => 'written'), finished.then(() => 'done'), heldBack]);
    if (result !== 'written') break;
    written++;
    // A write the kernel takes at once calls back without a turn of the event loop: without this,
    // the loop would starve the reads that notice the close.
    await new Promise((r) => setImmediate(r));
  }
  pumping = false;
  return written;
}

/** Polls `cond` until it holds (true) or `timeoutMs` passed (false); never throws. */
async function until(cond: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) if (await cond()) return true;
  else await sleep(100);
  return false;
}

/** Every attacking session of the running test, destroyed when it ends whatever happened. */
const attackers: AttackSession[] = [];

async function open(target: Target, transport: Transport, path: string, count: number, reading: boolean): Promise<AttackSession[]> {
  const sessions = await openAttackSessions(target.port, transport, path, count, { reading });
  attackers.push(...sessions);
  expect(sessions.map((s) => s.status)).toEqual(sessions.map(() => OK_STATUS[transport]));
  return sessions;
}

/** Limits the backend counts (ws_limit_hits_total{limit}) that these attacks may move. */
const LIMIT_NAMES = ['buffered_parts', 'slow_consumer', 'connection_unsent', 'write_stall'] as const;
type LimitName = (typeof LIMIT_NAMES)[number];
type Hits = Record<LimitName | 'closed_1006', number>;

async function hitsNow(backend: BackendProcess): Promise<Hits> {
  const entries = await Promise.all(LIMIT_NAMES.map(async (l) => [l, await limitHits(backend, l)] as const));
  return { ...Object.fromEntries(entries), closed_1006: await metric(backend, 'ws_closes_total', 'code', '1006') } as Hits;
}

/**
 * Reads what the server sent each non-reading session and says goodbye: its close code is the
 * server's (1008 when a limit closed it), 1006 when the server dropped it, or 1000 when it was
 * still open (the front held the attacker back before any limit at the backend was needed).
 */
async function finish(sessions: AttackSession[]): Promise<number[]> {
  const codes = sessions.map((s) => s.closeCode(15_000));
  // Not awaited: a front that holds the attacker's writes back may never take this one.
  for (const s of sessions) void s.write(frame({ opcode: 8, payload: closePayload(1000) }));
  return Promise.all(codes);
}

/** Until `limit` (or the stall bound) moved at the backend, or the backend has no session left. */
function backendActed(target: Target, before: Hits, limit: LimitName): () => Promise<boolean> {
  return async () => {
    const now = await hitsNow(target.backend);
    return now[limit] > before[limit] || now.write_stall > before.write_stall || (await backendSessions(target.backend)) === 0;
  };
}

type Kind = 'fragments' | 'buffered chunks' | 'pending pongs' | 'unsent per session' | 'unsent per connection' | 'stalled writes';

/** Each attack class: what the attacker does; its outcome is judged in limitSuite. */
const ATTACKS: Record<Kind, (target: Target, transport: Transport, before: Hits) => Promise<Outcome>> = {
  // A message that never ends, one byte per fragment: 1,048,576 fragments were accepted over HTTP/2
  // (until maxPayload); ws closes an HTTP/1.1 session at 16,385.
  async fragments(target, transport) {
    const [s] = await open(target, transport, '/echo', 1, true);
    const code = s!.closeCode();
    let closed = false;
    void code.then(() => (closed = true));
    await s!.write(frame({ opcode: 2, fin: false, payload: X }));
    const batch = Buffer.concat(Array.from({ length: 1024 }, () => frame({ opcode: 0, fin: false, payload: X })));
    const batches = await pump(s!, batch, 1024, () => closed);
    return { codes: [await code], sent: 1 + batches * 1024 };
  },
  // One frame of 512 KiB announced, then its payload one byte per write: each byte is a chunk ws
  // holds until the frame is complete (an HTTP/2 DATA frame each; a TCP read each over HTTP/1.1).
  async 'buffered chunks'(target, transport) {
    const [s] = await open(target, transport, '/echo', 1, true);
    const code = s!.closeCode();
    let closed = false;
    void code.then(() => (closed = true));
    const whole = frame({ opcode: 2, payload: Buffer.alloc(512 * 1024) });
    await s!.write(whole.subarray(0, 14));
    let sent = 0;
    while (!closed && !s!.ended() && sent < 64 * LIMITS.maxBufferedChunks) {
      await s!.write(whole.subarray(14 + sent, 15 + sent));
      sent++;
      // Let the byte leave on its own before the next one, so the receiver sees it as one chunk.
      await new Promise((r) => setImmediate(r));
    }
    return { codes: [await code], sent };
  },
  // Pings from a peer that reads nothing: 132k pongs were queued over HTTP/2; ws drops an HTTP/1.1
  // session once 60 are owed. Dropped means no close frame (1006) and, directly, RST_STREAM(NO_ERROR).
  async 'pending pongs'(target, transport, before) {
    const [s] = await open(target, transport, '/echo', 1, false);
    const batch = Buffer.concat(Array.from({ length: 256 }, () => frame({ opcode: 9, payload: Buffer.alloc(125, 0x70) })));
    const batches = await pump(s!, batch, 400, backendActed(target, before, 'write_stall'));
    await waitUntil(backendActed(target, before, 'write_stall'), 20_000, 'the pinging session dropped');
    return { codes: await finish([s!]), sent: batches * 256, resets: [s!.rstCode()] };
  },
  // Small messages echoed to a peer that reads nothing: each queued message costs far more than its
  // bytes, and the session is closed (1008, delivered once the peer reads) when bytes plus that
  // bookkeeping pass slowConsumerBytes.
  async 'unsent per session'(target, transport, before) {
    const [s] = await open(target, transport, '/echo', 1, false);
    const batch = Buffer.concat(Array.from({ length: 500 }, () => frame({ opcode: 1, payload: Buffer.alloc(64, 0x61) })));
    const batches = await pump(s!, batch, 1600, backendActed(target, before, 'slow_consumer'));
    return { codes: await finish([s!]), sent: batches * 500 };
  },
  // Sixteen sessions, each echoing 960 KiB (under slowConsumerBytes) to a peer that reads nothing:
  // on one HTTP/2 connection to the backend they pass its 4 MiB cap, and the sessions holding most
  // are closed with 1008; the others finish (1000). Sessions over HTTP/1.1 connections of their own
  // have no shared cap.
  async 'unsent per connection'(target, transport, before) {
    const sessions = await open(target, transport, '/echo', 16, false);
    const messagesBefore = await metric(target.backend, 'ws_messages_total', 'direction', 'in');
    const burst = Buffer.concat(Array.from({ length: 15 }, () => frame({ opcode: 2, payload: Buffer.alloc(64 * 1024, 0x62) })));
    const arrived = async () => (await metric(target.backend, 'ws_messages_total', 'direction', 'in')) - messagesBefore >= 16 * 15;
    const acted = backendActed(target, before, 'connection_unsent');
    // A front may hold writes back for good: stop waiting for them once the backend has acted.
    await Promise.race([Promise.all(sessions.map((s) => s.write(burst))), until(acted, 30_000)]);
    await waitUntil(async () => (await arrived()) || (await acted()), 30_000, 'every message at the backend');
    return { codes: await finish(sessions), sent: 16 * 15 };
  },
  // Sessions whose writes make no progress. Directly over HTTP/2: 40 `/feed` streams at 1,000
  // ticks/s on one connection, never read (they kept +157 MB). Elsewhere the kernel's and the
  // front's buffers would take minutes of ticks to fill, so an echo of 64 KiB messages, never read,
  // fills them up to the slow-consumer bound. Each session is dropped writeStallTimeoutMs after its
  // last write went out (a close frame could not get past what the peer does not read).
  async 'stalled writes'(target, transport, before) {
    if (transport === 'h2' && !target.front) {
      const sessions = await open(target, transport, '/feed?rate=1000', 40, false);
      await waitUntil(async () => (await backendSessions(target.backend)) === 0, 60_000, 'every stalled stream dropped');
      return { codes: await finish(sessions), sent: 40, resets: sessions.map((s) => s.rstCode()) };
    }
    const [s] = await open(target, transport, '/echo', 1, false);
    const batch = Buffer.concat(Array.from({ length: 16 }, () => frame({ opcode: 2, payload: Buffer.alloc(64 * 1024, 0x63) })));
    const batches = await pump(s!, batch, 256, backendActed(target, before, 'write_stall'));
    await waitUntil(async () => (await backendSessions(target.backend)) === 0, 30_000, 'the stalled session dropped');
    return { codes: await finish([s!]), sent: batches * 16 };
  },
};

interface Expectation {
  /** Every attacking session's close code is one of these. */
  codes: readonly number[];
  /** The backend counter this class must move, and by how much given the outcome. */
  counter: keyof Hits;
  count(outcome: Outcome): number;
}

/**
 * What each class gets, the same on every route unless a front changes what the client can see
 * (noted where it does). Pre-bounds, none of these held over HTTP/2: no close, or 1009 at maxPayload.
 */
function expectation(kind: Kind, target: Target, transport: Transport): Expectation {
  const viaHaproxyH1 = target.front?.engine === 'haproxy' && transport === 'h1';
  switch (kind) {
    case 'fragments':
    case 'buffered chunks':
      // HAProxy aborts an HTTP/1.1 client that is still sending when the server side ends, and the
      // RST can beat the close frame (as in test/fuzz.test.ts): the backend's count says it was 1008.
      return { codes: viaHaproxyH1 ? [1008, 1006] : [1008], counter: 'buffered_parts', count: () => 1 };
    case 'pending pongs':
      return { codes: [1006], counter: 'closed_1006', count: () => 1 };
    case 'unsent per session':
      // Through Envoy over HTTP/2 the 1008 can lose to Envoy's own reset of the stream whose buffers
      // the unread echo filled (the backend's count says it acted either way).
      return { codes: target.front?.engine === 'envoy' && transport === 'h2' ? [1008, 1006] : [1008], counter: 'slow_consumer', count: () => 1 };
    case 'unsent per connection':
      // Only sessions sharing one HTTP/2 connection at the backend have a cap to pass together:
      // directly over HTTP/2. Through a front the front's own buffers take the 15 MiB first (and
      // Envoy resets an HTTP/2 client's streams itself when they overflow): nothing to close here.
      if (!target.front && transport === 'h2') return { codes: [1000, 1008], counter: 'connection_unsent', count: (o) => o.codes.filter((c) => c === 1008).length };
      // Envoy resets an HTTP/2 client's streams when its buffers overflow, unless the bursts got through
      // first (a race of the two legs' windows): 1006 or 1000, never the backend's 1008.
      return { codes: target.front?.engine === 'envoy' && transport === 'h2' ? [1006, 1000] : [1000], counter: 'connection_unsent', count: () => 0 };
    case 'stalled writes':
      // HAProxy (HTTP/1.1 upstream) did not end an HTTP/2 client's stream once the backend had
      // dropped the session: it read on and got neither a close frame nor an end (-1).
      return {
        codes: target.front?.engine === 'haproxy' && transport === 'h2' ? [1006, -1] : [1006],
        counter: 'write_stall',
        count: (o) => o.codes.length,
      };
  }
}

/** The backend process still runs and a fresh session echoes directly, and through the front when there is one. */
async function stillServing(target: Target, pid: number): Promise<void> {
  expect(target.backend.process.pid).toBe(pid);
  expect(target.backend.keeper.restarts).toBe(0);
  const urls = [target.backend.url, ...(target.front ? [target.front.url] : [])];
  for (const url of urls) {
    for (const client of [new H1Client(url), new MuxClient(url)]) {
      try {
        const session = await client.open('/echo');
        expect(await echo(session.ws, `fresh ${client.transport} after the attack`)).toBe(`fresh ${client.transport} after the attack`);
      } finally {
        await client.close();
      }
    }
  }
  // Each fresh session's end reaches the backend a moment later through a front (as a 1006 when the
  // client drops the connection): let it land here, not in the next attack's counters.
  await waitUntil(async () => (await backendSessions(target.backend)) === 0, 10_000, 'the fresh sessions gone at the backend');
}

function limitSuite(targetOf: () => Target): void {
  for (const kind of Object.keys(ATTACKS) as Kind[]) {
    for (const transport of ['h1', 'h2'] as const) {
      it(`${kind} over ${transport}: the expected close, the limit counted, RSS bounded, a fresh session echoes`, async () => {
        const target = targetOf();
        const pid = target.backend.process.pid!;
        const before = await hitsNow(target.backend);
        const trace = rssTrace(pid);
        let outcome: Outcome;
        try {
          outcome = await ATTACKS[kind](target, transport, before);
        } finally {
          for (const s of attackers.splice(0)) s.destroy();
        }
        await waitUntil(async () => (await backendSessions(target.backend)) === 0, 40_000, 'backend sessions back to 0');
        const rss = trace.stop();
        const after = await hitsNow(target.backend);
        const hits = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as keyof Hits]]).filter(([, v]) => v !== 0));
        console.info(
          `[h2-limits] ${target.route} ${transport} ${kind}: sent ${outcome.sent}, codes ${JSON.stringify(countCodes(outcome.codes))}` +
            `${outcome.resets ? `, RST_STREAM ${JSON.stringify(countCodes(outcome.resets))}` : ''}, backend ${JSON.stringify(hits)}, ` +
            `backend RSS ${rss.before} → peak ${rss.peak} → ${rss.after} MB`,
        );
        const expected = expectation(kind, target, transport);
        expect(outcome.codes.filter((c) => !expected.codes.includes(c))).toEqual([]);
        expect(after[expected.counter] - before[expected.counter]).toBe(expected.count(outcome));
        if (kind === 'unsent per connection' && !target.front && transport === 'h2') expect(outcome.codes).toContain(1008);
        if (!target.front && transport === 'h2' && outcome.resets) {
          // What the backend resets directly: ws's own drop (pending pongs) with NO_ERROR, a stall with CANCEL.
          const rst = kind === 'stalled writes' ? http2.constants.NGHTTP2_CANCEL : http2.constants.NGHTTP2_NO_ERROR;
          expect(outcome.resets).toEqual(outcome.resets.map(() => rst));
        }
        expect(rss.peak - rss.before).toBeLessThan(RSS_BOUND_MB);
        await stillServing(target, pid);
      }, 180_000);
    }
  }
}

function countCodes(codes: ReadonlyArray<number | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of codes) out[String(c)] = (out[String(c)] ?? 0) + 1;
  return out;
}

describe('session limits, direct to a backend', () => {
  let backend: Awaited<ReturnType<typeof startTestBackend>>;
  beforeAll(async () => {
    backend = await startTestBackend(LIMITS);
  });
  afterAll(async () => {
    await backend?.dispose();
  });
  limitSuite(() => ({ route: 'direct', port: backend.port, backend }));
});

/**
 * Each front with its default upstream (`upstreamProtocol: auto`): Envoy forwards over HTTP/2, so both
 * client transports reach the backend's RFC 8441 path; HAProxy keeps HTTP/1.1. With `proto h2`,
 * HAProxy 2.6 stopped reading an HTTP/2 client that did not read (so nothing reached the backend to
 * bound), and after those attacks backend sessions stayed open more than 40 s after their clients had
 * gone, which hung the rest of the suite.
 */
describeEachFront('session limits through the front', (frontName) => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    // One backend, so every session lands on the process we watch.
    stack = await startTestStack({ front: frontName, roomBus: 'none', ...LIMITS }, 1);
  });
  afterAll(async () => {
    await stack?.dispose();
  });
  limitSuite(() => ({ route: `via ${frontName}`, port: Number(new URL(stack.front.url).port), backend: stack.backends[0]!, front: stack.front }));
});
