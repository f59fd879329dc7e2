import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { H1Client, MuxClient, type WsClient, type WsSession } from '../client/index.js';
import { startBackendProcess } from '../gateway/stack.js';
import { freePort } from '../gateway/supervisor.js';
import { backendSchema, defaults, gatewaySchema } from '../lib/config.js';
import { logger } from '../lib/log.js';
import { startBackend, type Backend } from '../backend/server.js';
import { closed, echo } from './helpers/stack.js';

// The backend on both transports, directly (no proxy): same routes, same behaviour.

let backend: Backend;
let url: string;
beforeAll(async () => {
  backend = await startBackend(defaults(backendSchema, { id: 'bt', port: 0, maxPayloadBytes: 64 * 1024 }));
  url = `http://127.0.0.1:${backend.port}`;
});
afterAll(async () => {
  await backend?.close();
});

function nextJson(s: WsSession, type: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const onMessage = (data: Buffer) => {
      const msg = JSON.parse(data.toString()) as Record<string, unknown>;
      if (msg.type !== type) return;
      s.ws.off('message', onMessage);
      resolve(msg);
    };
    s.ws.on('message', onMessage);
  });
}

for (const make of [(u: string) => new MuxClient(u), (u: string) => new H1Client(u)] as const) {
  const transport = make('http://x').transport;
  describe(`backend over ${transport}`, () => {
    let client: WsClient;
    beforeAll(() => {
      client = make(url);
    });
    afterAll(async () => {
      await client.close();
    });

    it('echoes and reports its id and transport', async () => {
      const s = await client.open('/echo');
      expect(s.backendId).toBe('bt');
      expect(s.transport).toBe(transport);
      expect(await echo(s.ws, 'ping 1')).toBe('ping 1');
      const bin = await new Promise<Buffer>((r) => {
        s.ws.once('message', (d) => r(d as Buffer));
        s.ws.send(Buffer.from([1, 2, 3]));
      });
      expect([...bin]).toEqual([1, 2, 3]);
    });

    it('negotiates a subprotocol by server preference, and fails when none is shared', async () => {
      expect((await client.open('/echo', { protocols: ['chat.v1', 'chat.v2'] })).protocol).toBe('chat.v2');
      expect((await client.open('/echo', { protocols: ['other', 'chat.v1'] })).protocol).toBe('chat.v1');
      await expect(client.open('/echo', { protocols: ['nope'] })).rejects.toThrow(/subprotocol/i);
    });

    it('propagates close codes both ways', async () => {
      const s = await client.open('/echo');
      const done = closed(s.ws);
      s.ws.close(4321, 'client done');
      expect(await done).toEqual({ code: 4321, reason: 'client done' });
    });

    it('closes with 1009 on an oversized message', async () => {
      const s = await client.open('/echo');
      const done = closed(s.ws);
      s.ws.send(Buffer.alloc(65 * 1024));
      expect((await done).code).toBe(1009);
    });

    it('answers 404 for an unknown route', async () => {
      await expect(client.open('/nowhere')).rejects.toMatchObject({ code: 'GW_ERR_HANDSHAKE_REJECTED', status: 404 });
    });

    it('broadcasts chat messages with join/leave notices as JSON', async () => {
      const room = `/chat/room-${transport}`;
      const a = await client.open(room);
      expect(await nextJson(a, 'join')).toMatchObject({ members: 1 }); // its own join
      const aSeesJoin = nextJson(a, 'join');
      const b = await client.open(room);
      expect(await aSeesJoin).toMatchObject({ type: 'join', members: 2, backend: 'bt' });
      const bSees = nextJson(b, 'message');
      a.ws.send('hi from a');
      expect(await bSees).toMatchObject({ type: 'message', text: 'hi from a', room: room.slice(6) });
      const aSeesLeave = nextJson(a, 'leave');
      b.ws.close(1000);
      expect(await aSeesLeave).toMatchObject({ type: 'leave', members: 1 });
    });

    it('pushes feed ticks at the requested rate, and refuses a bad rate with 1008', async () => {
      const s = await client.open('/feed?rate=50');
      const ticks: number[] = [];
      await new Promise<void>((r) =>
        s.ws.on('message', (d) => {
          ticks.push((JSON.parse(d.toString()) as { seq: number }).seq);
          if (ticks.length === 3) r();
        }),
      );
      expect(ticks).toEqual([0, 1, 2]);
      s.ws.close();
      const bad = await client.open('/feed?rate=0');
      expect((await closed(bad.ws)).code).toBe(1008);
    });
  });
}

describe('backend HTTP endpoints', () => {
  it('serves /healthz and Prometheus /metrics with sessions by transport', async () => {
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    expect(health.headers.get('x-backend-id')).toBe('bt');
    expect(await health.json()).toMatchObject({ status: 'ok', backend: 'bt' });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/ws_sessions\{[^}]*transport="h2"/);
    expect(metrics).toMatch(/ws_messages_total\{[^}]*direction="in"[^}]*transport="h1"/);
    expect(metrics).toMatch(/ws_bytes_total/);
  });
  it('answers 426 to a plain GET on a WebSocket route', async () => {
    expect((await fetch(`${url}/echo`)).status).toBe(426);
  });
});

describe('backend process', () => {
  it('on SIGTERM closes sessions with 1001 and exits', async () => {
    const port = await freePort();
    const config = defaults(gatewaySchema, { drainTimeoutMs: 2_000 });
    const proc = await startBackendProcess(config, 'bx', port, logger('test'), 'lines');
    const mux = new MuxClient(proc.url);
    const h1 = new H1Client(proc.url);
    try {
      const sessions = [...(await Promise.all([1, 2, 3].map(() => mux.open('/echo')))), await h1.open('/echo')];
      const closes = sessions.map((s) => closed(s.ws));
      proc.process.signal('SIGTERM');
      expect((await Promise.all(closes)).map((c) => c.code)).toEqual([1001, 1001, 1001, 1001]);
      expect(await proc.process.exited).toEqual({ code: 0, signal: null });
    } finally {
      await proc.process.stop(1000);
      await Promise.all([mux.close(), h1.close()]);
    }
  });
});
