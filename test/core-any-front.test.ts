import { afterAll, beforeAll, expect, it } from 'vitest';
import { H1Client, MuxClient } from '../client/index.js';
import type { Front } from '../gateway/core/stack.js';
import { describeEachFront } from './helpers/front-matrix.js';
import { peerSkipReason, runPeer } from './helpers/python-peer.js';
import { countBy, echo, startTestStack } from './helpers/stack.js';

// The core data path, the same tests for every front, each a whole stack (Envoy fed over xDS,
// HAProxy over its runtime API) on private ports.

describeEachFront('core data path', (frontName) => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  let front: Front;
  beforeAll(async () => {
    stack = await startTestStack({ front: frontName, roomBus: 'none' });
    front = stack.front;
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  it('carries 1,000 WebSocket streams on one client TCP connection, balanced per stream', async () => {
    const client = new MuxClient(front.url);
    try {
      const sessions = await Promise.all(Array.from({ length: 1000 }, () => client.open('/echo')));
      const replies = await Promise.all(sessions.map((s, i) => echo(s.ws, `hello ${i}`)));
      expect(replies).toEqual(sessions.map((_, i) => `hello ${i}`));
      // One socket on our side, and one client connection with 1,000 sessions on the proxy's side.
      expect(client.stats()).toMatchObject({ connections: 1, connectionsOpened: 1, openStreams: 1000 });
      expect(await front.counts()).toMatchObject({ connections: 1, sessions: 1000 });
      // Balancing picks a backend per stream, not per connection.
      const spread = countBy(sessions, (s) => s.backendId ?? 'none');
      expect(Object.keys(spread).sort()).toEqual(['b1', 'b2', 'b3']);
      for (const n of Object.values(spread)) expect(n).toBeGreaterThanOrEqual(150);
    } finally {
      await client.close();
    }
  });

  it('serves HTTP/1.1 Upgrade on the same port', async () => {
    const client = new H1Client(front.url);
    try {
      const sessions = await Promise.all(Array.from({ length: 60 }, () => client.open('/echo')));
      expect(await Promise.all(sessions.map((s, i) => echo(s.ws, `h1 ${i}`)))).toEqual(sessions.map((_, i) => `h1 ${i}`));
      expect(client.stats().connectionsOpened).toBe(60);
      expect(Object.keys(countBy(sessions, (s) => s.backendId ?? 'none')).sort()).toEqual(['b1', 'b2', 'b3']);
    } finally {
      await client.close();
    }
  });

  it('serves both protocols at once', async () => {
    const mux = new MuxClient(front.url);
    const h1 = new H1Client(front.url);
    try {
      const [h2s, h1s] = await Promise.all([
        Promise.all(Array.from({ length: 200 }, () => mux.open('/echo'))),
        Promise.all(Array.from({ length: 100 }, () => h1.open('/echo'))),
      ]);
      const all = [...h2s, ...h1s];
      expect(await Promise.all(all.map((s, i) => echo(s.ws, `both ${i}`)))).toEqual(all.map((_, i) => `both ${i}`));
      expect(await front.counts()).toMatchObject({ connections: 101, sessions: 300 });
      // The front tells each backend which transport the CLIENT used (HAProxy: 2.0/1.1, Envoy:
      // HTTP/2 / HTTP/1.1 in x-front-http-version), whatever the upstream hop speaks.
      const transports = await Promise.all(stack.backends.map(async (b) => ((await (await fetch(`${b.url}/healthz`)).json()) as { transports: { h1: number; h2: number } }).transports));
      expect(transports.reduce((sum, t) => ({ h1: sum.h1 + t.h1, h2: sum.h2 + t.h2 }), { h1: 0, h2: 0 })).toEqual({ h1: 100, h2: 200 });
    } finally {
      await Promise.all([mux.close(), h1.close()]);
    }
  });

  it('1,000 refused handshakes on one connection (the client resets each non-200 stream) do not cost that connection its other sessions', async () => {
    // Fronts guard against rapid reset (CVE-2023-44487) by closing connections whose streams the
    // client resets early; a client that abandons refused handshakes in normal use must not trip it.
    const client = new MuxClient(front.url);
    try {
      const kept = await Promise.all(Array.from({ length: 10 }, () => client.open('/echo')));
      const refused = await Promise.all(Array.from({ length: 1000 }, () => client.open('/no-such-route').then(() => 0, (e: { status?: number }) => e.status)));
      expect(countBy(refused, (s) => String(s))).toEqual({ '404': 1000 });
      expect(await Promise.all(kept.map((s, i) => echo(s.ws, `kept ${i}`)))).toEqual(kept.map((_, i) => `kept ${i}`));
      const fresh = await client.open('/echo');
      expect(await echo(fresh.ws, 'fresh')).toBe('fresh');
      expect(client.stats().connectionsOpened).toBe(1);
    } finally {
      await client.close();
    }
  });

  it.skipIf(peerSkipReason !== undefined)('python3-h2 + wsproto (a client we did not write): 300 RFC 8441 streams on one connection', async () => {
    const url = new URL(front.url);
    const { exitCode, stderr, report } = await runPeer(['--host', url.hostname, '--port', url.port, '--path', '/echo', '--streams', '300', '--messages', '2', '--protocol', 'chat.v1', '--timeout', '30']);
    expect(report.errors).toEqual([]);
    expect(exitCode, stderr).toBe(0);
    expect(report).toMatchObject({ streams_opened: 300, echoes_ok: 600, protocol: 'chat.v1', close_codes: { '1000': 300 }, tcp_connections: 1 });
    expect(Object.keys(report.backends).sort()).toEqual(['b1', 'b2', 'b3']);
  });
});
