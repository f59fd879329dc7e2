import type { Logger } from 'pino';
import { z } from 'zod';
import { H1Client } from '../../client/h1-client.js';
import { MuxClient } from '../../client/mux-client.js';
import type { WsClient, WsSession } from '../../client/types.js';
import { GatewayError, reopensAfter } from '../../lib/errors.js';
import { logger } from '../../lib/log.js';
import { isLoopbackHost } from '../../lib/loopback.js';

// The dashboard's "start a small load" button: a bounded burst of echo sessions through the front,
// so a visitor watches one HTTP/2 connection carry hundreds of sessions (or HTTP/1.1 need one
// connection each). Bounded in count (≤ 2,000) and time (≤ 60 s), one run at a time, loopback only:
// it is a teaching aid on a local stack, not a load tester (that is `npm run bench`).

export const MAX_LOAD_SESSIONS = 2_000;
export const MAX_LOAD_SECONDS = 60;
/** Handshakes in flight at once while opening. */
const OPEN_CONCURRENCY = 100;
/** Each open session sends one small echo message this often. */
const MESSAGE_INTERVAL_MS = 1_000;

export const loadRequestSchema = z.strictObject({
  sessions: z.number().int().min(1).max(MAX_LOAD_SESSIONS),
  seconds: z.number().int().min(1).max(MAX_LOAD_SECONDS),
  /** h2: every session an RFC 8441 stream on one connection; h1: one connection per session; mixed: half each. */
  transport: z.enum(['h2', 'h1', 'mixed']).default('h2'),
});
export type LoadRequest = z.infer<typeof loadRequestSchema>;

export type LoadState = 'idle' | 'opening' | 'running' | 'stopping' | 'done';

export interface LoadStatus {
  state: LoadState;
  transport: LoadRequest['transport'] | null;
  requested: { h2: number; h1: number };
  /** Sessions whose handshake succeeded, and those open right now, per transport. */
  opened: { h2: number; h1: number };
  open: { h2: number; h1: number };
  failed: number;
  /** Sessions a proxy or backend closed (drain 1001, restart 1012, ...) and this load opened again, as SessionKeeper does. */
  reopened: number;
  /** TCP connections this load holds to the front right now, per transport. */
  connections: { h2: number; h1: number };
  /** The most TCP connections this load held at once (sampled each second). */
  peakConnections: { h2: number; h1: number };
  /** Echo messages sent and received back. */
  sent: number;
  echoed: number;
  startedAt: number | null;
  endsAt: number | null;
  lastError: string | null;
}

/** A load is already running: stop it first (DELETE /load). */
export class LoadBusyError extends GatewayError {
  constructor() {
    super('GW_ERR_LOAD_BUSY', 'a load is already running; stop it first (DELETE /load)');
  }
}

/** The front is not on a loopback address: the load button only drives a local stack. */
export class LoadNotLocalError extends GatewayError {
  constructor(host: string) {
    super('GW_ERR_LOAD_NOT_LOCAL', `the load generator only targets a loopback front, not ${host}`);
  }
}

export { isLoopbackHost };

function emptyStatus(): LoadStatus {
  return {
    state: 'idle',
    transport: null,
    requested: { h2: 0, h1: 0 },
    opened: { h2: 0, h1: 0 },
    open: { h2: 0, h1: 0 },
    failed: 0,
    reopened: 0,
    connections: { h2: 0, h1: 0 },
    peakConnections: { h2: 0, h1: 0 },
    sent: 0,
    echoed: 0,
    startedAt: null,
    endsAt: null,
    lastError: null,
  };
}

export class LoadRunner {
  readonly #frontUrl: URL;
  readonly #log: Logger;
  #status: LoadStatus = emptyStatus();
  #clients: { h2?: MuxClient; h1?: H1Client } = {};
  readonly #sessions = new Set<WsSession>();
  #tick: NodeJS.Timeout | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #run: Promise<void> | undefined;
  #cancelled = false;
  /** Ends the current run's wait early (stop()). */
  #wake: (() => void) | undefined;

  constructor(frontUrl: string, log: Logger = logger('web-load')) {
    this.#frontUrl = new URL(frontUrl);
    // A front bound to every address is reached over loopback.
    if (this.#frontUrl.hostname === '0.0.0.0' || this.#frontUrl.hostname === '[::]') this.#frontUrl.hostname = '127.0.0.1';
    this.#log = log;
  }

  get running(): boolean {
    return this.#run !== undefined;
  }

  status(): LoadStatus {
    const s = structuredClone(this.#status);
    s.connections = { h2: this.#clients.h2?.stats().connections ?? 0, h1: this.#clients.h1?.stats().connections ?? 0 };
    return s;
  }

  /** Start a load in the background; resolves at once with the first status. */
  start(request: LoadRequest): LoadStatus {
    if (this.#run) throw new LoadBusyError();
    if (!isLoopbackHost(this.#frontUrl.hostname)) throw new LoadNotLocalError(this.#frontUrl.hostname);
    const h1 = request.transport === 'h1' ? request.sessions : request.transport === 'mixed' ? Math.floor(request.sessions / 2) : 0;
    const h2 = request.sessions - h1;
    const now = Date.now();
    this.#status = {
      ...emptyStatus(),
      state: 'opening',
      transport: request.transport,
      requested: { h2, h1 },
      startedAt: now,
      endsAt: now + request.seconds * 1000,
    };
    this.#cancelled = false;
    this.#clients = {
      ...(h2 > 0 && { h2: new MuxClient(this.#frontUrl, { handshakeTimeoutMs: 10_000 }) }),
      ...(h1 > 0 && { h1: new H1Client(this.#frontUrl, { handshakeTimeoutMs: 10_000 }) }),
    };
    this.#log.info({ h2, h1, seconds: request.seconds, front: this.#frontUrl.origin }, 'load started');
    this.#run = this.#execute(request.seconds * 1000).finally(() => (this.#run = undefined));
    return this.status();
  }

  /** Stop early (or wait for the end of a stop already under way). */
  async stop(): Promise<LoadStatus> {
    this.#cancelled = true;
    this.#wake?.();
    await this.#run;
    return this.status();
  }

  async #execute(durationMs: number): Promise<void> {
    // Ends at the deadline or at stop(), whichever comes first.
    const ended = new Promise<void>((resolve) => {
      this.#wake = resolve;
      this.#deadline = setTimeout(resolve, durationMs);
    });
    try {
      const plan: Array<'h2' | 'h1'> = [
        ...Array.from({ length: this.#status.requested.h2 }, () => 'h2' as const),
        ...Array.from({ length: this.#status.requested.h1 }, () => 'h1' as const),
      ];
      let next = 0;
      const worker = async () => {
        while (next < plan.length && !this.#cancelled && Date.now() < (this.#status.endsAt ?? 0)) await this.#openOne(plan[next++]!);
      };
      await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, plan.length) }, worker));
      if (!this.#cancelled) {
        this.#status.state = 'running';
        this.#tick = setInterval(() => this.#sendAll(), MESSAGE_INTERVAL_MS);
        this.#sendAll();
        await ended;
      }
    } finally {
      this.#status.state = 'stopping';
      clearInterval(this.#tick);
      clearTimeout(this.#deadline);
      for (const s of this.#sessions) s.ws.close(1000, 'load finished');
      // Give the close frames a moment to go out before the sockets are torn down.
      await new Promise((r) => setTimeout(r, 200));
      await Promise.all([this.#clients.h2?.close(), this.#clients.h1?.close()]);
      this.#sessions.clear();
      this.#status.open = { h2: 0, h1: 0 };
      this.#status.state = 'done';
      this.#status.endsAt = Date.now();
      this.#log.info({ opened: this.#status.opened, failed: this.#status.failed, echoed: this.#status.echoed }, 'load finished');
      this.#clients = {};
    }
  }

  async #openOne(transport: 'h2' | 'h1'): Promise<void> {
    const client: WsClient | undefined = this.#clients[transport];
    if (!client) return;
    try {
      const session = await client.open('/echo');
      this.#status.opened[transport]++;
      this.#status.open[transport]++;
      this.#sessions.add(session);
      session.ws.on('message', () => this.#status.echoed++);
      session.ws.once('close', (code) => {
        this.#sessions.delete(session);
        this.#status.open[transport]--;
        // Closed by the other side for a reason worth retrying (a drained backend's 1001, a restart's
        // 1012): opened again while the load runs, after a short jittered pause so a drained
        // backend's sessions do not all come back in the same millisecond.
        if (!this.#cancelled && this.#status.state === 'running' && reopensAfter(code)) {
          setTimeout(() => {
            if (this.#cancelled || this.#status.state !== 'running') return;
            this.#status.reopened++;
            void this.#openOne(transport);
          }, 100 + Math.random() * 400).unref();
        }
      });
    } catch (err) {
      this.#status.failed++;
      this.#status.lastError = (err as Error).message;
    }
  }

  #sendAll(): void {
    const { connections } = this.status();
    for (const t of ['h2', 'h1'] as const) this.#status.peakConnections[t] = Math.max(this.#status.peakConnections[t], connections[t]);
    for (const s of this.#sessions) {
      if (s.ws.readyState !== s.ws.OPEN || s.ws.bufferedAmount > 64 * 1024) continue;
      s.ws.send('load');
      this.#status.sent++;
    }
  }
}
