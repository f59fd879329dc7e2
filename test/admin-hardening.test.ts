import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEndpointPolicy } from '../gateway/core/endpoint-policy.js';
import { freePort } from '../lib/ports.js';
import { startTestStack } from './helpers/stack.js';

// The admin API against hostile callers: writes from foreign pages, bodies that are not JSON,
// endpoints that point back at the gateway or off the allowed ranges, and a body that never comes.
// Front-independent (the admin API is the control plane's), so it runs once.

describe('admin API hardening', () => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    stack = await startTestStack({ roomBus: 'none', frontTlsPort: 0, adminToken: 'test-token-0123456789' }, 1);
  });
  afterAll(async () => {
    await stack?.dispose();
  });
  const post = (path: string, body: string, headers: Record<string, string>) =>
    stack.adminFetch(path, { method: 'POST', body, headers });
  const add = async (address: string, headers: Record<string, string> = { 'content-type': 'application/json' }) => {
    const res = await post('/endpoints', JSON.stringify({ address }), headers);
    return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
  };

  it('refuses a write from a foreign Origin (or Origin: null) even with the token; nothing changes', async () => {
    const before = stack.registry.version;
    for (const origin of ['http://evil.example', 'null', `http://127.0.0.1:${stack.config.frontPort}`]) {
      const r = await add(`127.0.0.1:${await freePort()}`, { 'content-type': 'application/json', origin });
      expect(r.status, origin).toBe(403);
      expect(r.body.error?.code).toBe('GW_ERR_ORIGIN');
    }
    const hot = await stack.adminFetch('/hot-restart', { method: 'POST', headers: { origin: 'http://evil.example' } });
    expect(hot.status).toBe(403);
    expect(stack.registry.version).toBe(before);
  });

  it('refuses text/plain and form bodies (no CORS preflight for those), accepts JSON from its own origin or from no origin', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
      const res = await post('/endpoints', JSON.stringify({ address: `127.0.0.1:${await freePort()}` }), { 'content-type': type });
      expect(res.status, type).toBe(415);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('GW_ERR_CONTENT_TYPE');
    }
    const own = await add(`127.0.0.1:${await freePort()}`, { 'content-type': 'application/json', origin: stack.adminUrl });
    expect(own.status).toBe(201);
    expect((await add(`127.0.0.1:${await freePort()}`)).status).toBe(201);
  });

  it("refuses the gateway's own ports, addresses off the allowed ranges, and names that do not resolve", async () => {
    const c = stack.config;
    for (const [address, what] of [
      [`127.0.0.1:${c.adminPort}`, 'admin API'],
      [`127.0.0.1:${c.xdsPort}`, 'xDS server'],
      [`127.0.0.1:${c.frontPort}`, 'front'],
      [`localhost:${c.haproxyStatsPort}`, 'HAProxy stats'],
    ] as const) {
      const r = await add(address);
      expect(r.status, address).toBe(403);
      expect(r.body.error?.message).toContain(what);
    }
    for (const address of ['10.1.2.3:9101', '169.254.169.254:80', '192.168.1.10:9101']) {
      const r = await add(address);
      expect(r.status, address).toBe(403);
      expect(r.body.error?.code).toBe('GW_ERR_ENDPOINT_REFUSED');
    }
    const linkLocal6 = await add('[fe80::1]:9101');
    expect(linkLocal6.status, JSON.stringify(linkLocal6.body)).toBeGreaterThanOrEqual(400);
    const unresolvable = await add('no-such-host.invalid:9101');
    expect(unresolvable.status).toBe(400);
    expect(unresolvable.body.error?.code).toBe('GW_ERR_ENDPOINT_REFUSED');
  });

  it('a Content-Length larger than what is sent does not hold the connection: 408, then closed', async () => {
    const url = new URL(stack.adminUrl);
    const socket = net.connect(Number(url.port), url.hostname);
    let answer = '';
    socket.on('data', (d) => (answer += d));
    socket.write(`POST /endpoints HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${stack.config.adminToken ?? ''}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"addr`);
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 30_000);
      socket.once('close', () => (clearTimeout(timer), resolve(true)));
    });
    expect(closed).toBe(true);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  }, 40_000);
});

describe('endpoint policy', () => {
  it('checks every address a name resolves to, and "0.0.0.0/0,::/0" allows any', async () => {
    const loopbackOnly = createEndpointPolicy({ cidrs: ['127.0.0.0/8'], reservedPorts: [], resolve: async () => ['127.0.0.1', '10.0.0.5'] });
    await expect(loopbackOnly('mixed.example', 9101)).rejects.toMatchObject({ status: 403, message: expect.stringContaining('10.0.0.5') });
    const any = createEndpointPolicy({ cidrs: ['0.0.0.0/0', '::/0'], reservedPorts: [{ port: 9000, what: 'admin API' }], resolve: async () => ['10.0.0.5'] });
    await expect(any('backend.example', 9101)).resolves.toBeUndefined();
    await expect(any('127.0.0.1', 9000)).rejects.toMatchObject({ status: 403 });
  });
});
