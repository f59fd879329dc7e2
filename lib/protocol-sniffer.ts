import net from 'node:net';
import tls from 'node:tls';

// One port, three protocols. Node's plain `http2.createServer()` speaks only HTTP/2 and `http`
// only HTTP/1.1, so a plain port that serves both (like HAProxy's and Envoy's `codec_type: AUTO`)
// needs a net server that looks at the first bytes and hands the socket on:
//   "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  → HTTP/2 prior knowledge (h2c)
//   0x16 (TLS handshake record)        → TLS, then ALPN picks h2 or http/1.1
//   anything else                      → HTTP/1.1

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const TLS_HANDSHAKE = 0x16;

export interface SniffTargets {
  h1: net.Server;
  h2: net.Server;
  /** When set, TLS connections are terminated and dispatched by ALPN. */
  tls?: tls.SecureContextOptions;
  /** Sockets that never send a first byte are dropped after this long. */
  firstByteTimeoutMs?: number;
}

export type Dispatch = 'h1' | 'h2' | 'tls' | 'need-more';

function classify(head: Buffer): Dispatch {
  if (head.length === 0) return 'need-more';
  if (head[0] === TLS_HANDSHAKE) return 'tls';
  const n = Math.min(head.length, H2_PREFACE.length);
  if (head.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return n === H2_PREFACE.length ? 'h2' : 'need-more';
  return 'h1';
}

export function createSniffingServer(targets: SniffTargets): net.Server {
  const tlsServer = targets.tls
    ? tls.createServer({ ...targets.tls, ALPNProtocols: ['h2', 'http/1.1'], handshakeTimeout: targets.firstByteTimeoutMs ?? 10_000 }, (socket) => {
        (socket.alpnProtocol === 'h2' ? targets.h2 : targets.h1).emit('connection', socket);
      })
    : undefined;
  tlsServer?.on('tlsClientError', (_err, socket) => socket.destroy());

  return net.createServer({ noDelay: true }, (socket) => {
    let head: Buffer = Buffer.alloc(0);
    socket.setTimeout(targets.firstByteTimeoutMs ?? 10_000, () => socket.destroy());
    const onError = () => socket.destroy();
    socket.on('error', onError);
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const kind = classify(head);
      if (kind === 'need-more') return;
      socket.off('data', onData);
      socket.off('error', onError);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(head);
      if (kind === 'tls') {
        if (!tlsServer) return void socket.destroy();
        tlsServer.emit('connection', socket);
      } else if (kind === 'h2') {
        // Http2Session reads whatever is already buffered on the socket (node#35475).
        targets.h2.emit('connection', socket);
      } else {
        // The HTTP/1.1 parser consumes the handle directly; the bytes we unshifted reach it as 'data'.
        targets.h1.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
  });
}
