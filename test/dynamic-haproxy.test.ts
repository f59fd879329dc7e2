import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MuxClient } from '../client/index.js';
import { SequencedEcho } from '../client/sequenced-echo.js';
import { startBackendProcess, type BackendProcess } from '../gateway/backend-process.js';
import { freePort } from '../gateway/supervisor.js';
import { logger } from '../lib/log.js';
import { countBy, startTestStack, waitUntil } from './helpers/stack.js';

// Endpoints joining and leaving a live HAProxy through the registry, under load.

describe('dynamic endpoints on a real HAProxy', () => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  let b4: BackendProcess | undefined;
  const client = () => new MuxClient(stack.frontUrl);
  beforeAll(async () => {
    stack = await startTestStack({ healthIntervalMs: 500 });
  });
  afterAll(async () => {
    await b4?.process.stop(2_000);
    await stack?.dispose();
  });

  async function post(path: string, body: unknown) {
    const res = await stack.adminFetch(`${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  it('adds backend 4 under load, drains backend 1, and nothing else fails', async () => {
    const mux = client();
    const load = new SequencedEcho(50);
    try {
      for (const s of await Promise.all(Array.from({ length: 90 }, () => mux.open('/echo')))) load.add(s);
      load.start();

      // --- add b4: new streams reach it -----------------------------------------------------
      const port = await freePort();
      b4 = await startBackendProcess(stack.config, 'b4', port, logger('test'), 'lines');
      const t0 = performance.now();
      expect((await post('/endpoints', { id: 'b4', address: `127.0.0.1:${port}` })).status).toBe(201);
      let firstOnB4: number | undefined;
      while (firstOnB4 === undefined && performance.now() - t0 < 5_000) {
        const s = await mux.open('/echo');
        load.add(s);
        if (s.backendId === 'b4') firstOnB4 = performance.now() - t0;
      }
      expect(firstOnB4, 'a new stream reached b4').toBeDefined();
      console.info(`[dynamic] API call → first stream on new endpoint b4: ${firstOnB4!.toFixed(1)} ms`);
      const after = await Promise.all(Array.from({ length: 80 }, () => mux.open('/echo')));
      after.forEach((s) => load.add(s));
      expect(countBy(after, (s) => s.backendId ?? '?').b4).toBeGreaterThanOrEqual(10);

      // --- drain b1: no new streams, old ones echo until the deadline, then 1001 ---------------
      const onB1 = load.tallies.filter((t) => t.session.backendId === 'b1');
      expect(onB1.length).toBeGreaterThan(10);
      const drained = await post('/endpoints/b1/drain', { deadlineMs: 4_000 });
      expect(drained.status).toBe(202);
      const deadline = drained.json.drainDeadline as number;
      await stack.haproxyDriver!.settled();
      const echoedAtDrain = onB1.reduce((n, t) => n + t.echoed, 0);
      const fresh = await Promise.all(Array.from({ length: 90 }, () => mux.open('/echo')));
      expect(countBy(fresh, (s) => s.backendId ?? '?').b1, 'no new stream on the draining b1').toBeUndefined();
      fresh.forEach((s) => load.add(s));

      // Until the deadline the b1 sessions keep echoing (checked just before it, whatever the machine load)...
      await new Promise((r) => setTimeout(r, Math.max(0, deadline - 300 - Date.now())));
      expect(Date.now()).toBeLessThan(deadline);
      expect(onB1.every((t) => t.closeCode === undefined)).toBe(true);
      expect(onB1.reduce((n, t) => n + t.echoed, 0)).toBeGreaterThan(echoedAtDrain);
      // ...then the backend closes them with 1001.
      await waitUntil(() => onB1.every((t) => t.closeCode !== undefined), 10_000);
      expect(new Set(onB1.map((t) => t.closeCode))).toEqual(new Set([1001]));

      await load.quiesce();
      // Everything not on b1 is still open, in order, nothing lost.
      const others = load.tallies.filter((t) => t.session.backendId !== 'b1');
      expect(others.every((t) => t.closeCode === undefined)).toBe(true);
      const totals = load.totals();
      expect(totals.outOfOrder).toBe(0);
      expect(totals.inFlight).toBe(0);
      // A server-initiated close cannot answer what the client sent before the close frame reached it:
      // the echo in flight at the 1001 (at most one per session here) is not echoed, and the client
      // knows exactly which one (sent − echoed). On a loaded machine that is most b1 sessions; on any
      // session the server did not close, nothing may be missing.
      expect(onB1.every((t) => t.lostAtClose <= 1)).toBe(true);
      expect(totals.lost).toBe(onB1.reduce((n, t) => n + t.lostAtClose, 0));
      expect(others.reduce((n, t) => n + t.sent - t.echoed, 0)).toBe(0);
      expect(stack.registry.get('b1').state).toBe('draining');
    } finally {
      load.stop();
      await mux.close();
    }
  });

  it('keeps dynamic servers and drain state across a HAProxy reload', async () => {
    await stack.haproxyDriver!.reload();
    const state = await stack.haproxy!.runtime('show servers state backends');
    expect(state).toMatch(/ b4 /);
    const mux = client();
    try {
      const sessions = await Promise.all(Array.from({ length: 60 }, () => mux.open('/echo')));
      const spread = countBy(sessions, (s) => s.backendId ?? '?');
      expect(spread.b4).toBeGreaterThan(0);
      expect(spread.b1).toBeUndefined();
    } finally {
      await mux.close();
    }
  });

  it('removes an endpoint: DELETE drains, then it leaves HAProxy', async () => {
    const res = await stack.adminFetch(`/endpoints/b4`, { method: 'DELETE' });
    expect(res.status).toBe(202);
    await waitUntil(() => !stack.registry.has('b4'), 10_000);
    await stack.haproxyDriver!.settled();
    expect(await stack.haproxy!.runtime('show servers state backends')).not.toMatch(/ b4 /);
  });
});

