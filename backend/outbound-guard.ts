import type { WebSocket } from 'ws';
import type { BackendConfig } from '../lib/config.js';
import { CloseCode } from '../lib/errors.js';

// What the backend lets a session hold unsent, on either transport: per session (the slow
// consumer), per HTTP/2 connection (many sessions, possibly many clients' through a front, share
// one), and for how long nothing of it can be written (a peer that keeps its HTTP/2 stream window
// or its TCP window at zero). Only the public ws API is used: `bufferedAmount` (every frame not yet
// written: messages, pongs, pings, close), and the callback of `send()`, which ws calls once the
// frame has been handed to the socket (for an HTTP/2 stream: once it went out in a DATA frame, so
// never while the peer's window stays shut).

/**
 * What one queued message costs besides its payload: the Writable's entry, the frame header and
 * payload Buffer objects, the callback. Measured with `node --expose-gc` on a zero-window HTTP/2
 * stream and a paused TCP socket alike: 213–272 B of heap and 330–460 B of RSS per queued message
 * of 16 B–16 KiB. Counting only payload bytes let a 4 MiB slow-consumer bound of small messages
 * cost about 20 MiB of RSS per session.
 */
const QUEUED_MESSAGE_OVERHEAD_BYTES = 384;

export type OutboundLimits = Pick<
  BackendConfig,
  'slowConsumerBytes' | 'slowConsumerPolicy' | 'maxConnectionUnsentBytes' | 'writeStallTimeoutMs'
>;

/** Which bound a session crossed; named as in `ws_limit_hits_total{limit}`. */
export type OutboundLimit = 'slow_consumer' | 'connection_unsent' | 'write_stall';

export interface TrackOptions {
  /** The transport connection the session shares with others (an HTTP/2 session); none for HTTP/1.1. */
  connection?: object;
  /** Ends the session without a close frame, which could not get past what the peer does not read. */
  drop(): void;
}

/** The guard's per-connection sum over its sessions that are still open. */
interface ConnectionUnsent {
  total: number;
  sessions: Set<SessionOutbound>;
}

/** One session's unsent messages; every send goes through `OutboundGuard.send()`. */
export class SessionOutbound {
  /** Handed to `ws.send()` as its callback: one function per session, nothing allocated per message. */
  readonly flushed: () => void;
  readonly ws: WebSocket;
  readonly drop: () => void;
  /** Messages sent and not yet written out. */
  pending = 0;
  /** A message went out since the guard last looked. */
  progressed = false;
  /** Unsent bytes when the guard last looked. */
  lastUnsent = 0;
  /** Guard sweeps in a row that found bytes unsent and nothing written. */
  stalledSweeps = 0;
  /** The cost last added to the connection's total. */
  counted = 0;
  readonly #connection: ConnectionUnsent | undefined;

  constructor(ws: WebSocket, options: TrackOptions, connection: ConnectionUnsent | undefined) {
    this.ws = ws;
    this.drop = options.drop;
    this.#connection = connection;
    this.flushed = () => {
      this.pending--;
      this.progressed = true;
      this.#recount();
    };
  }

  /** Bytes plus per-message bookkeeping this session holds unsent. */
  unsentCost(): number {
    return this.ws.bufferedAmount + this.pending * QUEUED_MESSAGE_OVERHEAD_BYTES;
  }

  /** Sends one message, counted until ws reports it written. Returns the connection's new total. */
  send(data: string | Buffer, binary: boolean): number {
    this.pending++;
    this.ws.send(data, { binary }, this.flushed);
    this.#recount();
    return this.#connection?.total ?? 0;
  }

  /** Out of the connection's total: closed, or closing because of a limit (it gets no more sends). */
  release(): void {
    if (!this.#connection?.sessions.delete(this)) return;
    this.#connection.total -= this.counted;
    this.counted = 0;
  }

  #recount(): void {
    const connection = this.#connection;
    if (!connection?.sessions.has(this)) return;
    const cost = this.unsentCost();
    connection.total += cost - this.counted;
    this.counted = cost;
  }

  /** The open session on this one's connection that holds most, to be closed when the connection is over its cap. */
  largestOnConnection(): SessionOutbound | undefined {
    let largest: SessionOutbound | undefined;
    for (const s of this.#connection?.sessions ?? []) if (!largest || s.counted > largest.counted) largest = s;
    return largest;
  }
}

/**
 * The backend's outbound bounds. `track()` each session once it is open and send through
 * `send()`; a sweep drops sessions whose writes stalled. `onLimit` counts each bound crossed.
 */
export class OutboundGuard {
  readonly #limits: OutboundLimits;
  readonly #onLimit: (limit: OutboundLimit) => void;
  readonly #sessions = new Set<SessionOutbound>();
  readonly #connections = new WeakMap<object, ConnectionUnsent>();
  readonly #sweepMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(limits: OutboundLimits, onLimit: (limit: OutboundLimit) => void) {
    this.#limits = limits;
    this.#onLimit = onLimit;
    // At least ten looks per timeout, so a stalled session is dropped within 1.1 timeouts of its
    // last write; at most one a second, so 20,000 sessions cost one short loop per second.
    this.#sweepMs = Math.min(1_000, Math.max(50, Math.floor(limits.writeStallTimeoutMs / 10)));
    if (limits.writeStallTimeoutMs > 0) {
      this.#timer = setInterval(() => this.#sweep(), this.#sweepMs);
      this.#timer.unref();
    }
  }

  track(ws: WebSocket, options: TrackOptions): SessionOutbound {
    let connection: ConnectionUnsent | undefined;
    if (options.connection) {
      connection = this.#connections.get(options.connection);
      if (!connection) this.#connections.set(options.connection, (connection = { total: 0, sessions: new Set() }));
    }
    const session = new SessionOutbound(ws, options, connection);
    connection?.sessions.add(session);
    this.#sessions.add(session);
    ws.once('close', () => {
      session.release();
      this.#sessions.delete(session);
    });
    return session;
  }

  /**
   * Sends `data` on an open session unless it is a slow consumer (then, by policy, it is closed
   * with 1008 or this message is skipped). Returns whether it was sent. When the connection's open
   * sessions together then hold more than their cap, the one holding most is closed with 1008:
   * the largest, not the sender, so an attacker's stalled streams do not cost the other clients'
   * sessions that share the front's connection their place.
   */
  send(session: SessionOutbound, data: string | Buffer, binary: boolean): boolean {
    if (session.unsentCost() > this.#limits.slowConsumerBytes) {
      this.#onLimit('slow_consumer');
      if (this.#limits.slowConsumerPolicy === 'close') this.#close(session, 'slow consumer');
      return false; // 'drop': this message is skipped; the session gets the next one that fits
    }
    if (session.send(data, binary) > this.#limits.maxConnectionUnsentBytes) {
      const largest = session.largestOnConnection();
      if (largest) {
        this.#onLimit('connection_unsent');
        this.#close(largest, 'connection send buffer full');
      }
    }
    return true;
  }

  /** Out of its connection's total at once: a closing session is sent nothing more. */
  #close(session: SessionOutbound, reason: string): void {
    session.release();
    session.ws.close(CloseCode.POLICY_VIOLATION, reason);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #sweep(): void {
    const limitSweeps = Math.ceil(this.#limits.writeStallTimeoutMs / this.#sweepMs);
    for (const session of this.#sessions) {
      // Something went out: a message (its callback ran), or frames ws sends by itself (pongs,
      // pings, the close frame), seen as fewer unsent bytes than at the last look.
      const unsent = session.ws.bufferedAmount;
      const wrote = session.progressed || unsent < session.lastUnsent;
      session.lastUnsent = unsent;
      session.progressed = false;
      if (unsent === 0 || wrote) {
        session.stalledSweeps = 0;
        continue;
      }
      if (++session.stalledSweeps < limitSweeps) continue;
      this.#sessions.delete(session);
      session.release();
      this.#onLimit('write_stall');
      session.drop();
    }
  }
}
