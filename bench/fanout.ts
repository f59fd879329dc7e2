import type { RawData } from 'ws';
import type { WsClient, WsSession } from '../client/types.js';
import { newHistogram, openSessions, recordMs, spreadOf, summarize, type LatencySummary } from '../client/echo-probe.js';

// Fan-out: N members join one chat room, member 0 publishes, every other member records how long
// each message took to reach it. All members live in this process, so one clock times both ends.
// With a room bus (Redis) a room spans backends; without one it lives in one backend's memory and
// the caller must make every member land on the same backend (direct route, or a pinned front).

export interface FanoutOptions {
  room: string;
  members: number;
  messages: number;
  intervalMs: number;
  concurrency: number;
  /** How long to wait for the join notices to reach everyone before publishing. */
  settleTimeoutMs: number;
  /** After the last publish, how long to wait for deliveries still in flight. */
  drainMs: number;
  onMark?: (mark: 'start' | 'end') => void;
  onProgress?: (done: number, total: number) => void;
}

export interface FanoutResult {
  members: number;
  opened: number;
  openErrors: Record<string, number>;
  /** Members that saw the final member count before publishing started. */
  settled: number;
  joinMs: number;
  published: number;
  /** published × (opened − 1): the publisher does not count its own copy. */
  expected: number;
  delivered: number;
  /** Per delivery: publish → arrival at one member. */
  delivery: LatencySummary;
  /** Per message: publish → arrival at the LAST member (only fully delivered messages). */
  allDelivered: LatencySummary;
  completeMessages: number;
  spread: Record<string, number>;
  /** The room bus the backend announced in its welcome frame ('local', 'redis'), if it sent one. */
  bus: string | null;
}

interface ChatFrame {
  type?: string;
  members?: number;
  text?: string;
  bus?: string;
}

function parse(data: RawData): ChatFrame | undefined {
  try {
    return JSON.parse(data.toString()) as ChatFrame;
  } catch {
    return undefined;
  }
}

export async function runFanout(client: WsClient, o: FanoutOptions): Promise<FanoutResult> {
  const seen: number[] = [];
  let bus: string | null = null;
  const handlers: Array<(frame: ChatFrame, now: number) => void> = [];
  const t0 = performance.now();
  const opened = await openSessions(client, o.members, {
    path: `/chat/${encodeURIComponent(o.room)}`,
    concurrency: o.concurrency,
    onProgress: o.onProgress,
    onOpen: (s: WsSession, i: number) => {
      seen[i] = 0;
      s.ws.on('message', (data) => {
        const now = performance.now();
        const frame = parse(data);
        if (!frame) return;
        if (frame.type === 'join' && typeof frame.members === 'number') seen[i] = Math.max(seen[i] ?? 0, frame.members);
        if (frame.type === 'welcome' && typeof frame.bus === 'string') bus = frame.bus;
        handlers[i]?.(frame, now);
      });
    },
  });
  const { sessions } = opened;
  const n = sessions.length;
  const settleUntil = performance.now() + o.settleTimeoutMs;
  while (seen.some((m) => m < n) && performance.now() < settleUntil) await new Promise((r) => setTimeout(r, 10));
  const joinMs = performance.now() - t0;
  const settled = seen.filter((m) => m >= n).length;

  const delivery = newHistogram();
  const published: number[] = [];
  const arrivals: number[] = [];
  const lastArrival: number[] = [];
  let delivered = 0;
  for (let i = 1; i < n; i++) {
    handlers[i] = (frame, now) => {
      if (frame.type !== 'message' || typeof frame.text !== 'string') return;
      const m = Number(/bench:(\d+)/.exec(frame.text)?.[1]);
      const sentAt = published[m];
      if (!Number.isInteger(m) || sentAt === undefined) return;
      delivered++;
      recordMs(delivery, now - sentAt);
      arrivals[m] = (arrivals[m] ?? 0) + 1;
      lastArrival[m] = now;
    };
  }

  const publisher = sessions[0];
  o.onMark?.('start');
  if (publisher && n > 1) {
    for (let m = 0; m < o.messages; m++) {
      if (publisher.ws.readyState !== publisher.ws.OPEN) break;
      published[m] = performance.now();
      // The chat route takes {"text": …} frames and relays the text to every member.
      publisher.ws.send(JSON.stringify({ text: `bench:${m}` }));
      await new Promise((r) => setTimeout(r, o.intervalMs));
    }
  }
  const expected = published.length * Math.max(0, n - 1);
  const drainUntil = performance.now() + o.drainMs;
  while (delivered < expected && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 5));
  o.onMark?.('end');

  const all = newHistogram();
  let completeMessages = 0;
  published.forEach((sentAt, m) => {
    if ((arrivals[m] ?? 0) >= n - 1 && lastArrival[m] !== undefined) {
      completeMessages++;
      recordMs(all, lastArrival[m]! - sentAt);
    }
  });
  const spread = spreadOf(sessions);
  for (const s of sessions) s.ws.terminate();
  const result: FanoutResult = {
    members: o.members,
    opened: n,
    openErrors: opened.errors,
    settled,
    joinMs,
    published: published.length,
    expected,
    delivered,
    delivery: summarize(delivery),
    allDelivered: summarize(all),
    completeMessages,
    spread,
    bus,
  };
  delivery.destroy();
  all.destroy();
  return result;
}
