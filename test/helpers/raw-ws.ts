import { randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';

// Hand-made WebSocket frames over a raw HTTP/1.1 Upgrade or a raw RFC 8441 stream, for hostile-input
// tests: every field of the frame header is ours to get wrong.

export interface FrameSpec {
  fin?: boolean;
  rsv?: number; // 0..7 → RSV1..RSV3 bits
  opcode: number;
  payload?: Buffer;
  mask?: boolean;
  /** Claimed length, when it should differ from the payload (e.g. a 64-bit length with the MSB set). */
  length64?: bigint;
}

export function frame(spec: FrameSpec): Buffer {
  const payload = spec.payload ?? Buffer.alloc(0);
  const mask = spec.mask ?? true;
  const b0 = ((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | (spec.opcode & 0x0f);
  let header: Buffer;
  if (spec.length64 !== undefined) {
    header = Buffer.alloc(10);
    header[1] = (mask ? 0x80 : 0) | 127;
    header.writeBigUInt64BE(spec.length64, 2);
  } else if (payload.length < 126) {
    header = Buffer.alloc(2);
    header[1] = (mask ? 0x80 : 0) | payload.length;
  } else if (payload.length < 65536) {
    header = Buffer.alloc(4);
    header[1] = (mask ? 0x80 : 0) | 126;
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = (mask ? 0x80 : 0) | 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  header[0] = b0;
  if (!mask) return Buffer.concat([header, payload]);
  const key = randomBytes(4);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i]! ^= key[i % 4]!;
  return Buffer.concat([header, key, masked]);
}

export const closePayload = (code: number, reason: Buffer | string = '') =>
  Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.isBuffer(reason) ? reason : Buffer.from(reason)]);

/** Read server frames until a close frame (→ its code) or the end of the stream (→ 1006). */
export function serverCloseCode(stream: Duplex, head: Buffer = Buffer.alloc(0), timeoutMs = 10_000): Promise<number> {
  return new Promise((resolve) => {
    let buf = head;
    const done = (code: number) => {
      clearTimeout(timer);
      stream.off('data', onData);
      resolve(code);
      stream.destroy();
    };
    const timer = setTimeout(() => done(-1), timeoutMs);
    const parse = () => {
      while (buf.length >= 2) {
        let len = buf[1]! & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        if (buf.length < off + len) return;
        const opcode = buf[0]! & 0x0f;
        const payload = buf.subarray(off, off + len);
        buf = buf.subarray(off + len);
        if (opcode === 8) return done(payload.length >= 2 ? payload.readUInt16BE(0) : 1005);
      }
    };
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      parse();
    };
    stream.on('data', onData);
    stream.once('close', () => done(1006));
    stream.once('end', () => done(1006));
    stream.on('error', () => {});
    parse();
  });
}

/** A raw HTTP/1.1 Upgrade; resolves with the socket after the 101 (or the status line it got instead, or 0 for none). */
export function rawH1(port: number, path = '/echo', extraHeaders = ''): Promise<{ status: number; socket: net.Socket; head: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    socket.on('error', reject);
    socket.on('connect', () =>
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`,
      ),
    );
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(buf.subarray(0, end).toString('latin1'))?.[1] ?? 0);
      resolve({ status, socket, head: buf.subarray(end + 4) });
    };
    socket.on('data', onData);
    // Closed before a status line (e.g. the server process died): status 0, not a hang.
    socket.once('close', () => resolve({ status: 0, socket, head: buf }));
  });
}

/** The peer's SETTINGS arrived; a refused or dropped connection fails at once instead of hanging. */
function connected(session: http2.ClientHttp2Session, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    session.once('remoteSettings', () => resolve());
    session.once('close', () => reject(new Error(`no HTTP/2 connection to 127.0.0.1:${port}`)));
  });
}

/** A raw RFC 8441 stream; resolves with the stream after the response headers. */
export async function rawH2(port: number, path = '/echo', headers: http2.OutgoingHttpHeaders = {}): Promise<{ status: number; stream: http2.ClientHttp2Stream; session: http2.ClientHttp2Session }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  await connected(session, port);
  const stream = session.request(
    { ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http', ':path': path, 'sec-websocket-version': '13', ...headers },
    { endStream: false },
  );
  stream.on('error', () => {});
  const status = await new Promise<number>((resolve) => {
    stream.once('response', (h) => resolve(Number(h[':status'])));
    stream.once('close', () => resolve(0));
  });
  stream.once('close', () => session.close());
  return { status, stream, session };
}

/** Send `request` as is on a fresh connection; resolves with the status of the answer, 0 when closed without one. */
export function rawRequest(port: number, request: string): Promise<number> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(buf);
      if (m) {
        socket.destroy();
        resolve(Number(m[1]));
      }
    });
    socket.on('error', () => resolve(0));
    socket.on('close', () => resolve(0));
  });
}

/** One plain HTTP/2 request (h2c prior knowledge) with `:path` as is; resolves with its status, 0 when the stream is reset. */
export async function rawH2Request(port: number, path: string, method = 'GET'): Promise<number> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  try {
    await connected(session, port);
    const stream = session.request({ ':method': method, ':scheme': 'http', ':authority': 'x', ':path': path });
    stream.on('error', () => {});
    stream.resume();
    return await new Promise<number>((resolve) => {
      stream.once('response', (h) => resolve(Number(h[':status'])));
      stream.once('close', () => resolve(0));
    });
  } finally {
    session.close();
  }
}
