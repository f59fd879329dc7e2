import * as hdr from 'hdr-histogram-js';
import type { RawData } from 'ws';
import type { WsClient, WsSession } from './types.js';

// Echo measurements over sessions of one WsClient, whichever transport carries them.
//   runEchoProbe   — the demo's table: open N, echo M on each, one in flight per session.
//   openSessions   — open N with a bound on handshakes in flight; handshake latency distribution.
//   echoEach       — one verified echo on every session ("all echoing").
//   openLoopEcho   — fixed offered rate, latency measured from the INTENDED send time, so a stall
//                    counts against every message that should have gone out during it
//                    (coordinated-omission corrected, as wrk2 does).
//   closedLoopEcho — max throughput: each session keeps `window` messages in flight.
// Latencies are recorded in microseconds in HdrHistograms and summarised in milliseconds.

/** Largest latency a histogram tracks (µs): 120 s. Longer values are clamped to it. */
const HISTOGRAM_MAX_US = 120_000_000;

export function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: HISTOGRAM_MAX_US, numberOfSignificantValueDigits: 3 });
}

export function recordMs(histogram: hdr.Histogram, ms: number): void {
  histogram.recordValue(Math.min(HISTOGRAM_MAX_US, Math.max(1, Math.round(ms * 1000))));
}

/** Percentiles at which a latency CDF is sampled for charts. */
const CDF_PERCENTILES = [
  0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96, 97, 97.5, 98, 98.5, 99, 99.25, 99.5, 99.75, 99.9, 99.95, 99.99, 100,
] as const;

export interface LatencySummary {
  count: number;
  minMs: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** [percentile, ms] pairs at CDF_PERCENTILES. */
  cdf: Array<[number, number]>;
}

const ms3 = (us: number) => Math.round(us) / 1000;

export function summarize(histogram: hdr.Histogram): LatencySummary {
  const count = histogram.totalCount;
  if (count === 0) return { count: 0, minMs: 0, meanMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0, cdf: [] };
  // A percentile reads the top of its bucket (3 significant digits), which can lie just above the
  // exact maximum: cap it there so that p50 ≤ … ≤ max always holds.
  const max = histogram.maxValue;
  const at = (p: number) => ms3(Math.min(max, histogram.getValueAtPercentile(p)));
  return {
    count,
    minMs: ms3(histogram.minNonZeroValue),
    meanMs: ms3(histogram.mean),
    p50Ms: at(50),
    p90Ms: at(90),
    p99Ms: at(99),
    p999Ms: at(99.9),
    maxMs: ms3(max),
    cdf: CDF_PERCENTILES.map((p) => [p, at(p)]),
  };
}

// ---- the demo's probe ------------------------------------------------------------------------

export interface EchoProbeOptions {
  sessions: number;
  messagesPerSession: number;
  payloadBytes?: number;
  path?: string;
  onProgress?: (done: number, total: number, phase: 'open' | 'echo') => void;
}

export interface EchoProbeResult {
  transport: 'h1' | 'h2';
  sessions: number;
  /** Client TCP connections that carried them. */
  tcpConnections: number;
  openMs: number;
  rttMs: { p50: number; p99: number; max: number };
  echoes: number;
  /** Replies that did not match what was sent (must be 0). */
  mismatches: number;
  spread: Record<string, number>;
}

function echoOnce(session: WsSession, payload: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onClose = (code: number) => reject(new Error(`session closed (${code}) during echo`));
    session.ws.once('close', onClose);
    session.ws.once('message', (data) => {
      session.ws.off('close', onClose);
      resolve(data.toString() === payload);
    });
    session.ws.send(payload);
  });
}

export function spreadOf(sessions: readonly WsSession[]): Record<string, number> {
  const spread: Record<string, number> = {};
  for (const s of sessions) spread[s.backendId ?? '?'] = (spread[s.backendId ?? '?'] ?? 0) + 1;
  return spread;
}

/** Open N sessions on one client, then echo M messages on each (one outstanding per session). */
export async function runEchoProbe(client: WsClient, options: EchoProbeOptions): Promise<EchoProbeResult> {
  const { sessions: n, messagesPerSession: m, onProgress } = options;
  const filler = 'x'.repeat(Math.max(0, (options.payloadBytes ?? 32) - 12));

  const opened = await openSessions(client, n, {
    path: options.path,
    concurrency: n,
    onProgress: (done, total) => onProgress?.(done, total, 'open'),
  });
  if (opened.failed > 0) {
    for (const s of opened.sessions) s.ws.terminate();
    throw new Error(`${opened.failed}/${n} sessions failed to open: ${Object.keys(opened.errors)[0] ?? 'unknown error'}`);
  }
  const { sessions } = opened;
  const tcpConnections = client.stats().connections;

  const histogram = newHistogram();
  let done = 0;
  let mismatches = 0;
  await Promise.all(
    sessions.map(async (s, i) => {
      for (let k = 0; k < m; k++) {
        const payload = `${i}:${k}:${filler}`;
        const start = performance.now();
        if (!(await echoOnce(s, payload))) mismatches++;
        recordMs(histogram, performance.now() - start);
        onProgress?.(++done, n * m, 'echo');
      }
    }),
  );

  const spread = spreadOf(sessions);
  for (const s of sessions) s.ws.close(1000, 'probe done');
  const summary = summarize(histogram);
  histogram.destroy();
  return {
    transport: client.transport,
    sessions: n,
    tcpConnections,
    openMs: opened.elapsedMs,
    rttMs: { p50: summary.p50Ms, p99: summary.p99Ms, max: summary.maxMs },
    echoes: done,
    mismatches,
    spread,
  };
}

// ---- opening many sessions -------------------------------------------------------------------

export interface OpenSessionsOptions {
  path?: string;
  /** Handshakes in flight at once (a storm is bounded by this). Default: all of them. */
  concurrency?: number;
  /** Stop starting new handshakes after this long (ms from the start); those count as failed. */
  deadlineMs?: number;
  onProgress?: (done: number, total: number) => void;
  /** Called as each session opens, before its first message can arrive (e.g. to attach listeners). */
  onOpen?: (session: WsSession, index: number) => void;
  /** Called when the first handshake starts and when the last one settled, before the handshake
   *  latencies are summarised: CPU sampled there is the cost of opening, not of the report. */
  onMark?: (mark: 'start' | 'end') => void;
}

export interface OpenSessionsResult {
  sessions: WsSession[];
  attempted: number;
  failed: number;
  /** Failure messages (numbers masked) and how often each happened. */
  errors: Record<string, number>;
  /** Start of the first handshake to the end of the last one. */
  elapsedMs: number;
  handshake: LatencySummary;
}

/** Group error messages that differ only by addresses, ports, ids or timings (HTTP statuses stay). */
function errorKey(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const text = `${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`;
  return text
    .replace(/\d{1,3}(\.\d{1,3}){3}(:\d+)?/g, 'ADDR')
    .replace(/\b\d{4,}\b/g, 'N')
    .slice(0, 160);
}

export async function openSessions(client: WsClient, n: number, options: OpenSessionsOptions = {}): Promise<OpenSessionsResult> {
  const path = options.path ?? '/echo';
  const concurrency = Math.max(1, Math.min(n, options.concurrency ?? n));
  const histogram = newHistogram();
  const sessions: WsSession[] = [];
  const errors: Record<string, number> = {};
  let next = 0;
  let settled = 0;
  let failed = 0;
  const t0 = performance.now();
  const deadline = options.deadlineMs === undefined ? Infinity : t0 + options.deadlineMs;
  options.onMark?.('start');

  const lane = async () => {
    while (next < n) {
      const start = performance.now();
      if (start > deadline) return;
      next++;
      try {
        const session = await client.open(path);
        recordMs(histogram, performance.now() - start);
        options.onOpen?.(session, sessions.length);
        sessions.push(session);
      } catch (err) {
        failed++;
        const key = errorKey(err);
        errors[key] = (errors[key] ?? 0) + 1;
      }
      options.onProgress?.(++settled, n);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  const elapsedMs = performance.now() - t0;
  options.onMark?.('end');
  const notStarted = n - next;
  if (notStarted > 0) errors['not started: deadline passed'] = notStarted;
  const handshake = summarize(histogram);
  histogram.destroy();
  return { sessions, attempted: next, failed: failed + notStarted, errors, elapsedMs, handshake };
}

// ---- binary echo payloads ----------------------------------------------------------------------

/** Smallest payload: a 4-byte sequence number. */
const MIN_PAYLOAD = 4;

function payloadFactory(size: number): (seq: number) => Buffer {
  const template = Buffer.alloc(Math.max(MIN_PAYLOAD, size), 0x61);
  return (seq) => {
    // A fresh buffer per message: ws may hold a reference until the frame is written.
    const b = Buffer.from(template);
    b.writeUInt32LE(seq >>> 0, 0);
    return b;
  };
}

function seqOf(data: RawData): number {
  const b = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
  return b.length >= MIN_PAYLOAD ? b.readUInt32LE(0) : -1;
}

export interface EchoEachResult {
  ok: number;
  mismatches: number;
  /** Sessions that closed, or did not answer within the timeout. */
  failed: number;
  elapsedMs: number;
}

/** One echo of `size` bytes on every session at once, each checked. */
export async function echoEach(sessions: readonly WsSession[], size: number, timeoutMs = 30_000): Promise<EchoEachResult> {
  const make = payloadFactory(size);
  const t0 = performance.now();
  let ok = 0;
  let mismatches = 0;
  let failed = 0;
  await Promise.all(
    sessions.map(
      (s, i) =>
        new Promise<void>((resolve) => {
          const { ws } = s;
          const finish = (outcome: 'ok' | 'mismatch' | 'failed') => {
            clearTimeout(timer);
            ws.off('message', onMessage);
            ws.off('close', onClose);
            if (outcome === 'ok') ok++;
            else if (outcome === 'mismatch') mismatches++;
            else failed++;
            resolve();
          };
          const onMessage = (data: RawData) => finish(seqOf(data) === i ? 'ok' : 'mismatch');
          const onClose = () => finish('failed');
          const timer = setTimeout(() => finish('failed'), timeoutMs);
          if (ws.readyState !== ws.OPEN) return finish('failed');
          ws.on('message', onMessage);
          ws.once('close', onClose);
          ws.send(make(i), { binary: true });
        }),
    ),
  );
  return { ok, mismatches, failed, elapsedMs: performance.now() - t0 };
}

// ---- timed echo runs ---------------------------------------------------------------------------

export interface TimedEchoOptions {
  size: number;
  /** Measured window, after the warm-up. */
  durationMs: number;
  warmupMs: number;
  /** After the window, how long to wait for replies still in flight. */
  drainMs: number;
  /** Called at the start and end of the measured window (CPU samples are taken there). */
  onMark?: (mark: 'start' | 'end') => void;
}

export interface TimedEchoResult {
  size: number;
  sessions: number;
  /** Actual measured window (ms). */
  windowMs: number;
  sent: number;
  received: number;
  /** Sent but never answered before the drain ended. */
  lost: number;
  mismatches: number;
  /** Sessions that were closed during the run. */
  closedSessions: number;
  /** Echoes whose reply arrived inside the window (throughput) or whose send was due inside it (latency). */
  echoesInWindow: number;
  msgsPerS: number;
  /** Payload megabytes echoed per second, one way (each echo carries the payload both ways). */
  mbPerS: number;
  latency: LatencySummary;
}

interface Lane {
  seq: number;
  expect: number;
  /** FIFO of times against which the reply is measured (intended or actual send time). */
  pending: number[];
}

function wire(
  sessions: readonly WsSession[],
  onReply: (i: number, lane: Lane, ok: boolean, now: number, since: number | undefined) => void,
): { lanes: Lane[]; unwire: () => void; closed: () => number } {
  const lanes: Lane[] = sessions.map(() => ({ seq: 0, expect: 0, pending: [] }));
  let closed = 0;
  const detach: Array<() => void> = [];
  sessions.forEach((s, i) => {
    const lane = lanes[i]!;
    const onMessage = (data: RawData) => {
      const now = performance.now();
      const since = lane.pending.shift();
      const ok = seqOf(data) === (lane.expect++ >>> 0);
      onReply(i, lane, ok, now, since);
    };
    const onClose = () => closed++;
    s.ws.on('message', onMessage);
    s.ws.once('close', onClose);
    detach.push(() => {
      s.ws.off('message', onMessage);
      s.ws.off('close', onClose);
    });
  });
  return { lanes, unwire: () => detach.forEach((d) => d()), closed: () => closed };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

async function drain(done: () => boolean, drainMs: number): Promise<void> {
  const until = performance.now() + drainMs;
  while (!done() && performance.now() < until) await sleep(5);
}

function finishResult(
  base: Omit<TimedEchoResult, 'msgsPerS' | 'mbPerS' | 'latency'>,
  histogram: hdr.Histogram,
  size: number,
): TimedEchoResult {
  const seconds = base.windowMs / 1000;
  const latency = summarize(histogram);
  histogram.destroy();
  return {
    ...base,
    msgsPerS: seconds > 0 ? base.echoesInWindow / seconds : 0,
    mbPerS: seconds > 0 ? (base.echoesInWindow * size) / 1e6 / seconds : 0,
    latency,
  };
}

export interface OpenLoopOptions extends TimedEchoOptions {
  /** Offered rate over all sessions together (messages per second), sent round robin. */
  ratePerS: number;
}

/**
 * Open loop: message k is due at t0 + k/rate whatever happened to earlier ones; its latency is
 * measured from that due time. Unanswered messages of the window are recorded at the drain deadline.
 */
export async function openLoopEcho(sessions: readonly WsSession[], o: OpenLoopOptions): Promise<TimedEchoResult> {
  const n = sessions.length;
  const make = payloadFactory(o.size);
  const histogram = newHistogram();
  const interval = 1000 / o.ratePerS;
  const total = Math.max(1, Math.floor(((o.warmupMs + o.durationMs) * o.ratePerS) / 1000));
  const t0 = performance.now() + 5;
  const windowStart = t0 + o.warmupMs;
  const windowEnd = windowStart + o.durationMs;
  const inWindow = (due: number) => due >= windowStart && due < windowEnd;
  let sent = 0;
  let received = 0;
  let mismatches = 0;
  let echoesInWindow = 0;

  const { lanes, unwire, closed } = wire(sessions, (_i, _lane, ok, now, due) => {
    received++;
    if (!ok) mismatches++;
    if (due !== undefined && inWindow(due)) {
      echoesInWindow++;
      recordMs(histogram, now - due);
    }
  });

  const marks = [
    setTimeout(() => o.onMark?.('start'), windowStart - performance.now()),
    setTimeout(() => o.onMark?.('end'), windowEnd - performance.now()),
  ];
  let k = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor((performance.now() - t0) / interval) + 1);
      for (; k < due; k++) {
        const i = k % n;
        const s = sessions[i]!;
        if (s.ws.readyState !== s.ws.OPEN) continue;
        const lane = lanes[i]!;
        lane.pending.push(t0 + k * interval);
        s.ws.send(make(lane.seq++), { binary: true });
        sent++;
      }
      if (k >= total) resolve();
      else setTimeout(tick, 1);
    };
    setTimeout(tick, t0 - performance.now());
  });
  await sleep(windowEnd - performance.now() + 1);
  await drain(() => received >= sent, o.drainMs);
  clearTimeout(marks[0]);
  clearTimeout(marks[1]);
  const deadline = performance.now();
  // Coordinated-omission correction for the lost ones too: they waited at least until now.
  for (const lane of lanes) for (const due of lane.pending) if (inWindow(due)) recordMs(histogram, deadline - due);
  unwire();
  return finishResult(
    {
      size: o.size,
      sessions: n,
      windowMs: o.durationMs,
      sent,
      received,
      lost: sent - received,
      mismatches,
      closedSessions: closed(),
      echoesInWindow,
    },
    histogram,
    o.size,
  );
}

export interface ClosedLoopOptions extends TimedEchoOptions {
  /** Messages each session keeps in flight: 1 = one at a time, more = burst. */
  window: number;
}

/** Closed loop: each reply sends the next message on its session; counts replies inside the window. */
export async function closedLoopEcho(sessions: readonly WsSession[], o: ClosedLoopOptions): Promise<TimedEchoResult> {
  const make = payloadFactory(o.size);
  const histogram = newHistogram();
  const t0 = performance.now();
  const windowStart = t0 + o.warmupMs;
  const windowEnd = windowStart + o.durationMs;
  let running = true;
  let sent = 0;
  let received = 0;
  let mismatches = 0;
  let echoesInWindow = 0;

  const send = (i: number, lane: Lane) => {
    const s = sessions[i]!;
    if (s.ws.readyState !== s.ws.OPEN) return;
    lane.pending.push(performance.now());
    s.ws.send(make(lane.seq++), { binary: true });
    sent++;
  };
  const { lanes, unwire, closed } = wire(sessions, (i, lane, ok, now, sentAt) => {
    received++;
    if (!ok) mismatches++;
    if (now >= windowStart && now < windowEnd) {
      echoesInWindow++;
      if (sentAt !== undefined) recordMs(histogram, now - sentAt);
    }
    if (running) send(i, lane);
  });
  const marks = [
    setTimeout(() => o.onMark?.('start'), windowStart - performance.now()),
    setTimeout(() => {
      running = false;
      o.onMark?.('end');
    }, windowEnd - performance.now()),
  ];
  lanes.forEach((lane, i) => {
    for (let w = 0; w < o.window; w++) send(i, lane);
  });
  await sleep(windowEnd - performance.now() + 1);
  running = false;
  await drain(() => received >= sent, o.drainMs);
  clearTimeout(marks[0]);
  clearTimeout(marks[1]);
  unwire();
  return finishResult(
    {
      size: o.size,
      sessions: sessions.length,
      windowMs: o.durationMs,
      sent,
      received,
      lost: sent - received,
      mismatches,
      closedSessions: closed(),
      echoesInWindow,
    },
    histogram,
    o.size,
  );
}
