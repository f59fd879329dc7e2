import { execFile } from 'node:child_process';
import net from 'node:net';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientAddress, startBackend, type Backend } from '../backend/server.js';
import { H1Client, MuxClient, type WsClient } from '../client/index.js';
import { backendSchema, defaults } from '../lib/config.js';
import { describeEachFront } from './helpers/front-matrix.js';
import { closed, jsonInbox, startTestStack, waitUntil } from './helpers/stack.js';

// Auth at the handshake, origin checks and limits, on both transports: against a backend directly
// (once), and through each front (Envoy, HAProxy) to a backend with the same settings — the front
// must carry the token, Origin, subprotocols and close codes through, and give the backend the
// client's address for the per-IP limit.

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const key = new TextEncoder().encode(SECRET);
const token = (claims: Record<string, unknown>, expiresIn = '1h') =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(expiresIn).sign(key);
const bearer = async (claims: Record<string, unknown>, expiresIn?: string) => ({ headers: { authorization: `Bearer ${await token(claims, expiresIn)}` } });

/** The backend settings every target here runs with. */
const LIMITS = {
  jwtSecret: SECRET,
  allowedOrigins: ['https://good.example'],
  maxMessagesPerSecond: 20,
  maxRoomSize: 2,
  maxSessionsPerIp: 50,
  slowConsumerBytes: 256 * 1024,
  pingIntervalMs: 200,
};

/** Where the sessions go (a backend, or a front), and the backend whose metrics count the limits. */
interface Target {
  url: string;
  backendUrl: string;
}

/** Sessions open at the backend (its ws_sessions gauge, summed over labels). */
const openSessions = async (backendUrl: string) => {
  const text = await (await fetch(`${backendUrl}/metrics`)).text();
  return [...text.matchAll(/^ws_sessions\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
};

const limitHits = async (backendUrl: string, limit: string) => {
  const text = await (await fetch(`${backendUrl}/metrics`)).text();
  return Number(new RegExp(`ws_limit_hits_total\\{[^}]*limit="${limit}"[^}]*\\} (\\d+)`).exec(text)?.[1] ?? 0);
};

/** The handshake checks and per-session limits, on both transports, against `target()`. */
function handshakeAndSessionLimits(target: () => Target): void {
  for (const make of [(u: string) => new MuxClient(u), (u: string) => new H1Client(u)] as const) {
    const transport = make('http://x').transport;
    describe(`JWT at the handshake over ${transport}`, () => {
      let client: WsClient;
      beforeAll(() => {
        client = make(target().url);
      });
      afterAll(async () => {
        await client?.close();
      });

      it('401 without a token, with a bad one, and with an expired one', async () => {
        await expect(client.open('/echo')).rejects.toMatchObject({ status: 401 });
        await expect(client.open('/echo', { headers: { authorization: 'Bearer not.a.jwt' } })).rejects.toMatchObject({ status: 401 });
        const forged = await new SignJWT({ rooms: '*' }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode('x'.repeat(40)));
        await expect(client.open('/echo', { headers: { authorization: `Bearer ${forged}` } })).rejects.toMatchObject({ status: 401 });
        const expired = await new SignJWT({ rooms: '*' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(Math.floor(Date.now() / 1000) - 10).sign(key);
        await expect(client.open('/echo', { headers: { authorization: `Bearer ${expired}` } })).rejects.toMatchObject({ status: 401 });
      });

      it('403 for a room the token does not grant; open for one it does', async () => {
        await expect(client.open('/chat/secret', await bearer({ rooms: ['lobby'] }))).rejects.toMatchObject({ status: 403 });
        const s = await client.open(`/chat/lobby-${transport}`, await bearer({ rooms: [`lobby-${transport}`] }));
        expect((await jsonInbox(s.ws).next('welcome')).backend).toBe(s.backendId);
      });

      it('403 for a browser Origin not on the allowlist; allowed origin and no origin pass', async () => {
        const auth = await bearer({ rooms: '*' });
        await expect(client.open('/echo', { headers: { ...auth.headers, origin: 'https://evil.example' } })).rejects.toMatchObject({ status: 403 });
        await client.open('/echo', { headers: { ...auth.headers, origin: 'https://good.example' } });
        await client.open('/echo', auth);
      });

      it('accepts the token as a bearer.<jwt> subprotocol (browsers), choosing the real subprotocol', async () => {
        const s = await client.open('/echo', { protocols: ['chat.v1', `bearer.${await token({ rooms: '*' })}`] });
        expect(s.protocol).toBe('chat.v1');
      });

      it('closes with 1008 above the per-session message rate', async () => {
        const s = await client.open('/echo', await bearer({}));
        const done = closed(s.ws);
        for (let i = 0; i < 100; i++) s.ws.send('flood');
        expect(await done).toMatchObject({ code: 1008 });
      });

      it('closes with 1008 a member joining a full room', async () => {
        const auth = await bearer({ rooms: '*' });
        const room = `/chat/small-${transport}`;
        await client.open(room, auth);
        await client.open(room, auth);
        const third = await client.open(room, auth);
        expect(await closed(third.ws)).toMatchObject({ code: 1008, reason: expect.stringMatching(/full/) });
      });
    });
  }

  describe('limits across sessions', () => {
    it('refuses with 429 beyond the per-IP session limit', async () => {
      const client = new MuxClient(target().url);
      const before = await openSessions(target().backendUrl);
      try {
        const a = await bearer({ rooms: '*' });
        const opened = await Promise.allSettled(Array.from({ length: 60 }, () => client.open('/echo', a)));
        const refused = opened.filter((o) => o.status === 'rejected');
        expect(refused.length).toBeGreaterThan(0);
        for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ status: 429 });
      } finally {
        await client.close();
        // The backend frees the slots once it sees the streams end; the next test needs one from this address.
        await waitUntil(async () => (await openSessions(target().backendUrl)) <= before, 10_000, 'the sessions closed at the backend');
      }
    });

    it('drops a peer that stops answering pings (heartbeat)', async () => {
      const { url, backendUrl } = target();
      const before = await limitHits(backendUrl, 'heartbeat');
      const socket = net.connect(Number(new URL(url).port), '127.0.0.1');
      socket.on('error', () => {});
      const jwt = await token({});
      socket.write(
        'GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${jwt}\r\n\r\n`,
      );
      let head = '';
      socket.on('data', (d) => (head += d.toString('latin1'))); // reads, but never answers a ping
      await new Promise<void>((r) => socket.once('close', () => r()));
      expect(head).toMatch(/^HTTP\/1\.1 101/);
      expect(await limitHits(backendUrl, 'heartbeat')).toBeGreaterThan(before);
    });
  });
}

describe('security, direct to a backend', () => {
  let backend: Backend;
  let url: string;
  beforeAll(async () => {
    backend = await startBackend(defaults(backendSchema, { id: 'sec', port: 0, ...LIMITS }));
    url = `http://127.0.0.1:${backend.port}`;
  });
  afterAll(async () => {
    await backend?.close();
  });

  handshakeAndSessionLimits(() => ({ url, backendUrl: url }));

  it('closes a slow consumer with 1008 once its unsent bytes pass the high-water mark', async () => {
    // Its own backend without heartbeat: a client that stops reading also stops answering pings.
    const quiet = await startBackend(defaults(backendSchema, { id: 'slow', port: 0, slowConsumerBytes: 256 * 1024, pingIntervalMs: 0 }));
    const client = new H1Client(`http://127.0.0.1:${quiet.port}`);
    const hits = async () => Number(/ws_limit_hits_total\{[^}]*limit="slow_consumer"[^}]*\} (\d+)/.exec(await quiet.metrics.registry.metrics())?.[1] ?? 0);
    try {
      const s = await client.open('/echo');
      s.ws.pause(); // stop reading: the echoes pile up in the backend
      const done = closed(s.ws);
      for (let i = 0; i < 16; i++) s.ws.send(Buffer.alloc(512 * 1024));
      await new Promise((r) => setTimeout(r, 1_500));
      s.ws.resume();
      expect((await done).code).toBe(1008);
      expect(await hits()).toBeGreaterThan(0);
    } finally {
      await client.close();
      await quiet.close();
    }
  });

  it("the per-IP key is the front's entry of X-Forwarded-For (the last), never the client's own", () => {
    expect(clientAddress(undefined, '10.0.0.9')).toBe('10.0.0.9');
    expect(clientAddress('127.0.0.1', '10.0.0.9')).toBe('127.0.0.1');
    // Both fronts now send one entry; a front that appended to the client's header (as both did, and
    // as a front configured otherwise would) still gives the last entry (Node joins repeated headers
    // with ", "; an array when it is kept apart).
    expect(clientAddress('6.6.6.6,192.0.2.2', '10.0.0.9')).toBe('192.0.2.2');
    expect(clientAddress('6.6.6.6, 127.0.0.1', '10.0.0.9')).toBe('127.0.0.1');
    expect(clientAddress(['6.6.6.6', '127.0.0.1'], '10.0.0.9')).toBe('127.0.0.1');
    expect(clientAddress(' , ', undefined)).toBe('unknown');
  });
});

describeEachFront('security through the front', (frontName) => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    // One backend: the room-size limit is per backend (no room bus here), and every limit hit is counted in one place.
    stack = await startTestStack({ front: frontName, roomBus: 'none', ...LIMITS }, 1);
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  handshakeAndSessionLimits(() => ({ url: stack.front.url, backendUrl: stack.backends[0]!.url }));

  it('a client that sends its own X-Forwarded-For is still held to its per-IP limit', async () => {
    // Both fronts hand the backend one X-Forwarded-For entry, the address they saw. HAProxy also
    // refuses past the limit itself (no backend sees those); behind Envoy the backend refuses.
    const before = await limitHits(stack.backends[0]!.url, 'per_ip');
    const client = new H1Client(stack.front.url);
    try {
      const a = await bearer({ rooms: '*' });
      const opened = await Promise.allSettled(
        Array.from({ length: 60 }, (_, i) => client.open('/echo', { headers: { ...a.headers, 'x-forwarded-for': `10.9.${i >> 8}.${i & 255}` } })),
      );
      const refused = opened.filter((o) => o.status === 'rejected');
      expect(refused.length).toBeGreaterThan(0);
      for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ status: 429 });
      expect(await limitHits(stack.backends[0]!.url, 'per_ip')).toBe(before + (frontName === 'haproxy' ? 0 : refused.length));
    } finally {
      await client.close();
    }
  });
});

describe('the gateway refuses to serve a non-loopback address without auth', () => {
  it('exits 2 naming the field, unless --insecure', async () => {
    const out = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(process.execPath, ['--import', 'tsx', 'gateway/main.ts', '--host', '0.0.0.0'], { env: { ...process.env, LOG_FORMAT: 'json' } }, (err, _stdout, stderr) =>
        resolve({ code: err ? Number(err.code) : 0, stderr }),
      ),
    );
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/field "host".*JWT_SECRET.*--insecure/);
  });
});
