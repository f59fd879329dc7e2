import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type Backend } from '../backend/server.js';
import { H1Client, MuxClient } from '../client/index.js';
import { backendSchema, defaults } from '../lib/config.js';
import { describe as describeFrame, startFrameTap, type FrameTap, type TappedFrame } from '../scripts/h2-frames.js';
import { echo, waitUntil } from './helpers/stack.js';

// The frame relay the explainers use (npm run h2-frames): a real backend behind it, real clients in
// front; what it reports must be what crossed it.

let backend: Backend;
let tap: FrameTap;
const frames: TappedFrame[] = [];
const others: string[] = [];
beforeAll(async () => {
  backend = await startBackend(defaults(backendSchema, { id: 'bf', port: 0 }));
  tap = await startFrameTap({
    target: { host: '127.0.0.1', port: backend.port },
    onFrame: (f) => frames.push(f),
    onOther: (_conn, line) => others.push(line),
  });
});
afterAll(async () => {
  await tap?.close();
  await backend?.close();
});

const of = (dir: TappedFrame['dir'], type: string) => frames.filter((f) => f.dir === dir && f.type === type);

describe('h2-frames relay', () => {
  it('shows the server announcing RFC 8441, and a session opened, used and closed through it', async () => {
    const client = new MuxClient(`http://127.0.0.1:${tap.port}`);
    try {
      const s = await client.open('/echo');
      expect(s.backendId).toBe('bf');
      expect(of('server→client', 'SETTINGS').some((f) => f.fields.ENABLE_CONNECT_PROTOCOL === 1)).toBe(true);
      expect(of('client→server', 'HEADERS').map((f) => f.stream)).toEqual([1]);
      expect(await echo(s.ws, 'hello-h2')).toBe('hello-h2');
      // "hello-h2" masked by the client: FIN + text, mask bit + length 8.
      expect([...of('client→server', 'DATA')[0]!.head!.subarray(0, 2)]).toEqual([0x81, 0x88]);
      // ... and not masked on the way back.
      expect([...of('server→client', 'DATA')[0]!.head!.subarray(0, 2)]).toEqual([0x81, 0x08]);
    } finally {
      await client.close();
    }
    await waitUntil(() => of('client→server', 'GOAWAY').length > 0);
    expect(of('client→server', 'GOAWAY')[0]!.fields).toMatchObject({ lastStreamId: 0, error: 'NO_ERROR' });
  });

  it('a 40,000-byte message spans several DATA frames, and only the first starts with a WebSocket header', async () => {
    frames.length = 0;
    const client = new MuxClient(`http://127.0.0.1:${tap.port}`);
    try {
      const s = await client.open('/echo');
      const back = new Promise<Buffer>((r) => s.ws.once('message', (d) => r(d as Buffer)));
      s.ws.send(Buffer.alloc(40_000, 1));
      expect((await back).length).toBe(40_000);
      const out = of('client→server', 'DATA').filter((f) => f.length > 0);
      expect(out.length).toBeGreaterThan(1);
      expect(out.every((f) => f.length <= 16_384)).toBe(true);
      // 2-byte header + 16-bit length + 4-byte mask key, then the payload.
      expect(out.reduce((n, f) => n + f.length, 0)).toBe(40_000 + 8);
      expect([...out[0]!.head!.subarray(0, 4)]).toEqual([0x82, 0xfe, 0x9c, 0x40]);
      // The later frames carry masked payload bytes, not another header.
      expect(out.slice(1).every((f) => f.head![0] !== 0x82)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('a session the client drops shows up as RST_STREAM, and every line names the frame', async () => {
    frames.length = 0;
    const client = new MuxClient(`http://127.0.0.1:${tap.port}`);
    try {
      const s = await client.open('/echo');
      s.ws.terminate();
      await waitUntil(() => of('client→server', 'RST_STREAM').length > 0);
      const rst = of('client→server', 'RST_STREAM')[0]!;
      expect(rst.stream).toBe(1);
      expect(describeFrame(rst)).toMatch(/^#\d+ client→server RST_STREAM s=1 4 B error=[A-Z_]+$/);
    } finally {
      await client.close();
    }
  });

  it('relays an HTTP/1.1 Upgrade untouched and says it is not HTTP/2', async () => {
    const client = new H1Client(`http://127.0.0.1:${tap.port}`);
    try {
      const s = await client.open('/echo');
      expect(await echo(s.ws, 'hello-h1')).toBe('hello-h1');
      expect(others.some((l) => l.startsWith('GET /echo HTTP/1.1'))).toBe(true);
    } finally {
      await client.close();
    }
  });
});
