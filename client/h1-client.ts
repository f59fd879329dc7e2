import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import { ConnectionError, HandshakeRejectedError } from '../lib/errors.js';
import { deliverAfterResolve, type ClientStats, type OpenSessionOptions, type WsClient, type WsSession } from './types.js';

export interface H1ClientOptions {
  /** CA certificate(s) (PEM) to trust for wss:// in addition to the system store. */
  ca?: string | Buffer;
  maxPayload?: number;
  handshakeTimeoutMs?: number;
  /** The local address to connect from, on a host with several (a front counts per client address). */
  localAddress?: string;
}

/** Classic HTTP/1.1 Upgrade client on plain `ws`: one TCP connection per session. */
export class H1Client implements WsClient {
  readonly transport = 'h1' as const;
  readonly #base: URL;
  readonly #options: H1ClientOptions;
  readonly #open = new Set<WebSocket>();
  #opened = 0;

  constructor(url: string | URL, options: H1ClientOptions = {}) {
    this.#base = new URL(url);
    this.#base.protocol = this.#base.protocol === 'https:' || this.#base.protocol === 'wss:' ? 'wss:' : 'ws:';
    this.#options = options;
  }

  open(path: string, options: OpenSessionOptions = {}): Promise<WsSession> {
    const url = new URL(path, this.#base);
    const ws = new WebSocket(url, [...(options.protocols ?? [])], {
      headers: options.headers,
      maxPayload: this.#options.maxPayload ?? 100 * 1024 * 1024,
      handshakeTimeout: this.#options.handshakeTimeoutMs ?? 10_000,
      ca: this.#options.ca,
      perMessageDeflate: false,
      ...(this.#options.localAddress && { localAddress: this.#options.localAddress }),
    });
    this.#opened++;
    this.#open.add(ws);
    ws.once('close', () => this.#open.delete(ws));
    return new Promise<WsSession>((resolve, reject) => {
      let response: IncomingMessage | undefined;
      ws.once('upgrade', (res) => (response = res));
      ws.once('unexpected-response', (_req, res) => {
        this.#open.delete(ws);
        res.resume();
        ws.on('error', () => {});
        ws.terminate();
        reject(new HandshakeRejectedError(res.statusCode ?? 0, path));
      });
      const onError = (err: Error) => {
        this.#open.delete(ws);
        reject(new ConnectionError(`HTTP/1.1 WebSocket to ${url.href} failed: ${err.message}`, err));
      };
      ws.once('error', onError);
      ws.once('open', () => {
        ws.off('error', onError);
        // Without an 'error' listener a malformed frame would crash the process; 'close' still reports it.
        ws.on('error', () => {});
        const backend = response?.headers['x-backend-id'];
        deliverAfterResolve(
          {
            ws,
            transport: 'h1',
            backendId: typeof backend === 'string' ? backend : undefined,
            protocol: ws.protocol,
            headers: response?.headers ?? {},
            localPort: response?.socket.localPort,
          },
          resolve,
        );
      });
    });
  }

  stats(): ClientStats {
    return { connections: this.#open.size, openStreams: this.#open.size, connectionsOpened: this.#opened };
  }

  async close(): Promise<void> {
    for (const ws of this.#open) ws.terminate();
    this.#open.clear();
  }
}
