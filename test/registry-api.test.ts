import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type Backend } from '../backend/server.js';
import { startAdminApi, type AdminServer } from '../gateway/admin/api.js';
import { DrainController } from '../gateway/core/drain.js';
import { HealthChecker } from '../gateway/core/health.js';
import { EndpointRegistry, type RegistryEvent } from '../gateway/core/registry.js';
import { backendSchema, defaults } from '../lib/config.js';
import { waitUntil } from './helpers/stack.js';

// The registry and the admin API over it, with real backends for health and drain; no proxy here
// (test/endpoints.test.ts drives each real front from the same registry through this API;
// test/dynamic-haproxy.test.ts looks inside HAProxy while it does).

let backends: Backend[];
let registry: EndpointRegistry;
let health: HealthChecker;
let drain: DrainController;
let admin: AdminServer;
let stateFile: string;
const TOKEN = 'test-admin-token-0123456789';

beforeAll(async () => {
  backends = await Promise.all(['b1', 'b2'].map((id) => startBackend(defaults(backendSchema, { id, port: 0 }))));
  stateFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'gw-reg-')), 'registry.json');
  registry = new EndpointRegistry({ stateFile, seed: backends.map((b) => ({ id: b.id, host: '127.0.0.1', port: b.port })) });
  health = new HealthChecker(registry, { intervalMs: 100, timeoutMs: 500, fall: 2, rise: 1 });
  health.start();
  drain = new DrainController(registry, health, { deadlineMs: 60_000, pollMs: 50, closeGraceMs: 2_000 });
  admin = await startAdminApi({ token: TOKEN, registry, drain, health }, '127.0.0.1', 0);
});
afterAll(async () => {
  health?.stop();
  drain?.stop();
  await admin?.close();
  await Promise.all(backends.map((b) => b.close()));
});

async function api(method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${admin.url}${p}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

describe('admin API', () => {
  it('lists the seeded endpoints', async () => {
    const { status, json } = await api('GET', '/endpoints');
    expect(status).toBe(200);
    expect(json.endpoints.map((e: { id: string }) => e.id)).toEqual(['b1', 'b2']);
    expect(json.endpoints[0]).toMatchObject({ state: 'active', weight: 1, address: `127.0.0.1:${backends[0]!.port}` });
  });

  it('adds an endpoint, with or without an id', async () => {
    expect(await api('POST', '/endpoints', { id: 'b9', address: '127.0.0.1:1', weight: 5 })).toMatchObject({
      status: 201,
      json: { id: 'b9', host: '127.0.0.1', port: 1, weight: 5, state: 'active' },
    });
    const auto = await api('POST', '/endpoints', { address: '127.0.0.1:2' });
    expect(auto.status).toBe(201);
    expect(auto.json.id).toMatch(/^b\d+$/);
    await api('DELETE', `/endpoints/${auto.json.id}`);
  });

  it('rejects bad input with 400 naming the field', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ address: 'nohost' }, /"address"/],
      [{ address: '127.0.0.1:70000' }, /"address".*port/],
      [{ address: '127.0.0.1:3', weight: 0 }, /"weight"/],
      [{ address: '127.0.0.1:3', weight: '2' }, /"weight"/],
      [{ address: 42 }, /"address"/],
      [{ address: '127.0.0.1:3', colour: 'red' }, /colour/],
      [{ id: 'bad id!', address: '127.0.0.1:3' }, /"id"/],
      ['{not json', /JSON/],
    ];
    for (const [body, message] of cases) {
      const { status, json } = await api('POST', '/endpoints', body);
      expect(status, JSON.stringify(body)).toBe(400);
      expect(json.error.message).toMatch(message);
    }
    expect((await api('PATCH', '/endpoints/b1', { weight: 300 })).json.error.message).toMatch(/"weight"/);
  });

  it('refuses duplicates with 409 and unknown ids with 404', async () => {
    expect((await api('POST', '/endpoints', { id: 'b1', address: '127.0.0.1:4' })).status).toBe(409);
    expect((await api('POST', '/endpoints', { address: `127.0.0.1:${backends[0]!.port}` })).status).toBe(409);
    expect((await api('PATCH', '/endpoints/nope', { weight: 2 })).status).toBe(404);
    expect((await api('POST', '/endpoints/nope/drain')).status).toBe(404);
    expect((await api('DELETE', '/endpoints/nope')).status).toBe(404);
  });

  it("answers HTTP's own errors in the same JSON shape: bad target 400, unknown path 404, other method 405, too large 413", async () => {
    // A target the WHATWG parser refuses (fetch cannot send it): raw HTTP/1.1.
    const raw = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${admin.url}/`, { path: '//%zz/endpoints', headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject).end();
    });
    expect(raw.status).toBe(400);
    expect(JSON.parse(raw.body).error.code).toBe('GW_ERR_BAD_REQUEST_TARGET');
    expect(await api('GET', '/no-such-route')).toMatchObject({ status: 404, json: { error: { code: 'GW_ERR_NOT_FOUND' } } });
    expect((await fetch(`${admin.url}/no-such-route`)).status).toBe(401);
    const put = await fetch(`${admin.url}/endpoints`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toMatch(/GET.*POST|POST.*GET/);
    expect(((await put.json()) as { error: { code: string } }).error.code).toBe('GW_ERR_METHOD');
    const big = await api('POST', '/endpoints', { address: '127.0.0.1:3', pad: 'x'.repeat(70 * 1024) });
    expect(big.status).toBe(413);
    expect(big.json.error.message).toMatch(/larger than 65536 bytes/);
  });

  it('changes a weight', async () => {
    expect(await api('PATCH', '/endpoints/b2', { weight: 7 })).toMatchObject({ status: 200, json: { weight: 7 } });
    expect(registry.get('b2').weight).toBe(7);
  });

  it('streams registry changes as Server-Sent Events', async () => {
    const res = await fetch(`${admin.url}/events`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const reader = res.body!.getReader();
    let text = '';
    const read = async (until: RegExp) => {
      while (!until.test(text)) text += new TextDecoder().decode((await reader.read()).value);
    };
    await read(/event: snapshot/);
    await api('PATCH', '/endpoints/b2', { weight: 3 });
    await read(/id: \d+\nevent: endpoint\ndata: .*"weight":3/);
    await reader.cancel();
  });

  it('replays the last events to a subscriber that connects later (a dashboard opened after the fact)', async () => {
    await api('PATCH', '/endpoints/b2', { weight: 5 });
    const res = await fetch(`${admin.url}/events`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const reader = res.body!.getReader();
    let text = '';
    while (!/event: history\ndata: .*\n\n/.test(text)) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    const history = JSON.parse(/event: history\ndata: (.*)\n\n/.exec(text)![1]!) as Array<{ id: number; type: string; at: number; data: RegistryEvent }>;
    const last = history.at(-1)!;
    expect(last.type).toBe('endpoint');
    expect(last.data.endpoint).toMatchObject({ id: 'b2', weight: 5 });
    expect(history.map((h) => h.id)).toEqual([...history.map((h) => h.id)].sort((a, b) => a - b));
  });

  it('marks an unreachable endpoint down and brings it back when it answers', async () => {
    const b = await startBackend(defaults(backendSchema, { id: 'hb', port: 0 }));
    registry.add({ id: 'hb', host: '127.0.0.1', port: b.port });
    await waitUntil(() => health.status('hb')?.ok === true);
    const port = b.port;
    await b.close();
    await waitUntil(() => registry.get('hb').state === 'down');
    const again = await startBackend(defaults(backendSchema, { id: 'hb', port }));
    await waitUntil(() => registry.get('hb').state === 'active');
    await again.close();
    registry.remove('hb');
  });

  it('DELETE drains, then removes once the sessions are gone', async () => {
    const events: RegistryEvent[] = [];
    registry.on('change', (e: RegistryEvent) => events.push(e));
    registry.add({ id: 'gone', host: '127.0.0.1', port: 5 }); // nothing listens: no sessions to wait for
    expect(await api('DELETE', '/endpoints/gone')).toMatchObject({ status: 202, json: { state: 'draining', removeAfterDrain: true } });
    await waitUntil(() => !registry.has('gone'));
    expect(events.filter((e) => e.endpoint.id === 'gone').map((e) => (e.type === 'updated' ? e.endpoint.state : e.type))).toEqual([
      'added',
      'draining',
      'removed',
    ]);
  });

  it('persists across a restart (atomic state file)', () => {
    const saved = JSON.parse(readFileSync(stateFile, 'utf8'));
    expect(saved.version).toBe(registry.version);
    const reborn = new EndpointRegistry({ stateFile, seed: [] });
    expect(reborn.list()).toEqual(registry.list());
    expect(reborn.version).toBe(registry.version);
  });
});

describe('admin API authentication', () => {
  it('refuses requests without the token (401) and with a wrong one', async () => {
    expect((await fetch(`${admin.url}/endpoints`)).status).toBe(401);
    expect((await fetch(`${admin.url}/endpoints`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
    expect((await fetch(`${admin.url}/healthz`)).status).toBe(200);
  });
  it('trades ?token= for an HttpOnly cookie that then works', async () => {
    const res = await fetch(`${admin.url}/endpoints?token=${TOKEN}`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/gw_admin=.*HttpOnly/);
    expect((await fetch(`${admin.url}/endpoints`, { headers: { cookie: cookie.split(';')[0]! } })).status).toBe(200);
  });
});

describe('npm run endpoints (CLI over the admin API)', () => {
  const cli = (...args: string[]) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', 'scripts/endpoints.ts', ...args, '--admin', admin.url], { env: { ...process.env, ADMIN_TOKEN: TOKEN } }, (error, out, err) =>
        resolve({ code: error ? (error.code as number) : 0, out, err }),
      );
    });

  it('lists endpoints as a table', async () => {
    const { code, out } = await cli('list');
    expect(code).toBe(0);
    expect(out).toMatch(/ID\s+ADDRESS\s+STATE\s+WEIGHT\s+HEALTH\s+BUS\s+SESSIONS/);
    expect(out).toMatch(/b1\s+127\.0\.0\.1:\d+\s+active/);
  });

  it('adds, weights and removes, and reports API errors with exit 1', async () => {
    expect((await cli('add', '127.0.0.1:6', '--id', 'cli1', '--weight', '4')).out).toMatch(/added cli1/);
    expect((await cli('weight', 'cli1', '9')).out).toMatch(/cli1 weight 9/);
    expect((await cli('remove', 'cli1')).out).toMatch(/removing cli1/);
    const bad = await cli('add', 'not-an-address');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/400.*"address"/);
  });
});

