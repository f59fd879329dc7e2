import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { H1Client, MuxClient } from '../client/index.js';
import { countBy, echo, startTestStack, waitUntil } from './helpers/stack.js';

// The core data path through a real HAProxy: many RFC 8441 streams on one client TCP connection,
// and classic HTTP/1.1 Upgrade, on ONE plain front port.

describe('through HAProxy (one plain port, both protocols)', () => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  // The core data path (1,000 streams on one connection, H1 on the same port, the Python peer) is in
  // core-any-front.test.ts, which runs it against every front; these are HAProxy specifics.
  it('tells each backend what the client spoke, although it hands every session over as an Upgrade', async () => {
    const mux = new MuxClient(stack.frontUrl);
    const h1 = new H1Client(stack.frontUrl);
    try {
      const [h2s, h1s] = await Promise.all([
        Promise.all(Array.from({ length: 200 }, () => mux.open('/echo'))),
        Promise.all(Array.from({ length: 100 }, () => h1.open('/echo'))),
      ]);
      expect(h2s.length + h1s.length).toBe(300);
      expect(await (await stack.adminFetch(`/front`)).json()).toMatchObject({ engine: 'haproxy', connections: 101, sessions: 300 });
      const split = await Promise.all(stack.backends.map(async (b) => (await (await fetch(`${b.url}/healthz`)).json()).transports));
      expect(split.reduce((n, t) => n + t.h2, 0)).toBe(200);
      expect(split.reduce((n, t) => n + t.h1, 0)).toBe(100);
    } finally {
      await Promise.all([mux.close(), h1.close()]);
    }
  });

  it('passes the subprotocol choice and the handshake status through', async () => {
    const mux = new MuxClient(stack.frontUrl);
    try {
      const s = await mux.open('/echo', { protocols: ['chat.v1', 'chat.v2'] });
      expect(s.protocol).toBe('chat.v2');
      expect(s.ws.protocol).toBe('chat.v2');
      await expect(mux.open('/no-such-route')).rejects.toMatchObject({ code: 'GW_ERR_HANDSHAKE_REJECTED', status: 404 });
    } finally {
      await mux.close();
    }
  });
});

describe('MuxClient against HAProxy limits and reloads', () => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    // A small SETTINGS_MAX_CONCURRENT_STREAMS so the client has to open more connections.
    stack = await startTestStack({ h2MaxConcurrentStreams: 50 });
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  it('opens another connection only when the peer stream limit is reached', async () => {
    const client = new MuxClient(stack.frontUrl);
    try {
      const first = await Promise.all(Array.from({ length: 50 }, () => client.open('/echo')));
      expect(client.stats().connections).toBe(1);
      const more = await Promise.all(Array.from({ length: 70 }, () => client.open('/echo')));
      expect(client.connections().map((c) => c.limit)).toEqual([50, 50, 50]);
      expect(client.stats()).toMatchObject({ connections: 3, openStreams: 120 });
      const all = [...first, ...more];
      expect(await Promise.all(all.map((s, i) => echo(s.ws, `n${i}`)))).toEqual(all.map((_, i) => `n${i}`));
    } finally {
      await client.close();
    }
  });

  it('keeps old streams running across a GOAWAY from a HAProxy reload and opens new ones elsewhere', async () => {
    const client = new MuxClient(stack.frontUrl);
    const goaways: number[] = [];
    client.on('goaway', (_id: number, code: number) => goaways.push(code));
    try {
      const old = await Promise.all(Array.from({ length: 30 }, () => client.open('/echo')));
      const oldWorkers = await stack.haproxy!.workers();
      await stack.haproxy!.reload();
      await waitUntil(() => goaways.length > 0);
      expect(goaways).toEqual([0]); // NO_ERROR: graceful
      // The streams that were open before the reload still echo through the old worker.
      expect(await Promise.all(old.map((s, i) => echo(s.ws, `old ${i}`)))).toEqual(old.map((_, i) => `old ${i}`));
      // New sessions succeed, on a new connection to the new worker.
      const fresh = await Promise.all(Array.from({ length: 30 }, () => client.open('/echo')));
      expect(await Promise.all(fresh.map((s, i) => echo(s.ws, `new ${i}`)))).toEqual(fresh.map((_, i) => `new ${i}`));
      expect(client.stats().connectionsOpened).toBe(2);
      const workers = await stack.haproxy!.workers();
      expect(workers.length).toBeGreaterThan(oldWorkers.length - 1);
      expect(workers.some((w) => !oldWorkers.some((o) => o.pid === w.pid))).toBe(true);
    } finally {
      await client.close();
    }
  });
});


describe('HTTP/2 from HAProxy to the backends (proto h2)', () => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    stack = await startTestStack({ upstreamProtocol: 'h2' });
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  it('carries extended CONNECT end to end and shares upstream connections', async () => {
    const client = new MuxClient(stack.frontUrl);
    try {
      const sessions = await Promise.all(Array.from({ length: 300 }, () => client.open('/echo')));
      expect(await Promise.all(sessions.map((s, i) => echo(s.ws, `up ${i}`)))).toEqual(sessions.map((_, i) => `up ${i}`));
      expect(Object.keys(countBy(sessions, (s) => s.backendId ?? 'none')).sort()).toEqual(['b1', 'b2', 'b3']);
      // Each backend reports its sessions as h2: the front did not downgrade them to HTTP/1.1.
      const metrics = await (await fetch(`${stack.backends[0]!.url}/metrics`)).text();
      expect(metrics).toMatch(/ws_sessions\{[^}]*transport="h2"[^}]*\} (\d+)/);
      expect(Number(/ws_sessions\{[^}]*transport="h2"[^}]*\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(50);
    } finally {
      await client.close();
    }
  });
});
