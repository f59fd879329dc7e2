// Many deadlines of ONE duration on one timer, for per-request timeouts that almost never fire
// (a handshake bound per WebSocket opened: thousands a second in a storm). A Node timer per request
// costs a Timeout with its async resource, a list insert and an unlink when it is cleared; here a
// deadline is two array slots. Deadlines of one duration expire in the order they were set, so the
// queue is a FIFO: add and cancel are O(1) (a cancelled slot is only emptied), and the one timer
// runs for the oldest deadline still live. With none live the timer is cleared, so a queue never
// keeps the process alive on its own (a Node timer per request did so only while it was pending).

export interface Expirable {
  /** The deadline passed before cancel(): called once, from the queue's timer. */
  onDeadline(): void;
}

/** What add() returns: cancel(ticket) before the deadline and onDeadline is never called. */
export type DeadlineTicket = number;

/** Compact the arrays once this many expired slots lead them (and they are at least half). */
const COMPACT_AFTER = 1024;

export class DeadlineQueue {
  readonly #ms: number;
  /** Monotonic deadline (performance.now() ms) of each slot; slot i has ticket #base + i. */
  #at: number[] = [];
  #items: Array<Expirable | undefined> = [];
  #head = 0;
  #base = 0;
  #live = 0;
  #timer: NodeJS.Timeout | undefined;
  #sweeping = false;

  constructor(ms: number) {
    this.#ms = ms;
  }

  get durationMs(): number {
    return this.#ms;
  }

  /** Deadlines set and neither passed nor cancelled. */
  get pending(): number {
    return this.#live;
  }

  add(item: Expirable): DeadlineTicket {
    const ticket = this.#base + this.#items.length;
    this.#at.push(performance.now() + this.#ms);
    this.#items.push(item);
    if (this.#live++ === 0 && !this.#sweeping) this.#arm(this.#ms);
    return ticket;
  }

  cancel(ticket: DeadlineTicket): void {
    const i = ticket - this.#base;
    if (i < this.#head || i >= this.#items.length || this.#items[i] === undefined) return;
    this.#items[i] = undefined;
    if (--this.#live === 0 && !this.#sweeping) this.#reset();
  }

  #arm(delayMs: number): void {
    this.#timer = setTimeout(this.#sweep, Math.max(1, Math.ceil(delayMs)));
  }

  /** Nothing live: drop the timer and every slot (they are all expired or cancelled). */
  #reset(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#base += this.#items.length;
    this.#at = [];
    this.#items = [];
    this.#head = 0;
  }

  #sweep = (): void => {
    this.#timer = undefined;
    this.#sweeping = true;
    try {
      const now = performance.now();
      // An onDeadline() may add or cancel: the arrays are read afresh on every step.
      while (this.#head < this.#items.length) {
        const item = this.#items[this.#head];
        if (item !== undefined && this.#at[this.#head]! > now) break;
        this.#items[this.#head++] = undefined;
        if (item !== undefined) {
          this.#live--;
          item.onDeadline();
        }
      }
    } finally {
      this.#sweeping = false;
      if (this.#live === 0) this.#reset();
      else {
        if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#items.length) {
          this.#at.splice(0, this.#head);
          this.#items.splice(0, this.#head);
          this.#base += this.#head;
          this.#head = 0;
        }
        this.#arm(this.#at[this.#head]! - performance.now());
      }
    }
  };
}
