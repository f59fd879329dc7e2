import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { H1Client, MuxClient } from '../client/index.js';
import { envoyFrontCounts, parseEnvoyStats, readEnvoyFrontCounts } from '../gateway/envoy/stats.js';
import { startTestStack } from './helpers/stack.js';

// The two fronts' stats in the same terms: client TCP connections vs WebSocket sessions.

describe('HAProxy stats reader (a real HAProxy)', () => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  it('counts 1 HTTP/2 connection carrying 50 sessions and 5 HTTP/1.1 connections', async () => {
    const mux = new MuxClient(stack.frontUrl);
    const h1 = new H1Client(stack.frontUrl);
    try {
      await Promise.all([...Array.from({ length: 50 }, () => mux.open('/echo')), ...Array.from({ length: 5 }, () => h1.open('/echo'))]);
      expect(await stack.haproxy!.frontCounts()).toMatchObject({ connections: 6, sessions: 55 });
    } finally {
      await Promise.all([mux.close(), h1.close()]);
    }
  });
});

describe('Envoy stats reader', () => {
  // Captured from Envoy 1.40.0 (see the file's header for how): 1 HTTP/2 connection with 1,000 streams + 20 HTTP/1.1 Upgrades.
  const fixture = readFileSync(new URL('./fixtures/envoy-1.40-stats.txt', import.meta.url), 'utf8');

  it('reads a real /stats capture: connections vs sessions, and upgrades counted over both transports', () => {
    const stats = parseEnvoyStats(fixture);
    expect(stats.get('server.hot_restart_epoch')).toBe(0);
    expect(envoyFrontCounts(stats)).toEqual({
      engine: 'envoy',
      connections: 21,
      http2Connections: 1,
      http1Connections: 20,
      sessions: 1020,
      upgrades: 1020,
      // 22: the stack's own "does the listener accept yet" probe at start-up counts too.
      connectionsTotal: 22,
      sessionsTotal: 1020,
      upstreamConnections: 1020,
    });
  });

  it('asks the admin endpoint with a filter and parses the answer', async () => {
    let asked = '';
    const admin = http.createServer((req, res) => {
      asked = req.url ?? '';
      res.end(fixture);
    });
    await new Promise<void>((r) => admin.listen(0, '127.0.0.1', r));
    try {
      const counts = await readEnvoyFrontCounts(`http://127.0.0.1:${(admin.address() as AddressInfo).port}`);
      expect(new URL(asked, 'http://x').searchParams.get('filter')).toMatch(/http\\.front\\.downstream_/);
      expect(counts).toMatchObject({ connections: 21, sessions: 1020 });
    } finally {
      admin.close();
    }
  });
});
