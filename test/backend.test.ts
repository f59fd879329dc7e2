import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { H1Client, MuxClient, type WsClient, type WsSession } from '../client/index.js';
import { startBackendProcess } from '../gateway/core/backend-process.js';
import { freePort } from '../lib/ports.js';
import { backendSchema, defaults, gatewaySchema } from '../lib/config.js';
import { logger } from '../lib/log.js';
import { startBackend, type Backend } from '../backend/server.js';
import { closed, echo, jsonInbox } from './helpers/stack.js';

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

    it('runs a chat room: welcome, join/leave notices, messages with offsets, bad frames answered', async () => {
      const room = `/chat/room-${transport}`;
      const a = await client.open(room);
      const ia = jsonInbox(a.ws);
      expect(await ia.next('welcome')).toMatchObject({ type: 'welcome', backend: 'bt', bus: 'local', transport });
      expect(await ia.next('join')).toMatchObject({ members: 1 }); // its own join
      const b = await client.open(room);
      const ib = jsonInbox(b.ws);
      expect(await ia.next('join')).toMatchObject({ type: 'join', members: 2, backend: 'bt' });
      a.ws.send(JSON.stringify({ text: 'hi from a' }));
      const msg = await ib.next('message');
      expect(msg).toMatchObject({ type: 'message', text: 'hi from a', room: room.slice(6) });
      expect(msg.offset).toMatch(/^\d+-\d+$/);
      a.ws.send('not json');
      expect(await ia.next('error')).toMatchObject({ code: 'bad-frame' });
      b.ws.close(1000);
      expect(await ia.next('leave')).toMatchObject({ type: 'leave', members: 1 });
      const binary = closed(a.ws);
      a.ws.send(Buffer.from([1, 2]));
      expect((await binary).code).toBe(1003);
    });

    it('refuses a bad room name or offset at the handshake with 400', async () => {
      await expect(client.open('/chat/' + 'x'.repeat(65))).rejects.toMatchObject({ status: 400 });
      await expect(client.open('/chat/bad%20name')).rejects.toMatchObject({ status: 400 });
      await expect(client.open('/chat/ok?since=yesterday')).rejects.toMatchObject({ status: 400 });
    });

    it('replays missed messages after ?since=<offset>, then live, never twice', async () => {
      const room = `/chat/replay-${transport}`;
      const a = await client.open(room);
      const offsets: string[] = [];
      a.ws.on('message', (d) => {
        const m = JSON.parse(d.toString());
        if (m.type === 'message') offsets.push(m.offset);
      });
      for (let i = 0; i < 5; i++) a.ws.send(JSON.stringify({ text: `m${i}` }));
      while (offsets.length < 5) await new Promise((r) => setTimeout(r, 10));
      const late = await client.open(`${room}?since=${offsets[1]}`);
      const texts: string[] = [];
      late.ws.on('message', (d) => {
        const m = JSON.parse(d.toString());
        if (m.type === 'message') texts.push(m.text);
      });
      while (texts.length < 3) await new Promise((r) => setTimeout(r, 10));
      a.ws.send(JSON.stringify({ text: 'live' }));
      while (texts.length < 4) await new Promise((r) => setTimeout(r, 10));
      expect(texts).toEqual(['m2', 'm3', 'm4', 'live']);
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
  it('counts every message and byte in both directions per transport (exported on scrape)', async () => {
    const counted = async () => {
      const text = await (await fetch(`${url}/metrics`)).text();
      const read = (name: string, direction: string, transport: string) =>
        Number(new RegExp(`^${name}\\{direction="${direction}",transport="${transport}"[^}]*\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
      return Object.fromEntries(
        (['h1', 'h2'] as const).flatMap((t) => [
          [`${t} messages in`, read('ws_messages_total', 'in', t)],
          [`${t} messages out`, read('ws_messages_total', 'out', t)],
          [`${t} bytes in`, read('ws_bytes_total', 'in', t)],
          [`${t} bytes out`, read('ws_bytes_total', 'out', t)],
        ]),
      );
    };
    const before = await counted();
    for (const [transport, make] of [['h2', (u: string) => new MuxClient(u)], ['h1', (u: string) => new H1Client(u)]] as const) {
      const c = make(url);
      const s = await c.open('/echo');
      for (let i = 0; i < 7; i++) await echo(s.ws, 'x'.repeat(10));
      await c.close();
      const after = await counted();
      expect(after[`${transport} messages in`]! - before[`${transport} messages in`]!).toBe(7);
      expect(after[`${transport} messages out`]! - before[`${transport} messages out`]!).toBe(7);
      expect(after[`${transport} bytes in`]! - before[`${transport} bytes in`]!).toBe(70);
      expect(after[`${transport} bytes out`]! - before[`${transport} bytes out`]!).toBe(70);
      Object.assign(before, after);
    }
  });
  it('answers 426 to a plain GET on a WebSocket route', async () => {
    expect((await fetch(`${url}/echo`)).status).toBe(426);
  });
});

/** One HTTP/1.1 Upgrade with `version` as Sec-WebSocket-Version (none when undefined) → status and headers. */
function h1Handshake(port: number, version: string | undefined): Promise<{ status: number; headers: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () =>
      socket.write(
        'GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${version === undefined ? '' : `Sec-WebSocket-Version: ${version}\r\n`}\r\n`,
      ),
    );
    let head = '';
    socket.on('error', reject);
    socket.on('data', (d) => {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.destroy();
      const [statusLine, ...lines] = head.slice(0, end).split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      resolve({ status: Number(statusLine!.split(' ')[1]), headers });
    });
  });
}

/** One RFC 8441 extended CONNECT with `version` (none when undefined) → status and headers. */
async function h2Handshake(port: number, version: string | undefined): Promise<{ status: number; headers: http2.IncomingHttpHeaders }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    await new Promise((r) => session.once('remoteSettings', r));
    const headers: http2.OutgoingHttpHeaders = { ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http', ':path': '/echo' };
    if (version !== undefined) headers['sec-websocket-version'] = version;
    const stream = session.request(headers, { endStream: false });
    stream.on('error', () => {});
    const response = await new Promise<http2.IncomingHttpHeaders>((r) => stream.once('response', r));
    return { status: Number(response[':status']), headers: response };
  } finally {
    session.destroy();
  }
}

describe('WebSocket version, directly at a backend', () => {
  // RFC 6455 §4.2.2/§4.4: a version the server does not speak gets an error and the versions it does.
  // `ws` alone accepts 8 over HTTP/1.1; the RFC 8441 path never did: both transports must agree.
  it.each([
    ['8', 426],
    ['7', 426],
    ['14', 426],
    [undefined, 426],
    ['13', 'accepted'],
  ] as const)('Sec-WebSocket-Version %s: the same answer over HTTP/1.1 and HTTP/2', async (version, expected) => {
    const h1 = await h1Handshake(backend.port, version);
    const h2 = await h2Handshake(backend.port, version);
    if (expected === 'accepted') {
      expect([h1.status, h2.status]).toEqual([101, 200]);
      return;
    }
    expect([h1.status, h2.status]).toEqual([expected, expected]);
    expect([h1.headers['sec-websocket-version'], h2.headers['sec-websocket-version']]).toEqual(['13', '13']);
    expect([h1.headers['x-backend-id'], h2.headers['x-backend-id']]).toEqual(['bt', 'bt']);
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
