import type { WsSession } from './types.js';

// Keeps sessions echoing numbered messages at a fixed interval and checks that every echo comes back
// once and in order. Tests and demos use it to prove "no message lost" across drains and restarts.

export interface SessionTally {
  session: WsSession;
  sent: number;
  echoed: number;
  /** Echoes that arrived out of order or were never sent. */
  outOfOrder: number;
  /** Sent but not echoed when the session closed. */
  lostAtClose: number;
  closeCode?: number;
}

export class SequencedEcho {
  readonly tallies: SessionTally[] = [];
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  add(session: WsSession): SessionTally {
    const tally: SessionTally = { session, sent: 0, echoed: 0, outOfOrder: 0, lostAtClose: 0 };
    session.ws.on('message', (data) => {
      const seq = Number(data.toString());
      if (seq === tally.echoed) tally.echoed++;
      else tally.outOfOrder++;
    });
    session.ws.once('close', (code) => {
      tally.closeCode = code;
      tally.lostAtClose = tally.sent - tally.echoed;
    });
    this.tallies.push(tally);
    return tally;
  }

  start(): void {
    this.#timer = setInterval(() => {
      for (const t of this.tallies) {
        if (t.closeCode !== undefined || t.session.ws.readyState !== t.session.ws.OPEN) continue;
        // One in flight at a time keeps the check simple and the load bounded.
        if (t.sent !== t.echoed) continue;
        t.session.ws.send(String(t.sent++));
      }
    }, this.#intervalMs);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Stop sending and wait until every open session has its echoes back (or `timeoutMs`). */
  async quiesce(timeoutMs = 5_000): Promise<void> {
    this.stop();
    const deadline = Date.now() + timeoutMs;
    while (this.tallies.some((t) => t.closeCode === undefined && t.sent !== t.echoed) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** `lost`: sent on a session that closed before echoing it. `inFlight`: sent on an open session, echo pending. */
  totals(): { sessions: number; sent: number; echoed: number; outOfOrder: number; lost: number; inFlight: number; open: number } {
    let sent = 0, echoed = 0, outOfOrder = 0, lost = 0, inFlight = 0, open = 0;
    for (const t of this.tallies) {
      sent += t.sent;
      echoed += t.echoed;
      outOfOrder += t.outOfOrder;
      if (t.closeCode === undefined) {
        open++;
        inFlight += t.sent - t.echoed;
      } else {
        lost += t.lostAtClose;
      }
    }
    return { sessions: this.tallies.length, sent, echoed, outOfOrder, lost, inFlight, open };
  }
}
