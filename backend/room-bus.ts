import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';

// How a chat room reaches its members on every backend.
//
// LocalBus: the room lives in this process (one backend, or sticky-by-room balancing).
// RedisBus: every backend publishes to and subscribes from Redis, so a room spans backends.
//   - Each message is appended to a Redis Stream per room (bounded length) and published on the
//     room's channel by ONE Lua script: Redis runs scripts atomically, so the pub/sub order every
//     backend sees is the stream-ID order, i.e. one order per room for every member.
//   - The stream ID is the message's offset. A client that reconnects with `?since=<offset>` gets
//     the entries after it (XRANGE) before live messages, or "history too old" when Redis already
//     trimmed past it (XINFO STREAM max-deleted-entry-id).
//   - Redis down: publishing falls back to local members only (marked `degraded`), /healthz says
//     degraded, and ioredis reconnects and resubscribes by itself.

export interface RoomEvent {
  type: 'message' | 'join' | 'leave';
  room: string;
  /** Stream ID ("<ms>-<seq>") for messages stored in the room's history; absent for notices and degraded sends. */
  offset?: string;
  text?: string;
  from?: string;
  backend: string;
  members?: number;
  degraded?: boolean;
}

export interface Subscription {
  ready: Promise<void>;
  unsubscribe(): void;
}

export type HistoryResult = { ok: true; events: RoomEvent[] } | { ok: false; reason: 'too-old'; oldest: string | null } | { ok: false; reason: 'unavailable' };

export interface RoomBus {
  readonly kind: 'local' | 'redis';
  /** Deliver to every member of the room on every backend (including the sender's own backend). */
  publish(event: RoomEvent): Promise<void>;
  /** Live events for a room. Read history only after `ready`, so nothing falls between the two. */
  subscribe(room: string, listener: (event: RoomEvent) => void): Subscription;
  history(room: string, since: string): Promise<HistoryResult>;
  /** Record (backend) or clear (null) a member; resolves to the room's member count across backends. */
  setPresence(room: string, member: string, backend: string | null): Promise<number>;
  presence(): Promise<Record<string, Record<string, string>>>;
  status(): 'ok' | 'degraded';
  close(): Promise<void>;
}

/** Compare two stream IDs ("ms-seq"). */
export function compareOffsets(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am !== bm ? am - bm : as - bs;
}

export function isOffset(value: string): boolean {
  return /^\d{1,16}-\d{1,16}$/.test(value);
}

export class LocalBus implements RoomBus {
  readonly kind = 'local' as const;
  readonly #emitter = new EventEmitter().setMaxListeners(0);
  readonly #history = new Map<string, RoomEvent[]>();
  /** Newest offset trimmed from each room's history: a `since` before it has a gap. */
  readonly #dropped = new Map<string, string>();
  readonly #presence = new Map<string, Map<string, string>>();
  readonly #keep: number;
  #seq = 0;

  constructor(keep: number) {
    this.#keep = keep;
  }

  async publish(event: RoomEvent): Promise<void> {
    if (event.type === 'message') {
      event.offset = `0-${++this.#seq}`;
      const h = this.#history.get(event.room) ?? [];
      h.push(event);
      if (h.length > this.#keep) this.#dropped.set(event.room, h.shift()!.offset!);
      this.#history.set(event.room, h);
    }
    this.#emitter.emit(event.room, event);
  }

  subscribe(room: string, listener: (event: RoomEvent) => void): Subscription {
    this.#emitter.on(room, listener);
    return { ready: Promise.resolve(), unsubscribe: () => this.#emitter.off(room, listener) };
  }

  async history(room: string, since: string): Promise<HistoryResult> {
    const h = this.#history.get(room) ?? [];
    const dropped = this.#dropped.get(room);
    if (dropped && compareOffsets(since, dropped) < 0) return { ok: false, reason: 'too-old', oldest: h[0]?.offset ?? null };
    return { ok: true, events: h.filter((e) => compareOffsets(e.offset!, since) > 0) };
  }

  async setPresence(room: string, member: string, backend: string | null): Promise<number> {
    const m = this.#presence.get(room) ?? new Map<string, string>();
    if (backend) m.set(member, backend);
    else m.delete(member);
    if (m.size) this.#presence.set(room, m);
    else this.#presence.delete(room);
    return m.size;
  }

  async presence(): Promise<Record<string, Record<string, string>>> {
    return Object.fromEntries([...this.#presence].map(([room, m]) => [room, Object.fromEntries(m)]));
  }

  status(): 'ok' {
    return 'ok';
  }

  async close(): Promise<void> {}
}

// KEYS[1] = stream, KEYS[2] = channel; ARGV[1] = max length, ARGV[2] = JSON event without offset.
// The offset is spliced into the JSON here so the published copy carries it.
const PUBLISH_SCRIPT = `
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[2])
local published = '{"offset":"' .. id .. '",' .. string.sub(ARGV[2], 2)
redis.call('PUBLISH', KEYS[2], published)
return id`;

export class RedisBus implements RoomBus {
  readonly kind = 'redis' as const;
  readonly #cmd: Redis;
  readonly #sub: Redis;
  readonly #local = new EventEmitter().setMaxListeners(0);
  readonly #channels = new Map<string, number>();
  readonly #keep: number;
  readonly #log: Logger;
  #up = false;

  constructor(url: string, keep: number, log: Logger) {
    this.#keep = keep;
    this.#log = log;
    const options = {
      // Fail fast while Redis is down, so publish can fall back to local delivery at once.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times: number) => Math.min(100 * 2 ** times, 2_000),
      lazyConnect: false,
    };
    this.#cmd = new Redis(url, options);
    this.#sub = new Redis(url, { ...options, enableOfflineQueue: true, maxRetriesPerRequest: null });
    this.#cmd.defineCommand('roomPublish', { numberOfKeys: 2, lua: PUBLISH_SCRIPT });
    for (const [name, conn] of [['commands', this.#cmd], ['subscriber', this.#sub]] as const) {
      conn.on('error', (err) => log.debug({ err: err.message, conn: name }, 'redis error'));
    }
    this.#cmd.on('ready', () => this.#setUp(true));
    this.#cmd.on('close', () => this.#setUp(false));
    this.#sub.on('message', (channel: string, message: string) => {
      try {
        this.#local.emit(channel.slice('room:'.length), JSON.parse(message) as RoomEvent);
      } catch (err) {
        log.warn({ channel, err: (err as Error).message }, 'unparseable bus message');
      }
    });
  }

  #setUp(up: boolean): void {
    if (up === this.#up) return;
    this.#up = up;
    this.#log[up ? 'info' : 'warn'](up ? 'redis bus connected' : 'redis bus down: serving local members only (degraded)');
  }

  async ready(timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#up && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  async publish(event: RoomEvent): Promise<void> {
    const { offset: _drop, ...rest } = event;
    const json = JSON.stringify(rest);
    try {
      if (event.type === 'message') {
        await (this.#cmd as unknown as { roomPublish(k1: string, k2: string, a1: number, a2: string): Promise<string> }).roomPublish(
          `stream:${event.room}`,
          `room:${event.room}`,
          this.#keep,
          json,
        );
      } else {
        await this.#cmd.publish(`room:${event.room}`, json);
      }
    } catch (err) {
      this.#log.debug({ err: (err as Error).message, room: event.room }, 'publish failed: local delivery only');
      this.#local.emit(event.room, { ...rest, degraded: true });
    }
  }

  subscribe(room: string, listener: (event: RoomEvent) => void): Subscription {
    this.#local.on(room, listener);
    const n = (this.#channels.get(room) ?? 0) + 1;
    this.#channels.set(room, n);
    // Every joiner waits for the SUBSCRIBE reply (ioredis answers at once if already subscribed).
    const ready = this.#sub.subscribe(`room:${room}`).then(
      () => undefined,
      (err: Error) => this.#log.warn({ err: err.message, room }, 'subscribe failed: live messages from other backends will be missed until Redis is back'),
    );
    const unsubscribe = () => {
      this.#local.off(room, listener);
      const left = (this.#channels.get(room) ?? 1) - 1;
      if (left > 0) this.#channels.set(room, left);
      else {
        this.#channels.delete(room);
        void this.#sub.unsubscribe(`room:${room}`).catch(() => {});
      }
    };
    return { ready, unsubscribe };
  }

  async history(room: string, since: string): Promise<HistoryResult> {
    try {
      const key = `stream:${room}`;
      const info = (await this.#cmd.call('XINFO', 'STREAM', key).catch(() => null)) as unknown[] | null;
      if (info) {
        const fields = new Map<string, unknown>();
        for (let i = 0; i + 1 < info.length; i += 2) fields.set(String(info[i]), info[i + 1]);
        const maxDeleted = String(fields.get('max-deleted-entry-id') ?? '0-0');
        if (compareOffsets(since, maxDeleted) < 0) {
          const first = fields.get('first-entry') as [string, string[]] | null;
          return { ok: false, reason: 'too-old', oldest: first?.[0] ?? null };
        }
      }
      const entries = await this.#cmd.xrange(key, `(${since}`, '+');
      return {
        ok: true,
        events: entries.map(([id, kv]) => ({ ...(JSON.parse(kv[1] ?? '{}') as RoomEvent), offset: id })),
      };
    } catch (err) {
      this.#log.debug({ err: (err as Error).message, room }, 'history unavailable');
      return { ok: false, reason: 'unavailable' };
    }
  }

  async setPresence(room: string, member: string, backend: string | null): Promise<number> {
    try {
      if (backend) await this.#cmd.hset(`presence:${room}`, member, backend);
      else await this.#cmd.hdel(`presence:${room}`, member);
      return await this.#cmd.hlen(`presence:${room}`);
    } catch {
      // Presence is advisory; the bus being down must not break a join or a leave.
      return 0;
    }
  }

  async presence(): Promise<Record<string, Record<string, string>>> {
    const out: Record<string, Record<string, string>> = {};
    let cursor = '0';
    do {
      const [next, keys] = await this.#cmd.scan(cursor, 'MATCH', 'presence:*', 'COUNT', 200);
      cursor = next;
      for (const key of keys) out[key.slice('presence:'.length)] = await this.#cmd.hgetall(key);
    } while (cursor !== '0');
    return out;
  }

  status(): 'ok' | 'degraded' {
    return this.#up ? 'ok' : 'degraded';
  }

  async close(): Promise<void> {
    this.#sub.disconnect();
    this.#cmd.disconnect();
  }
}
