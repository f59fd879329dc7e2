// `npm run h2-frames -- --to 127.0.0.1:8080 [--listen 8081] [--only GOAWAY,RST_STREAM] [--quiet-data]`
//
// A TCP relay that prints the HTTP/2 frames crossing it, one line per frame, both directions: point a
// client at the listen port instead of the front and watch SETTINGS, WINDOW_UPDATE, GOAWAY and
// RST_STREAM happen. It needs no root and no Wireshark (the explainers use it where tshark is not
// installed). HEADERS blocks are HPACK-coded and shown as lengths only; DATA shows its first bytes,
// which is where a WebSocket frame header is when one starts there. A connection that does not begin
// with the HTTP/2 preface (an HTTP/1.1 Upgrade) is relayed and announced, not parsed.
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { commandLine, defineCommand } from '../lib/cli.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FRAME_TYPES = ['DATA', 'HEADERS', 'PRIORITY', 'RST_STREAM', 'SETTINGS', 'PUSH_PROMISE', 'PING', 'GOAWAY', 'WINDOW_UPDATE', 'CONTINUATION'] as const;
/** RFC 9113 §7. */
export const ERROR_CODES = ['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED'] as const;
/** RFC 9113 §6.5.2, RFC 8441 §3 (8), RFC 9218 (9). */
const SETTINGS: Record<number, string> = {
  1: 'HEADER_TABLE_SIZE',
  2: 'ENABLE_PUSH',
  3: 'MAX_CONCURRENT_STREAMS',
  4: 'INITIAL_WINDOW_SIZE',
  5: 'MAX_FRAME_SIZE',
  6: 'MAX_HEADER_LIST_SIZE',
  8: 'ENABLE_CONNECT_PROTOCOL',
  9: 'NO_RFC7540_PRIORITIES',
};

export type Direction = 'client→server' | 'server→client';

export interface TappedFrame {
  /** Connection number at this tap, from 1. */
  conn: number;
  dir: Direction;
  type: string;
  stream: number;
  flags: number;
  length: number;
  /** What the frame says, decoded where the type is simple (see describe()). */
  fields: Record<string, string | number>;
  /** DATA only: the first bytes of the payload. */
  head?: Buffer;
}

export const errorName = (code: number) => ERROR_CODES[code] ?? `0x${code.toString(16)}`;

function decode(type: number, flags: number, payload: Buffer): Record<string, string | number> {
  const f: Record<string, string | number> = {};
  switch (type) {
    case 0: // DATA
    case 1: // HEADERS
      if (flags & 0x1) f.flags = 'END_STREAM';
      if (type === 1 && flags & 0x4) f.flags = [f.flags, 'END_HEADERS'].filter(Boolean).join('|');
      break;
    case 3: // RST_STREAM
      f.error = errorName(payload.readUInt32BE(0));
      break;
    case 4: // SETTINGS
      if (flags & 0x1) f.flags = 'ACK';
      for (let i = 0; i + 6 <= payload.length; i += 6) f[SETTINGS[payload.readUInt16BE(i)] ?? `0x${payload.readUInt16BE(i).toString(16)}`] = payload.readUInt32BE(i + 2);
      break;
    case 6: // PING
      if (flags & 0x1) f.flags = 'ACK';
      break;
    case 7: // GOAWAY
      f.lastStreamId = payload.readUInt32BE(0) & 0x7fffffff;
      f.error = errorName(payload.readUInt32BE(4));
      if (payload.length > 8) f.debug = payload.subarray(8, 72).toString('latin1');
      break;
    case 8: // WINDOW_UPDATE
      f.increment = payload.readUInt32BE(0) & 0x7fffffff;
      break;
  }
  return f;
}

/** One line per frame, e.g. `#1 server→client GOAWAY s=0 8 B lastStreamId=2147483647 error=NO_ERROR`. */
export function describe(frame: TappedFrame): string {
  const fields = Object.entries(frame.fields).map(([k, v]) => `${k}=${v}`);
  if (frame.head) fields.push(frame.head.toString('hex').replace(/(..)(?!$)/g, '$1 '));
  return `#${frame.conn} ${frame.dir} ${frame.type} s=${frame.stream} ${frame.length} B${fields.length ? ' ' + fields.join(' ') : ''}`;
}

/** Cuts a byte stream into HTTP/2 frames. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly emit: (type: number, flags: number, stream: number, payload: Buffer) => void) {}
  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 9) {
      const length = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + length) return;
      this.emit(this.buf[3]!, this.buf[4]!, this.buf.readUInt32BE(5) & 0x7fffffff, this.buf.subarray(9, 9 + length));
      this.buf = this.buf.subarray(9 + length);
    }
  }
}

export interface FrameTap {
  port: number;
  close(): Promise<void>;
}

export interface FrameTapOptions {
  target: { host: string; port: number };
  host?: string;
  /** 0 (the default): any free port. */
  port?: number;
  onFrame(frame: TappedFrame): void;
  /** A connection that is not HTTP/2 (its first bytes, for the announcement). */
  onOther?(conn: number, firstLine: string): void;
  /** How many DATA payload bytes to keep in `head` (default 8). */
  dataHead?: number;
}

export async function startFrameTap(options: FrameTapOptions): Promise<FrameTap> {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((client) => {
    const conn = ++connections;
    const upstream = net.connect(options.target.port, options.target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => sockets.delete(s));
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    const frameOf = (dir: Direction) => (type: number, flags: number, stream: number, payload: Buffer) =>
      options.onFrame({
        conn,
        dir,
        type: FRAME_TYPES[type] ?? `0x${type.toString(16)}`,
        stream,
        flags,
        length: payload.length,
        fields: decode(type, flags, payload),
        ...(type === 0 ? { head: Buffer.from(payload.subarray(0, options.dataHead ?? 8)) } : {}),
      });
    const fromClient = new FrameReader(frameOf('client→server'));
    const fromServer = new FrameReader(frameOf('server→client'));
    // Until the client's first bytes say what this is, the server's bytes wait to be parsed.
    let mode: 'unknown' | 'h2' | 'other' = 'unknown';
    let clientHead: Buffer = Buffer.alloc(0);
    const serverEarly: Buffer[] = [];
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      if (mode === 'h2') return fromClient.push(chunk);
      if (mode === 'other') return;
      clientHead = Buffer.concat([clientHead, chunk]);
      const n = Math.min(clientHead.length, PREFACE.length);
      if (!clientHead.subarray(0, n).equals(PREFACE.subarray(0, n))) {
        mode = 'other';
        options.onOther?.(conn, clientHead.toString('latin1').split('\r\n')[0]!.slice(0, 120));
      } else if (clientHead.length >= PREFACE.length) {
        mode = 'h2';
        fromClient.push(clientHead.subarray(PREFACE.length));
        for (const early of serverEarly.splice(0)) fromServer.push(early);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      client.write(chunk);
      if (mode === 'h2') fromServer.push(chunk);
      else if (mode === 'unknown') serverEarly.push(chunk);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const H2_FRAMES = defineCommand({
  name: 'npm run h2-frames',
  about:
    'A TCP relay that prints the HTTP/2 frames crossing it, one line per frame, both directions: point a client at ' +
    'the listen port instead of the front and watch SETTINGS, WINDOW_UPDATE, GOAWAY and RST_STREAM happen.',
  options: z.object({
    to: z.string().regex(/^.+:\d+$/, 'host:port').default('127.0.0.1:8080').describe('where to relay to (the front)'),
    listen: z.coerce.number().int().min(0).max(65535).default(8081).describe('the port clients connect to (127.0.0.1)'),
    only: z.string().optional().describe('print only these frame types, e.g. GOAWAY,RST_STREAM'),
    quietData: z.boolean().default(false).describe('leave out DATA frames'),
  }),
});

async function main(): Promise<void> {
  const { options: values } = commandLine(H2_FRAMES);
  const [host, port] = [values.to.slice(0, values.to.lastIndexOf(':')), Number(values.to.slice(values.to.lastIndexOf(':') + 1))];
  const only = values.only ? new Set(values.only.split(',').map((t) => t.trim().toUpperCase())) : undefined;
  const tap = await startFrameTap({
    target: { host, port },
    port: values.listen,
    onFrame: (f) => {
      if (only && !only.has(f.type)) return;
      if (values.quietData && f.type === 'DATA') return;
      process.stdout.write(describe(f) + '\n');
    },
    onOther: (conn, line) => process.stdout.write(`#${conn} not HTTP/2, relayed as is: ${line}\n`),
  });
  process.stderr.write(`h2-frames: 127.0.0.1:${tap.port} → ${host}:${port}; point a client at http://127.0.0.1:${tap.port}\n`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void tap.close().then(() => process.exit(0)));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: Error) => {
    process.stderr.write(`h2-frames: ${err.message}\n`);
    process.exit(1);
  });
}
