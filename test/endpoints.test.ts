import { afterAll, beforeAll, expect, it } from 'vitest';
import { H1Client, MuxClient, type WsSession } from '../client/index.js';
import { SequencedEcho } from '../client/sequenced-echo.js';
import { startBackendProcess, type BackendProcess } from '../gateway/core/backend-process.js';
import type { DrainResult } from '../gateway/core/drain.js';
import { freePort } from '../lib/ports.js';
import { logger } from '../lib/log.js';
import { describeEachFront } from './helpers/front-matrix.js';
import { countBy, sleep, startTestStack, waitUntil } from './helpers/stack.js';

// Endpoints added, weighted, drained and removed through the admin API while sessions echo, the
// same tests for every front: HAProxy follows the registry over its runtime API, Envoy over EDS.
// HAProxy's own side of it (runtime server state, a reload) is in dynamic-haproxy.test.ts; the
// admin API's validation and the CLI, without a proxy, in registry-api.test.ts.
//
// The tests build on each other, in order: b4 joins; weights; b2 drains with sessions that end on
// their own; b1 drains past its deadline; b4 is removed; then b3 is the only endpoint left active.

describeEachFront('endpoints through the admin API', (front) => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  let b4: BackendProcess | undefined;
  let mux: MuxClient;
  let h1: H1Client;
  const load = new SequencedEcho(50);
  beforeAll(async () => {
    stack = await startTestStack({ front, healthIntervalMs: 500, roomBus: 'none' });
    mux = new MuxClient(stack.frontUrl);
    h1 = new H1Client(stack.frontUrl);
    for (const s of await openMany(90)) load.add(s);
    load.start();
  });
  afterAll(async () => {
    load.stop();
    await Promise.all([mux?.close(), h1?.close()]);
    await b4?.keeper.stop(2_000);
    await stack?.dispose();
  });

  const openMany = (n: number, client: MuxClient | H1Client = mux) => Promise.all(Array.from({ length: n }, () => client.open('/echo')));
  const spread = (sessions: readonly WsSession[]) => countBy(sessions, (s) => s.backendId ?? '?');
  const routable = async () => (await stack.front.endpoints()).filter((e) => e.routable).map((e) => e.id).sort();
  async function api(method: string, path: string, body?: unknown) {
    const res = await stack.adminFetch(path, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }
  /** Sessions still open on `id` carry on echoing, in order, nothing lost: what a client sees when the front leaves them alone. */
  function expectUndisturbed(id: string) {
    const on = load.tallies.filter((t) => t.session.backendId === id);
    expect(on.filter((t) => t.closeCode !== undefined || t.outOfOrder > 0).length, `sessions on ${id} closed or out of order`).toBe(0);
    return on;
  }
  const drained = (id: string) =>
    new Promise<DrainResult>((resolve) => {
      const on = (r: DrainResult) => {
        if (r.id !== id) return;
        stack.drain.off('drained', on);
        resolve(r);
      };
      stack.drain.on('drained', on);
    });

  it('adds an endpoint under load: new streams land on it; nothing else is disturbed', async () => {
    const port = await freePort();
    b4 = await startBackendProcess(stack.config, 'b4', port, logger('test'), 'lines');
    const t0 = performance.now();
    expect((await api('POST', '/endpoints', { id: 'b4', address: `127.0.0.1:${port}` })).status).toBe(201);
    // Sessions opened one after another from the call on; the first on b4 ends the measurement (bounded wait).
    let firstOnB4: number | undefined;
    while (firstOnB4 === undefined && performance.now() - t0 < 15_000) {
      const s = await mux.open('/echo');
      load.add(s);
      if (s.backendId === 'b4') firstOnB4 = performance.now() - t0;
    }
    expect(firstOnB4, 'a new stream reached b4').toBeDefined();
    console.log(`[endpoints] ${stack.front.label}: admin API call → first stream on the new endpoint b4: ${firstOnB4!.toFixed(1)} ms`);
    await stack.front.settled();
    const after = await openMany(80);
    after.forEach((s) => load.add(s));
    // Per-stream round robin over four: about 20 each.
    expect(Object.keys(spread(after)).sort()).toEqual(['b1', 'b2', 'b3', 'b4']);
    expect(spread(after).b4).toBeGreaterThanOrEqual(10);
    expect(await routable()).toEqual(['b1', 'b2', 'b3', 'b4']);
    for (const id of ['b1', 'b2', 'b3']) expectUndisturbed(id);
  });

  it('weights: an endpoint of weight 4 among three of weight 1 takes about 4/7 of new streams', async () => {
    expect((await api('PATCH', '/endpoints/b4', { weight: 4 })).json).toMatchObject({ id: 'b4', weight: 4 });
    await stack.front.settled();
    expect((await stack.front.endpoints()).find((e) => e.id === 'b4')).toMatchObject({ weight: 4, routable: true });
    const sessions = await openMany(140);
    const counts = spread(sessions);
    console.log(`[endpoints] ${stack.front.label}: weights b1..b3=1 b4=4, 140 new streams: ${JSON.stringify(counts)}`);
    // Weighted round robin: 80 / 20 / 20 / 20 in an even rotation; the bounds leave room for where it starts.
    for (const id of ['b1', 'b2', 'b3']) {
      expect(counts[id] ?? 0, id).toBeGreaterThan(0);
      expect(counts.b4!, `b4 against ${id}`).toBeGreaterThan(2 * counts[id]!);
    }
    await Promise.all(sessions.map((s) => s.ws.close(1000)));
    expect((await api('PATCH', '/endpoints/b4', { weight: 1 })).status).toBe(200);
    await stack.front.settled();
    expect((await stack.front.endpoints()).find((e) => e.id === 'b4')).toMatchObject({ weight: 1 });
  });

  it('drains an endpoint: no new stream on it, its sessions go on until they end by themselves, 0 client errors', async () => {
    const onB2 = load.tallies.filter((t) => t.session.backendId === 'b2' && t.closeCode === undefined);
    expect(onB2.length).toBeGreaterThan(10);
    const done = drained('b2');
    // A deadline far away: the sessions end because their clients close them, not the backend.
    expect((await api('POST', '/endpoints/b2/drain', { deadlineMs: 120_000 })).status).toBe(202);
    await stack.front.settled();
    expect(await routable()).toEqual(['b1', 'b3', 'b4']);
    const echoedAtDrain = onB2.reduce((n, t) => n + t.echoed, 0);
    const fresh = [...(await openMany(90)), ...(await openMany(12, h1))];
    expect(spread(fresh).b2, 'no new stream on the draining b2').toBeUndefined();
    await Promise.all(fresh.map((s) => s.ws.close(1000)));
    await waitUntil(() => onB2.reduce((n, t) => n + t.echoed, 0) > echoedAtDrain + onB2.length, 10_000, 'b2 sessions echo on while it drains');
    expectUndisturbed('b2');
    // The clients finish; the drain sees b2 at 0 sessions and ends without closing anything.
    for (const t of onB2) t.session.ws.close(1000);
    expect(await done).toMatchObject({ id: 'b2', closedAtDeadline: 0, removed: false });
    expect(onB2.every((t) => t.closeCode === 1000 && t.lostAtClose === 0 && t.outOfOrder === 0)).toBe(true);
    for (const id of ['b1', 'b3', 'b4']) expectUndisturbed(id);
  });

  it('drains an endpoint past its deadline: its sessions echo until then, then close with 1001; nothing else fails', async () => {
    const onB1 = load.tallies.filter((t) => t.session.backendId === 'b1' && t.closeCode === undefined);
    expect(onB1.length).toBeGreaterThan(10);
    const res = await api('POST', '/endpoints/b1/drain', { deadlineMs: 4_000 });
    expect(res.status).toBe(202);
    const deadline = res.json.drainDeadline as number;
    await stack.front.settled();
    const echoedAtDrain = onB1.reduce((n, t) => n + t.echoed, 0);
    const fresh = await openMany(60);
    expect(spread(fresh).b1, 'no new stream on the draining b1').toBeUndefined();
    fresh.forEach((s) => load.add(s));

    // Until the deadline the b1 sessions keep echoing (checked just before it, whatever the machine load)...
    await sleep(Math.max(0, deadline - 300 - Date.now()));
    if (Date.now() < deadline) {
      expect(onB1.every((t) => t.closeCode === undefined)).toBe(true);
      expect(onB1.reduce((n, t) => n + t.echoed, 0)).toBeGreaterThan(echoedAtDrain);
    }
    // ...then the backend closes them with 1001.
    await waitUntil(() => onB1.every((t) => t.closeCode !== undefined), 15_000, 'b1 sessions closed after the deadline');
    expect(new Set(onB1.map((t) => t.closeCode))).toEqual(new Set([1001]));
    await load.quiesce();
    // A server-initiated close cannot answer what the client sent before the close frame reached
    // it: at most the one echo in flight per b1 session, and the client knows which. Elsewhere
    // nothing may be missing.
    expect(onB1.every((t) => t.lostAtClose <= 1)).toBe(true);
    const others = load.tallies.filter((t) => t.closeCode === undefined);
    expect(others.length).toBeGreaterThan(0);
    expect(others.every((t) => t.session.backendId !== 'b1' && t.session.backendId !== 'b2')).toBe(true);
    expect(load.totals()).toMatchObject({ outOfOrder: 0, inFlight: 0 });
    expect(stack.registry.get('b1').state).toBe('draining');
    load.start();
  });

  it('removes an endpoint: DELETE drains it, its sessions end, it leaves the front; no new stream on it', async () => {
    const onB4 = load.tallies.filter((t) => t.session.backendId === 'b4' && t.closeCode === undefined);
    expect(onB4.length).toBeGreaterThan(0);
    expect((await api('DELETE', '/endpoints/b4')).json).toMatchObject({ state: 'draining', removeAfterDrain: true });
    await stack.front.settled();
    expect(spread(await openMany(30)).b4, 'no new stream on b4 once DELETE is answered').toBeUndefined();
    for (const t of onB4) t.session.ws.close(1000);
    await waitUntil(() => !stack.registry.has('b4'), 15_000, 'b4 removed from the registry');
    await stack.front.settled();
    await waitUntil(async () => !(await stack.front.endpoints()).some((e) => e.id === 'b4'), 10_000, 'b4 gone from the front');
    expect(await routable()).toEqual(['b3']);
    expect(spread(await openMany(30))).toEqual({ b3: 30 });
    expect(onB4.every((t) => t.closeCode === 1000 && t.lostAtClose === 0)).toBe(true);
  });

  // Envoy's default healthy_panic_threshold (50%) would spread new streams over every endpoint, down
  // ones included, once fewer than half of those not draining are healthy; gateway/envoy/xds/resources.ts
  // sets it to 0. (Draining hosts do not count there: with b1 draining and b2 down Envoy is at 1 of 2,
  // not in panic; two down of three is what shows it, checked with the default: streams hung on b1/b2.)
  it('draining or down endpoints get no new stream even when 2 of 3 are: every new stream lands on the last one', async () => {
    // b1 and b2 draining (the drains above), b3 active.
    expect(stack.registry.list().map((e) => `${e.id}:${e.state}`)).toEqual(['b1:draining', 'b2:draining', 'b3:active']);
    expect(spread([...(await openMany(60)), ...(await openMany(12, h1))])).toEqual({ b3: 72 });

    // b1 and b2 back, then down while still accepting TCP connections: stopped (SIGSTOP), the
    // kernel completes the handshake and nothing answers, so a stream sent there hangs instead of
    // being retried elsewhere.
    const stopped = stack.backends.filter((b) => b.id === 'b1' || b.id === 'b2');
    for (const id of ['b1', 'b2']) expect((await api('PATCH', `/endpoints/${id}`, { state: 'active' })).status).toBe(200);
    await stack.front.settled();
    await waitUntil(async () => (await routable()).length === 3, 10_000, 'b1..b3 routable again');
    try {
      for (const b of stopped) process.kill(b.process.pid!, 'SIGSTOP');
      await waitUntil(() => stack.registry.list().filter((e) => e.state === 'down').length === 2, 15_000, 'b1 and b2 marked down by the health checks');
      await stack.front.settled();
      await waitUntil(async () => (await routable()).join() === 'b3', 15_000, 'only b3 routable at the front');
      const bounded = (open: Promise<WsSession>) =>
        Promise.race([open.then((s) => s.backendId ?? '?', (err: Error) => `error: ${err.message}`), sleep(10_000).then(() => 'no answer within 10 s')]);
      const landed = await Promise.all([...Array.from({ length: 60 }, () => bounded(mux.open('/echo'))), ...Array.from({ length: 12 }, () => bounded(h1.open('/echo')))]);
      expect(countBy(landed, (x) => x)).toEqual({ b3: 72 });
    } finally {
      for (const b of stopped) process.kill(b.process.pid!, 'SIGCONT');
    }
    await load.quiesce();
    expect(load.tallies.filter((t) => t.session.backendId === 'b3').every((t) => t.closeCode === undefined && t.outOfOrder === 0)).toBe(true);
  });
});
