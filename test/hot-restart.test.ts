import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { H1Client, MuxClient } from '../client/index.js';
import { SequencedEcho } from '../client/sequenced-echo.js';
import { SessionKeeper } from '../client/session-keeper.js';
import { DEFAULT_TEMPLATE } from '../gateway/haproxy.js';
import { echo, sleep, startTestStack, waitUntil } from './helpers/stack.js';

// Hot restart of a real HAProxy under load: measured, not asserted from the docs.



describe('HAProxy hot restart under load', () => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    stack = await startTestStack({ hardStopAfterS: 120 });
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  it('1,000 h2 streams + 200 h1 sessions echo through two restarts: nothing lost, new sessions on the new worker', async () => {
    const mux = new MuxClient(stack.frontUrl);
    const h1 = new H1Client(stack.frontUrl);
    const load = new SequencedEcho(50);
    let failedNewSessions = 0;
    const newSessionsByWorker: number[] = [];
    try {
      const [h2s, h1s] = await Promise.all([
        Promise.all(Array.from({ length: 1000 }, () => mux.open('/echo'))),
        Promise.all(Array.from({ length: 200 }, () => h1.open('/echo'))),
      ]);
      [...h2s, ...h1s].forEach((s) => load.add(s));
      load.start();
      const firstWorker = (await stack.haproxy!.workers())[0]!.pid;

      for (const round of [1, 2]) {
        await sleep(1_000);
        const result = await (await stack.adminFetch(`/hot-restart`, { method: 'POST' })).json();
        expect(result).toMatchObject({ engine: 'haproxy', generation: round + 1 });
        expect(result.newPids).toHaveLength(1);
        // New sessions, both transports, right after the restart: every one must open and echo.
        const fresh = await Promise.allSettled([
          ...Array.from({ length: 50 }, () => mux.open('/echo')),
          ...Array.from({ length: 20 }, () => h1.open('/echo')),
        ]);
        for (const f of fresh) {
          if (f.status === 'rejected') failedNewSessions++;
          else load.add(f.value);
        }
        // They are carried by the new worker, not the draining one.
        await sleep(200);
        newSessionsByWorker.push((await stack.haproxy!.workerSessions(result.newPids[0])) ?? -1);
      }
      await sleep(1_000);
      await load.quiesce(10_000);

      const totals = load.totals();
      console.info(`[hot-restart] ${JSON.stringify(totals)}; sessions on each new worker right after its restart: ${newSessionsByWorker}`);
      expect(failedNewSessions).toBe(0);
      expect(totals.lost).toBe(0);
      expect(totals.outOfOrder).toBe(0);
      expect(totals.inFlight).toBe(0);
      expect(totals.open).toBe(1200 + 140);
      expect(totals.echoed).toBeGreaterThan(1340 * 10);
      for (const n of newSessionsByWorker) expect(n).toBeGreaterThanOrEqual(50);

      // Three generations are alive: the old ones still hold their sessions.
      const generations = await (await stack.adminFetch(`/hot-restart`)).json();
      expect(generations.generations.map((g: { generation: number }) => g.generation).sort()).toEqual([1, 2, 3]);
      expect(generations.generations.find((g: { pid: number }) => g.pid === firstWorker).sessions).toBeGreaterThanOrEqual(1200);

      // Old workers exit once their sessions close (hard-stop-after is 120 s: it is not what ends them).
      load.stop();
      await Promise.all([mux.close(), h1.close()]);
      await waitUntil(async () => (await stack.haproxy!.workers()).length === 1, 15_000, 'old workers exit');
    } finally {
      load.stop();
      await Promise.all([mux.close(), h1.close()]);
    }
  });

  it('a reload with a broken config is refused, names the problem, and the running generation keeps serving', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-tmpl-'));
    const template = path.join(dir, 'haproxy.cfg.tmpl');
    copyFileSync(DEFAULT_TEMPLATE, template);
    const broken = await startTestStack({ haproxyTemplate: template });
    try {
      const mux = new MuxClient(broken.frontUrl);
      const s = await mux.open('/echo');
      const before = await broken.haproxy!.workers();
      writeFileSync(template, readFileSync(template, 'utf8').replace('{{balance}}', '{{balance}}\n    frobnicate yes'));
      const res = await broken.adminFetch(`/hot-restart`, { method: 'POST' });
      expect(res.status).toBe(409);
      const body = await res.json();
      expect(body.error.code).toBe('GW_ERR_HAPROXY_CONFIG');
      expect(body.error.message).toMatch(/frobnicate/);
      expect(await broken.haproxy!.workers()).toEqual(before);
      expect(await echo(s.ws, 'still here')).toBe('still here');
      const again = await mux.open('/echo');
      expect(await echo(again.ws, 'new session')).toBe('new session');
      await mux.close();
    } finally {
      await broken.dispose();
    }
  });
});

describe('hard-stop-after: the old generation closes what it holds, the client reopens all of it', () => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    stack = await startTestStack({ hardStopAfterS: 2 });
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  it('reopens exactly as many sessions as were closed', async () => {
    const mux = new MuxClient(stack.frontUrl);
    const keeper = new SessionKeeper(mux, { initialBackoffMs: 50, maxBackoffMs: 1_000 });
    let closed = 0;
    try {
      const kept = await Promise.all(Array.from({ length: 150 }, () => keeper.keep('/echo')));
      kept.forEach((k) => k.on('down', () => closed++));
      await stack.hotRestart.restart();
      // The old worker holds all 150 until hard-stop-after (2 s) kills it.
      await waitUntil(() => closed === 150, 10_000, 'old worker closes its sessions');
      await waitUntil(() => keeper.stats().open === 150, 10_000, 'client reopens them');
      expect(keeper.stats()).toMatchObject({ kept: 150, open: 150, reopened: closed, gaveUp: 0 });
      // Reopened sessions work, on the new worker's connection.
      for (const k of kept.slice(0, 10)) expect(await echo(k.current!.ws, 'after')).toBe('after');
      expect(mux.stats().connections).toBe(1);
    } finally {
      keeper.close();
      await mux.close();
    }
  });
});
