import http2 from 'node:http2';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { rawH1, serverCloseCode } from './raw-ws.js';

// One WebSocket session for the limit attacks, the same shape over HTTP/1.1 and RFC 8441: raw frame
// bytes out, and the choice of not reading at all. A non-reading HTTP/2 stream is left paused: Node
// takes in what fits its stream buffer and then stops consuming, so it sends no WINDOW_UPDATE and
// the peer's window for the stream (and, across streams, for the connection) runs down to zero. A
// non-reading HTTP/1.1 session pauses its socket, so the kernel's buffers fill first.
// (Announcing SETTINGS_INITIAL_WINDOW_SIZE 0 and raising it later does not work through HAProxy 2.6:
// the stream's window stayed at 0 after the second SETTINGS.)

export type Transport = 'h1' | 'h2';

export interface AttackSession {
  readonly transport: Transport;
  /** The handshake's answer: 101 (h1) or 200 (h2); anything else, and nothing else works. */
  readonly status: number;
  /** Writes raw frame bytes; resolves once they are handed to the socket/stream, or it is gone. */
  write(bytes: Buffer): Promise<void>;
  /** The transport under the session is closed (socket closed, or stream closed/reset). */
  ended(): boolean;
  /** The RST_STREAM code of an h2 stream the peer reset; undefined otherwise. */
  rstCode(): number | undefined;
  /**
   * Starts reading (opens the window / resumes the socket) and resolves with the close code of the
   * server's close frame; 1006 when the session ends without one; -1 when it neither closes nor ends.
   */
  closeCode(timeoutMs?: number): Promise<number>;
  destroy(): void;
}

const CONNECT_HEADERS = { ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http', 'sec-websocket-version': '13' };

/** Opens `count` sessions to `path`; all h2 ones share one HTTP/2 connection (as a front's would). */
export async function openAttackSessions(port: number, transport: Transport, path: string, count: number, opts: { reading: boolean }): Promise<AttackSession[]> {
  if (transport === 'h1') return Promise.all(Array.from({ length: count }, () => openH1(port, path, opts.reading)));
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    session.once('remoteSettings', () => resolve());
    session.once('close', () => reject(new Error(`no HTTP/2 connection to 127.0.0.1:${port}`)));
  });
  const sessions = await Promise.all(Array.from({ length: count }, () => openH2Stream(session, path)));
  if (opts.reading) for (const s of sessions) void s.closeCode(120_000);
  let left = sessions.length;
  for (const s of sessions) s.onEnd(() => --left === 0 && session.close());
  return sessions;
}

export async function openAttackSession(port: number, transport: Transport, path: string, opts: { reading: boolean }): Promise<AttackSession> {
  return (await openAttackSessions(port, transport, path, 1, opts))[0]!;
}

async function openH1(port: number, path: string, reading: boolean): Promise<AttackSession> {
  const { status, socket, head } = await rawH1(port, path);
  // rawH1 has taken its listener off: nothing reads until closeCode() (a paused socket keeps its data).
  socket.pause();
  socket.setNoDelay(true);
  let code: Promise<number> | undefined;
  const read = (timeoutMs: number) => {
    if (code) return code;
    if (socket.destroyed) return (code = Promise.resolve(1006));
    code = serverCloseCode(socket, head, timeoutMs);
    socket.resume(); // a 'data' listener does not restart a socket paused by hand
    return code;
  };
  if (reading) void read(120_000);
  return {
    transport: 'h1',
    status,
    write: (bytes) => writeTo(socket, bytes),
    ended: () => socket.destroyed,
    rstCode: () => undefined,
    closeCode: (timeoutMs = 15_000) => read(timeoutMs),
    destroy: () => socket.destroy(),
  };
}

async function openH2Stream(session: http2.ClientHttp2Session, path: string): Promise<AttackSession & { onEnd(fn: () => void): void }> {
  const stream = session.request({ ...CONNECT_HEADERS, ':path': path }, { endStream: false });
  stream.on('error', () => {});
  const status = await new Promise<number>((resolve) => {
    stream.once('response', (h) => resolve(Number(h[':status'])));
    stream.once('close', () => resolve(0));
  });
  let code: Promise<number> | undefined;
  const read = (timeoutMs: number) => {
    if (code) return code;
    // Reset with nothing to read: its 'end' may have passed while a write of ours still pended.
    if (stream.destroyed || stream.readableEnded) {
      stream.destroy();
      return (code = Promise.resolve(1006));
    }
    return (code = serverCloseCode(stream, Buffer.alloc(0), timeoutMs));
  };
  return {
    transport: 'h2',
    status,
    write: (bytes) => writeTo(stream, bytes, () => stream.closed || stream.destroyed),
    ended: () => stream.closed || stream.destroyed,
    rstCode: () => (stream.closed ? stream.rstCode : undefined),
    closeCode: (timeoutMs = 15_000) => read(timeoutMs),
    destroy: () => stream.destroy(),
    onEnd: (fn) => stream.once('close', fn),
  };
}

/**
 * Resolves once `bytes` are written or the target is gone. A reset h2 stream that has data nobody
 * read is `closed` but emits 'close' only once that data is consumed, and never calls back a write
 * still pending: `gone()` is polled for it.
 */
function writeTo(target: net.Socket | Duplex, bytes: Buffer, gone: () => boolean = () => target.destroyed): Promise<void> {
  if (gone() || target.writableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    const poll = setInterval(() => gone() && done(), 50);
    function done() {
      clearInterval(poll);
      target.off('close', done);
      resolve();
    }
    target.once('close', done);
    target.write(bytes, done);
  });
}
