import { EventEmitter } from 'node:events';
import type { WebSocket } from 'ws';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SessionKeeper } from '../client/session-keeper.js';
import type { ClientStats, WsClient, WsSession } from '../client/types.js';
import { CLOSE_CODES } from '../lib/errors.js';

// SessionKeeper's close-code policy against a test double of the client: each session is closed
// "by the server" with one code, then every pending timer (the backoff) is run, and the opens are
// counted. Fake timers make "it did not reopen" a fact, not a wait.

class FakeWs extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  /** What the server does: the close event ws emits on the client. */
  serverCloses(code: number): void {
    this.readyState = 3;
    this.emit('close', code, Buffer.alloc(0));
  }
  close(code?: number): void {
    if (this.readyState !== 1) return;
    this.serverCloses(code ?? 1005);
  }
  send(): void {}
}

class FakeClient implements WsClient {
  readonly transport = 'h2';
  readonly opened: Array<{ path: string; ws: FakeWs }> = [];
  async open(path: string): Promise<WsSession> {
    const ws = new FakeWs();
    this.opened.push({ path, ws });
    return { ws: ws as unknown as WebSocket, transport: 'h2', backendId: 'b1', protocol: '', headers: {}, localPort: undefined };
  }
  stats(): ClientStats {
    return { connections: 1, openStreams: 0, connectionsOpened: 1 };
  }
  async close(): Promise<void> {}
}

/** Keep one session, close it from the server side with `code`, let the keeper do all it will. */
async function opensAfter(code: number): Promise<{ opens: number; reopened: number; downCodes: number[] }> {
  const client = new FakeClient();
  const keeper = new SessionKeeper(client, { initialBackoffMs: 10, maxBackoffMs: 10 });
  const kept = await keeper.keep('/echo');
  const downCodes: number[] = [];
  kept.on('down', (c: number) => downCodes.push(c));
  client.opened[0]!.ws.serverCloses(code);
  await vi.runAllTimersAsync();
  const result = { opens: client.opened.length, reopened: keeper.stats().reopened, downCodes: [...downCodes] };
  keeper.close();
  return result;
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('SessionKeeper reopens by the close-code table', () => {
  it.each(CLOSE_CODES.map((r) => [r.code, r.name, r.reopen] as const))('%i %s → reopen %s', async (code, _name, reopen) => {
    const r = await opensAfter(code);
    expect(r.downCodes).toEqual([code]);
    expect(r).toMatchObject({ opens: reopen ? 2 : 1, reopened: reopen ? 1 : 0 });
  });

  it('the policy as it was before the table: reopen after 1001, 1005, 1006, 1011, 1012, 1013 only', async () => {
    const reopened: number[] = [];
    for (const code of [1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1012, 1013, 1015, 4000, 4401, 4999]) {
      if ((await opensAfter(code)).reopened === 1) reopened.push(code);
    }
    expect(reopened).toEqual([1001, 1005, 1006, 1011, 1012, 1013]);
  });

  it('a reopen asks for what came after the last room offset seen', async () => {
    const client = new FakeClient();
    const keeper = new SessionKeeper(client, { initialBackoffMs: 10, maxBackoffMs: 10 });
    await keeper.keep('/chat/r');
    client.opened[0]!.ws.emit('message', Buffer.from('{"type":"message","offset":"17-3"}'), false);
    client.opened[0]!.ws.serverCloses(1001);
    await vi.runAllTimersAsync();
    expect(client.opened.map((o) => o.path)).toEqual(['/chat/r', '/chat/r?since=17-3']);
    keeper.close();
  });

  it('a session the caller closed is not reopened, whatever the code', async () => {
    const client = new FakeClient();
    const keeper = new SessionKeeper(client, { initialBackoffMs: 10, maxBackoffMs: 10 });
    const kept = await keeper.keep('/echo');
    kept.close(1001, 'leaving');
    await vi.runAllTimersAsync();
    expect(client.opened).toHaveLength(1);
    keeper.close();
  });
});
