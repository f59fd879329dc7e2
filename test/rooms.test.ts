import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { H1Client, MuxClient } from '../client/index.js';
import { SessionKeeper, type KeptSession } from '../client/session-keeper.js';
import type { WsSession } from '../client/types.js';
import { localRedisConfigFile } from '../gateway/core/redis.js';
import { describeEachFront } from './helpers/front-matrix.js';
import { rawH2Request } from './helpers/raw-ws.js';
import { countBy, jsonInbox, sleep, startTestStack, waitUntil } from './helpers/stack.js';

// Chat rooms across backends: Redis pub/sub + streams, recovery on reconnect, and sticky-by-room;
// the same tests for every front.

/** Texts of room messages in arrival order, with offsets, per session. */
function record(ws: WsSession['ws']): Array<{ text: string; offset: string }> {
  const got: Array<{ text: string; offset: string }> = [];
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.type === 'message') got.push({ text: m.text, offset: m.offset });
  });
  return got;
}

describeEachFront('rooms over Redis, per-stream round robin', (front) => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    stack = await startTestStack({ front, healthIntervalMs: 300 });
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  it('two members on different backends see each other once, in the same order', async () => {
    const mux = new MuxClient(stack.frontUrl);
    try {
      const members = await Promise.all(Array.from({ length: 3 }, () => mux.open('/chat/pair')));
      const [a, b] = [members[0]!, members.find((m) => m.backendId !== members[0]!.backendId)!];
      expect(a.backendId).not.toBe(b.backendId);
      const [ga, gb] = [record(a.ws), record(b.ws)];
      await sleep(100);
      for (let i = 0; i < 20; i++) (i % 2 ? a : b).ws.send(JSON.stringify({ text: `t${i}` }));
      await waitUntil(() => ga.length >= 20 && gb.length >= 20, 5_000, 'both receive 20');
      await sleep(100);
      expect(ga).toHaveLength(20);
      expect(ga).toEqual(gb);
      expect(new Set(ga.map((m) => m.text)).size).toBe(20);
    } finally {
      await mux.close();
    }
  });

  it('3 backends × 50 members, 1,000 messages: every member receives all 1,000 in one order', async () => {
    const mux = new MuxClient(stack.frontUrl);
    try {
      const members = await Promise.all(Array.from({ length: 150 }, () => mux.open('/chat/big')));
      expect(Object.values(countBy(members, (m) => m.backendId ?? '?')).sort()).toEqual([50, 50, 50]);
      const logs = members.map((m) => record(m.ws));
      await sleep(200);
      for (let i = 0; i < 1000; i++) members[i % members.length]!.ws.send(JSON.stringify({ text: `n${i}` }));
      await waitUntil(() => logs.every((l) => l.length >= 1000), 30_000, 'all members receive 1,000');
      const reference = logs[0]!.map((m) => m.offset).join(',');
      for (const l of logs) {
        expect(l).toHaveLength(1000);
        expect(l.map((m) => m.offset).join(',')).toBe(reference);
      }
      expect(new Set(logs[0]!.map((m) => m.text)).size).toBe(1000);
      // Presence through the admin API: 150 members, on all three backends.
      const rooms = await (await stack.adminFetch(`/rooms`)).json();
      expect(Object.keys(rooms.big)).toHaveLength(150);
      expect(new Set(Object.values(rooms.big))).toEqual(new Set(['b1', 'b2', 'b3']));
    } finally {
      await mux.close();
    }
  });

  it('a backend killed under chat load: its members reconnect elsewhere with their offset and miss nothing', async () => {
    const mux = new MuxClient(stack.frontUrl);
    const keeper = new SessionKeeper(mux, { initialBackoffMs: 100, maxBackoffMs: 1_000, maxAttempts: 40 });
    try {
      // The earlier tests load the backends; on a busy machine a health check may have timed out
      // and the front may still count b3 out. Start from all three in rotation.
      await waitUntil(async () => {
        const routable = (await stack.front.endpoints()).filter((e) => e.routable).map((e) => e.id);
        return routable.length === 3 && stack.registry.list().every((e) => e.state === 'active');
      }, 20_000, 'b1..b3 routable at the front and active in the registry');
      const kept: KeptSession[] = await Promise.all(Array.from({ length: 60 }, () => keeper.keep('/chat/crash')));
      const logs = new Map<KeptSession, string[]>();
      for (const k of kept) {
        const log: string[] = [];
        logs.set(k, log);
        k.on('message', (d) => {
          const m = JSON.parse(d.toString());
          if (m.type === 'message') log.push(m.text);
        });
      }
      const victim = stack.backends.find((b) => b.id === 'b3')!;
      const onVictim = kept.filter((k) => k.current!.backendId === 'b3');
      const senders = kept.filter((k) => k.current!.backendId !== 'b3');
      expect(onVictim.length).toBeGreaterThan(5);
      await sleep(100);

      let sent = 0;
      const sendSome = async (n: number) => {
        for (let i = 0; i < n; i++) {
          senders[sent % senders.length]!.send(JSON.stringify({ text: `c${sent}` }));
          sent++;
          await sleep(2);
        }
      };
      await sendSome(100);
      victim.process.signal('SIGKILL');
      await sendSome(300); // while the victim's members are away
      await waitUntil(() => onVictim.every((k) => k.isOpen && k.current!.backendId !== 'b3'), 15_000, 'victims reconnect elsewhere');
      await sendSome(100);
      await waitUntil(() => [...logs.values()].every((l) => l.length >= sent), 15_000, 'every member has every message');
      await sleep(200);
      // One order per room (Redis's), the same for everyone, containing every message exactly once.
      const reference = logs.get(senders[0]!)!;
      expect([...reference].sort()).toEqual(Array.from({ length: sent }, (_, i) => `c${i}`).sort());
      for (const k of kept) expect(logs.get(k)).toEqual(reference);
      const stats = keeper.stats();
      console.info(`[rooms] ${stack.front.label}: crash: ${onVictim.length} members on b3 reopened ${stats.reopened} times (${stats.failedAttempts} failed attempts while the front still routed to b3), all ${sent} messages, none twice`);
      expect(stats.reopened).toBeGreaterThanOrEqual(onVictim.length);
      // A reopen the front sends to the dead b3 (not marked down yet) is refused there and goes to
      // another backend: HAProxy `retries` + `redispatch`; Envoy the route's retry_policy, with
      // max_retries raised (Envoy's default of 3 at a time answered the rest 503).
      expect(stats.failedAttempts).toBe(0);
    } finally {
      keeper.close();
      await mux.close();
    }
  });
});

describeEachFront('Redis stopped and restarted mid-run', (front) => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    stack = await startTestStack({ front }, 2);
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  it('local delivery goes on, /healthz says degraded then ok, and the bus recovers', async () => {
    const mux = new MuxClient(stack.frontUrl);
    try {
      const members = await Promise.all(Array.from({ length: 6 }, () => mux.open('/chat/weather')));
      const byBackend = (id: string) => members.filter((m) => m.backendId === id);
      const [x1, x2] = byBackend('b1');
      const [y1] = byBackend('b2');
      const health = async (b: number) => (await (await fetch(`${stack.backends[b]!.url}/healthz`)).json()).status;
      expect(await health(0)).toBe('ok');

      // Stop the stack's redis child by its port, with its password (REDISCLI_AUTH: not on redis-cli's command line).
      const redis = new URL(stack.redisUrl!);
      const { execFileSync } = await import('node:child_process');
      execFileSync('redis-cli', ['-p', redis.port, 'shutdown', 'nosave'], { env: { ...process.env, REDISCLI_AUTH: decodeURIComponent(redis.password) } });
      await waitUntil(async () => (await health(0)) === 'degraded', 5_000, 'b1 reports degraded');

      // GET /rooms reads Redis: the failure escapes the handler and its last resort answers 500 on
      // both transports, from the same process (an unhandled rejection used to end it).
      const b1 = stack.backends[0]!;
      const pid = b1.process.pid;
      expect((await fetch(`${b1.url}/rooms`)).status).toBe(500);
      expect(await rawH2Request(b1.port, '/rooms')).toBe(500);
      expect(await (await fetch(`${b1.url}/metrics`)).text()).toMatch(/backend_handler_errors_total\{[^}]*handler="h1-request"[^}]*\} 1/);
      expect([b1.process.pid, b1.keeper.restarts, await health(0)]).toEqual([pid, 0, 'degraded']);

      const ix2 = jsonInbox(x2!.ws);
      x1!.ws.send(JSON.stringify({ text: 'while redis is down' }));
      expect(await ix2.next('message')).toMatchObject({ text: 'while redis is down', degraded: true });
      expect((await (await fetch(`${stack.backends[0]!.url}/metrics`)).text())).toMatch(/room_bus_up\{[^}]*kind="redis"[^}]*\} 0/);

      const { spawn } = await import('node:child_process');
      // The same settings and password again: the backends still hold the URL they were given.
      const again = spawn('redis-server', [localRedisConfigFile(path.join(stack.config.stateDir, 'redis'))], { stdio: 'ignore' });
      try {
        await waitUntil(async () => (await health(0)) === 'ok' && (await health(1)) === 'ok', 10_000, 'bus recovers');
        await sleep(300); // resubscribe after reconnect
        const iy1 = jsonInbox(y1!.ws);
        x1!.ws.send(JSON.stringify({ text: 'across backends again' }));
        expect(await iy1.next('message')).toMatchObject({ text: 'across backends again' });
      } finally {
        again.kill('SIGTERM');
      }
    } finally {
      await mux.close();
    }
  });
});

describeEachFront('sticky-by-room balancing (consistent hash of the path), no bus', (front) => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    stack = await startTestStack({ front, balance: 'room', roomBus: 'none' });
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  it('every member of a room lands on one backend, over HTTP/2 and HTTP/1.1 alike; different rooms spread', async () => {
    const mux = new MuxClient(stack.frontUrl);
    const h1 = new H1Client(stack.frontUrl);
    try {
      const placement: Record<string, string[]> = {};
      for (let r = 0; r < 12; r++) {
        // The room's path as both transports send it: an RFC 8441 stream's :path and an HTTP/1.1
        // request target; a query (the recovery offset) must not move the member either.
        const members = await Promise.all([
          ...Array.from({ length: 6 }, () => mux.open(`/chat/room-${r}`)),
          ...Array.from({ length: 4 }, () => h1.open(`/chat/room-${r}`)),
          mux.open(`/chat/room-${r}?since=0-0`),
          h1.open(`/chat/room-${r}?since=0-0`),
        ]);
        placement[`room-${r}`] = members.map((m) => `${m.backendId ?? '?'}/${m.transport}`);
        expect(new Set(members.map((m) => m.backendId)), `room-${r}: ${placement[`room-${r}`]!.join(' ')}`).toHaveProperty('size', 1);
        // Without a bus, delivery still works because everyone is on one backend.
        const inboxes = members.slice(1).map((m) => jsonInbox(m.ws));
        members[0]!.ws.send(JSON.stringify({ text: `hello ${r}` }));
        for (const ib of inboxes) expect(await ib.next('message')).toMatchObject({ text: `hello ${r}` });
      }
      const used = new Set(Object.values(placement).map((m) => m[0]!.split('/')[0]));
      expect(used.size).toBeGreaterThanOrEqual(2);
    } finally {
      await Promise.all([mux.close(), h1.close()]);
    }
  });
});
