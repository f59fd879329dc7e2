import { Redis } from 'ioredis';
import type { Logger } from 'pino';

// Concurrent WebSocket sessions per client IP, the backend's line of the per-IP limit.
//
// Counted by one backend alone, the limit would be N × backends through the front: round robin per
// stream spreads one client's sessions over all of them. So with Redis (the room bus's), the backends
// share the count: each keeps its own sessions per IP in a hash of its own, and admitting a session
// is one Lua script that adds up every live backend's count for that IP and records the new one —
// atomic in Redis, so two backends cannot both admit the last slot.
//
//   ws:ip-sessions            set of backend ids that have published counts
//   ws:ip-sessions:<id>       hash ip → sessions on that backend (absolute values, this process's truth)
//
// A backend's hash expires unless it refreshes it (every ttl / 3): counts of a backend that died stop
// counting within the TTL, and one restarted under the same id drops them at once. Redis unreachable:
// the backend counts alone (the limit degrades to per backend) and republishes its hash on reconnect.
// The HAProxy front enforces the same limit itself, before any backend (haproxy/haproxy.cfg.tmpl);
// Envoy 1.40 has no per-client concurrency limit, so behind Envoy this count is the global one.

export interface IpReservation {
  readonly ip: string;
  /** Give the slot back; idempotent, so every way a session or a failed handshake ends may call it. */
  release(): void;
}

export interface IpSessionLimiter {
  /** Take a slot for `ip`; undefined when `ip` already holds `limit` sessions (across backends when shared). */
  acquire(ip: string): Promise<IpReservation | undefined>;
  /** Counted across backends right now (false: this backend alone). */
  shared(): boolean;
  close(): Promise<void>;
}

const SET_KEY = 'ws:ip-sessions';
const keyOf = (backendId: string) => `${SET_KEY}:${backendId}`;

// KEYS[1] set of backends, KEYS[2] this backend's hash; ARGV: own id, ip, own count with the new
// session, limit, ttl ms. Other backends' hashes are read by name (a single Redis, not a cluster).
const ACQUIRE_SCRIPT = `
local total = tonumber(ARGV[3])
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[1] then
    local key = KEYS[1] .. ':' .. id
    if redis.call('EXISTS', key) == 0 then
      redis.call('SREM', KEYS[1], id)
    else
      total = total + tonumber(redis.call('HGET', key, ARGV[2]) or '0')
    end
  end
end
if total > tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('SADD', KEYS[1], ARGV[1])
return 1
`;

/** The per-IP counts of this process; what both limiters keep, and all the local one has. */
class OwnCounts {
  readonly #counts = new Map<string, number>();

  get(ip: string): number {
    return this.#counts.get(ip) ?? 0;
  }

  add(ip: string, delta: number): number {
    const n = this.get(ip) + delta;
    if (n > 0) this.#counts.set(ip, n);
    else this.#counts.delete(ip);
    return n;
  }

  entries(): Array<[string, number]> {
    return [...this.#counts];
  }
}

function reservation(ip: string, onRelease: () => void): IpReservation {
  let released = false;
  return {
    ip,
    release() {
      if (released) return;
      released = true;
      onRelease();
    },
  };
}

/** This backend's sessions only: the limit is per backend. */
export class LocalIpSessions implements IpSessionLimiter {
  readonly #own = new OwnCounts();
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  async acquire(ip: string): Promise<IpReservation | undefined> {
    if (this.#own.get(ip) >= this.#limit) return undefined;
    this.#own.add(ip, 1);
    return reservation(ip, () => this.#own.add(ip, -1));
  }

  shared(): boolean {
    return false;
  }

  async close(): Promise<void> {}
}

/** Every backend on the same Redis shares the count. */
export class SharedIpSessions implements IpSessionLimiter {
  readonly #own = new OwnCounts();
  readonly #limit: number;
  readonly #id: string;
  readonly #key: string;
  readonly #ttlMs: number;
  readonly #redis: Redis;
  readonly #log: Logger;
  readonly #refresh: NodeJS.Timeout;
  #up = false;
  #closing = false;

  constructor(options: { redisUrl: string; backendId: string; limit: number; log: Logger; ttlMs?: number }) {
    this.#limit = options.limit;
    this.#id = options.backendId;
    this.#key = keyOf(options.backendId);
    this.#ttlMs = options.ttlMs ?? 15_000;
    this.#log = options.log;
    // Fail fast while Redis is down: a handshake must not wait for it.
    this.#redis = new Redis(options.redisUrl, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times: number) => Math.min(100 * 2 ** times, 2_000),
    });
    this.#redis.defineCommand('ipSessionsAcquire', { numberOfKeys: 2, lua: ACQUIRE_SCRIPT });
    this.#redis.on('error', (err) => this.#log.debug({ err: err.message }, 'redis error (per-IP sessions)'));
    this.#redis.on('ready', () => void this.#publishAll());
    this.#redis.on('close', () => this.#setUp(false));
    this.#refresh = setInterval(() => void this.#redis.pexpire(this.#key, this.#ttlMs).catch(() => {}), this.#ttlMs / 3).unref();
  }

  /** Resolves once the first (re)publication is done, or after `timeoutMs` (then counting alone). */
  async ready(timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#up && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  shared(): boolean {
    return this.#up;
  }

  async acquire(ip: string): Promise<IpReservation | undefined> {
    // Reserve here first: two handshakes of one IP in flight on this backend both count.
    const own = this.#own.add(ip, 1);
    const release = () => this.#publish(ip, this.#own.add(ip, -1));
    let admitted = own <= this.#limit;
    if (this.#up) {
      try {
        const run = (this.#redis as unknown as { ipSessionsAcquire(...args: Array<string | number>): Promise<number> }).ipSessionsAcquire;
        admitted = (await run.call(this.#redis, SET_KEY, this.#key, this.#id, ip, this.#own.get(ip), this.#limit, this.#ttlMs)) === 1;
      } catch (err) {
        this.#log.debug({ err: (err as Error).message, ip }, 'per-IP count unavailable: this backend counts alone');
      }
    }
    if (!admitted) {
      // Published too: a concurrent admission of the same IP here may have published our reservation.
      this.#publish(ip, this.#own.add(ip, -1));
      return undefined;
    }
    return reservation(ip, release);
  }

  /** This backend's count for `ip` as it is now (absolute, so an update that arrives late is still right). */
  #publish(ip: string, count: number): void {
    if (!this.#up) return;
    const write = count > 0 ? this.#redis.hset(this.#key, ip, count) : this.#redis.hdel(this.#key, ip);
    write.catch((err: Error) => this.#log.debug({ err: err.message, ip }, 'per-IP count not published'));
  }

  /** On (re)connect: replace whatever Redis holds for this backend (a predecessor's, or a stale copy). */
  async #publishAll(): Promise<void> {
    try {
      const multi = this.#redis.multi().del(this.#key);
      const entries = this.#own.entries();
      if (entries.length) multi.hset(this.#key, Object.fromEntries(entries)).pexpire(this.#key, this.#ttlMs);
      await multi.sadd(SET_KEY, this.#id).exec();
      this.#setUp(true);
    } catch (err) {
      this.#log.debug({ err: (err as Error).message }, 'per-IP counts not published');
    }
  }

  #setUp(up: boolean): void {
    if (up === this.#up || this.#closing) return;
    this.#up = up;
    this.#log[up ? 'info' : 'warn'](up ? 'per-IP session limit shared across backends (redis)' : 'redis down: per-IP session limit counted by this backend alone');
  }

  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#refresh);
    // Sessions are gone with this process: its counts must not hold other backends' clients back.
    await this.#redis.del(this.#key).catch(() => {});
    this.#redis.disconnect();
  }
}
