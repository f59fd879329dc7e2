import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MuxClient } from '../client/index.js';
import { startBackendProcess, type BackendProcess } from '../gateway/core/backend-process.js';
import { freePort } from '../lib/ports.js';
import { logger } from '../lib/log.js';
import { countBy, startTestStack, waitUntil } from './helpers/stack.js';

// HAProxy's own side of endpoint changes: what its runtime API holds, and what a reload or a stop
// and start keeps. What clients see of the same changes (new streams land, drain, remove, weight)
// runs against every front in endpoints.test.ts.

describe('dynamic endpoints inside HAProxy (runtime API, reload)', () => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  let b4: BackendProcess | undefined;
  beforeAll(async () => {
    stack = await startTestStack({ front: 'haproxy', healthIntervalMs: 500, roomBus: 'none' });
  });
  afterAll(async () => {
    await b4?.keeper.stop(2_000);
    await stack?.dispose();
  });

  async function api(method: string, path: string, body?: unknown) {
    const res = await stack.adminFetch(path, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }
  const serversState = () => stack.haproxy!.runtime('show servers state backends');
  const server = async (id: string) => (await stack.haproxy!.stats()).find((r) => r.pxname === 'backends' && r.svname === id);
  async function spread(n: number) {
    const mux = new MuxClient(stack.frontUrl);
    try {
      return countBy(await Promise.all(Array.from({ length: n }, () => mux.open('/echo'))), (s) => s.backendId ?? '?');
    } finally {
      await mux.close();
    }
  }

  it('applies add, weight and drain as runtime commands, without a reload', async () => {
    const port = await freePort();
    b4 = await startBackendProcess(stack.config, 'b4', port, logger('test'), 'lines');
    expect((await api('POST', '/endpoints', { id: 'b4', address: `127.0.0.1:${port}` })).status).toBe(201);
    expect((await api('PATCH', '/endpoints/b4', { weight: 3 })).status).toBe(200);
    expect((await api('POST', '/endpoints/b1/drain', { deadlineMs: 60_000 })).status).toBe(202);
    await stack.haproxyDriver!.settled();
    expect(await serversState()).toMatch(new RegExp(` b4 127\\.0\\.0\\.1 `));
    expect(await server('b4')).toMatchObject({ status: expect.stringMatching(/^UP/), weight: '3' });
    expect(await server('b1')).toMatchObject({ status: expect.stringMatching(/^DRAIN/) });
    expect(await stack.haproxy!.workers()).toHaveLength(1); // no reload happened
  });

  it('keeps dynamic servers, weights and drain state across a HAProxy reload', async () => {
    await stack.haproxyDriver!.reload();
    expect(await serversState()).toMatch(/ b4 /);
    expect(await server('b4')).toMatchObject({ weight: '3' });
    expect(await server('b1')).toMatchObject({ status: expect.stringMatching(/^DRAIN/) });
    const counts = await spread(60);
    expect(counts.b4).toBeGreaterThan(0);
    expect(counts.b1).toBeUndefined();
  });

  it('stopped and started (not a reload): changes made while it was down are in the config it starts with', async () => {
    await stack.front.stop();
    expect((await api('PATCH', '/endpoints/b3', { weight: 2 })).status).toBe(200);
    await stack.front.start();
    await stack.front.settled();
    expect(await server('b3')).toMatchObject({ weight: '2' });
    expect(await server('b1')).toMatchObject({ status: expect.stringMatching(/^DRAIN/) });
    expect(await serversState()).toMatch(/ b4 /);
  });

  it('removes an endpoint: DELETE drains, then its server is deleted from HAProxy', async () => {
    expect((await api('DELETE', '/endpoints/b4')).status).toBe(202);
    await waitUntil(() => !stack.registry.has('b4'), 15_000, 'b4 removed from the registry');
    await stack.haproxyDriver!.settled();
    expect(await serversState()).not.toMatch(/ b4 /);
  });
});
