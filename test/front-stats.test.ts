import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { H1Client, MuxClient } from '../client/index.js';
import { envoyFrontCounts, parseEnvoyClusterHosts, parseEnvoyStats, readEnvoyFrontCounts } from '../gateway/envoy/stats.js';
import { haproxyEndpoints } from '../gateway/haproxy/front.js';
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

describe('endpoints as each front sees them (Front.endpoints)', () => {
  it('Envoy /clusters: hosts by EDS hostname, routable only when exactly healthy (text as Envoy 1.40 wrote it)', () => {
    const text = [
      'backends::default_priority::max_connections::30000',
      'backends::high_priority::max_requests::1024',
      'backends::added_via_api::true',
      'backends::127.0.0.1:24741::cx_active::3',
      'backends::127.0.0.1:24741::hostname::b1',
      'backends::127.0.0.1:24741::health_flags::/eds_status_draining',
      'backends::127.0.0.1:24741::weight::1',
      'backends::127.0.0.1:27368::hostname::b2',
      'backends::127.0.0.1:27368::health_flags::/failed_eds_health',
      'backends::127.0.0.1:27368::weight::1',
      'backends::127.0.0.1:31384::hostname::b3',
      'backends::127.0.0.1:31384::health_flags::healthy',
      'backends::127.0.0.1:31384::weight::5',
      'xds_cluster::127.0.0.1:22858::hostname::',
      'xds_cluster::127.0.0.1:22858::health_flags::healthy',
    ].join('\n');
    expect(parseEnvoyClusterHosts(text)).toEqual([
      { id: 'b1', routable: false, weight: 1, status: '/eds_status_draining' },
      { id: 'b2', routable: false, weight: 1, status: '/failed_eds_health' },
      { id: 'b3', routable: true, weight: 5, status: 'healthy' },
    ]);
  });

  it('HAProxy show stat: servers of the backend, routable while UP (also UP 1/2) with a weight', () => {
    const rows = [
      { pxname: 'backends', svname: 'b1', status: 'DRAIN', weight: '0' },
      { pxname: 'backends', svname: 'b2', status: 'UP 1/2', weight: '1' },
      { pxname: 'backends', svname: 'b3', status: 'DOWN 1/2', weight: '1' },
      { pxname: 'backends', svname: 'b4', status: 'MAINT', weight: '3' },
      { pxname: 'backends', svname: 'BACKEND', status: 'UP', weight: '5' },
      { pxname: 'front', svname: 'FRONTEND', status: 'OPEN', weight: '' },
    ];
    expect(haproxyEndpoints(rows).map((e) => `${e.id}:${e.routable}:${e.weight}`)).toEqual(['b1:false:0', 'b2:true:1', 'b3:false:1', 'b4:false:3']);
  });
});
