import { EventEmitter } from 'node:events';
import type { RawData } from 'ws';
import { CloseCode, reopensAfter } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import type { OpenSessionOptions, WsClient, WsSession } from './types.js';

// Keeps sessions open across the things a proxy does to them: a hot restart's old generation
// closing what it still holds, a drain deadline's 1001, a backend crash. A closed session is
// reopened on the same client (so MuxClient puts it on a live connection) with exponential backoff
// and full jitter, and the count of reopens is reported.
//
// Close-code policy (which closes mean "come back", which mean "stop"): the `reopen` column of
// CLOSE_CODES in lib/errors.ts, read through reopensAfter(). In short: reopen after 1001 going away,
// 1005/1006 (no status, connection lost), 1011 internal error, 1012 restart, 1013 try again later;
// stop after 1000, protocol and data errors, policy, too big, and 4xxx application codes.

const log = logger('session-keeper');

export interface KeeperOptions {
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Give up on a session after this many failed reopen attempts in a row. */
  maxAttempts?: number;
  open?: OpenSessionOptions;
}

export interface KeeperStats {
  kept: number;
  open: number;
  /** Sessions that were closed under us and opened again. */
  reopened: number;
  /** Reopen attempts that failed (each then retried with backoff). */
  failedAttempts: number;
  gaveUp: number;
}

/** Events: 'open' (WsSession, reopen: boolean), 'message' (data, isBinary), 'down' (close code), 'gave-up' (Error). */
export class KeptSession extends EventEmitter {
  readonly path: string;
  current: WsSession | undefined;
  reopens = 0;
  /** Offset of the last room message seen (chat): a reopen asks for what came after it. */
  lastOffset: string | undefined;
  #closedByUs = false;

  constructor(path: string) {
    super();
    this.path = path;
  }

  get isOpen(): boolean {
    return this.current !== undefined && this.current.ws.readyState === this.current.ws.OPEN;
  }

  send(data: string | Buffer): boolean {
    if (!this.isOpen) return false;
    this.current!.ws.send(data);
    return true;
  }

  close(code: number = CloseCode.NORMAL, reason = ''): void {
    this.#closedByUs = true;
    this.current?.ws.close(code, reason);
  }

  get closedByUs(): boolean {
    return this.#closedByUs;
  }
}

/** `{"offset":"<ms>-<seq>", ...}` room messages carry their position in the room's history. */
function offsetOf(text: string): string | undefined {
  if (!text.startsWith('{') || !text.includes('"offset"')) return undefined;
  try {
    const offset = (JSON.parse(text) as { offset?: unknown }).offset;
    return typeof offset === 'string' ? offset : undefined;
  } catch {
    return undefined;
  }
}

/** Message recovery: reopen with `?since=<last offset>` so the backend replays what was missed. */
function resumePath(path: string, offset: string | undefined): string {
  if (!offset) return path;
  const url = new URL(path, 'http://x');
  url.searchParams.set('since', offset);
  return url.pathname + url.search;
}

export class SessionKeeper {
  readonly #client: WsClient;
  readonly #options: Required<Omit<KeeperOptions, 'open'>> & Pick<KeeperOptions, 'open'>;
  readonly #sessions = new Set<KeptSession>();
  #reopened = 0;
  #failedAttempts = 0;
  #gaveUp = 0;
  #closed = false;

  constructor(client: WsClient, options: KeeperOptions = {}) {
    this.#client = client;
    this.#options = { initialBackoffMs: 100, maxBackoffMs: 5_000, maxAttempts: 20, ...options };
  }

  /** Open a session that reopens itself; resolves once the first open succeeded. */
  async keep(path: string): Promise<KeptSession> {
    const kept = new KeptSession(path);
    await this.#attach(kept, await this.#client.open(path, this.#options.open), false);
    this.#sessions.add(kept);
    return kept;
  }

  stats(): KeeperStats {
    let open = 0;
    for (const k of this.#sessions) if (k.isOpen) open++;
    return { kept: this.#sessions.size, open, reopened: this.#reopened, failedAttempts: this.#failedAttempts, gaveUp: this.#gaveUp };
  }

  close(): void {
    this.#closed = true;
    for (const k of this.#sessions) k.close(CloseCode.NORMAL, 'client closing');
  }

  async #attach(kept: KeptSession, session: WsSession, reopen: boolean): Promise<void> {
    kept.current = session;
    session.ws.on('message', (data: RawData, isBinary: boolean) => {
      if (!isBinary) {
        const offset = offsetOf(data.toString());
        if (offset) kept.lastOffset = offset;
      }
      kept.emit('message', data, isBinary);
    });
    session.ws.once('close', (code: number) => {
      kept.emit('down', code);
      if (this.#closed || kept.closedByUs || !reopensAfter(code)) return;
      void this.#reopen(kept, code);
    });
    kept.emit('open', session, reopen);
  }

  async #reopen(kept: KeptSession, code: number): Promise<void> {
    for (let attempt = 0; attempt < this.#options.maxAttempts; attempt++) {
      // Full jitter: thousands of sessions closed at once must not come back in one wave.
      const ceiling = Math.min(this.#options.maxBackoffMs, this.#options.initialBackoffMs * 2 ** attempt);
      await new Promise((r) => setTimeout(r, Math.random() * ceiling));
      if (this.#closed || kept.closedByUs) return;
      try {
        const session = await this.#client.open(resumePath(kept.path, kept.lastOffset), this.#options.open);
        kept.reopens++;
        this.#reopened++;
        log.debug({ path: kept.path, code, attempt, backend: session.backendId }, 'session reopened');
        await this.#attach(kept, session, true);
        return;
      } catch (err) {
        this.#failedAttempts++;
        log.debug({ path: kept.path, attempt, err: (err as Error).message }, 'reopen failed; backing off');
      }
    }
    this.#gaveUp++;
    kept.emit('gave-up', new Error(`gave up reopening ${kept.path} after ${this.#options.maxAttempts} attempts`));
  }
}
