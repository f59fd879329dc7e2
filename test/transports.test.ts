import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { startBackend, type Backend } from '../backend/server.js';
import { H1Client, MuxClient } from '../client/index.js';
import { HaproxyFront } from '../gateway/haproxy/front.js';
import { assertPortFree } from '../lib/ports.js';
import { backendSchema, defaults, gatewaySchema } from '../lib/config.js';
import { createSniffingServer } from '../lib/protocol-sniffer.js';
import { describeEachFront } from './helpers/front-matrix.js';
import { echo, jsonInbox, startTestStack } from './helpers/stack.js';
import { selfSignedCert } from './helpers/tls.js';

describe('backend over TLS (ALPN h2 and http/1.1 on the same port as plaintext)', () => {
  let backend: Backend;
  let ca: Buffer;
  beforeAll(async () => {
    const { cert, key } = selfSignedCert();
    ca = readFileSync(cert);
    backend = await startBackend(defaults(backendSchema, { id: 'tls1', port: 0, tlsCert: cert, tlsKey: key }));
  });
  afterAll(async () => {
    await backend?.close();
  });

  it('serves h2 over TLS, HTTP/1.1 over TLS and h2c on one port', async () => {
    const clients = [
      new MuxClient(`https://127.0.0.1:${backend.port}`, { ca }),
      new H1Client(`https://127.0.0.1:${backend.port}`, { ca }),
      new MuxClient(`http://127.0.0.1:${backend.port}`),
    ];
    try {
      for (const client of clients) {
        const s = await client.open('/echo');
        expect(s.backendId).toBe('tls1');
        expect(await echo(s.ws, `over ${client.transport}`)).toBe(`over ${client.transport}`);
      }
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  it('verifies certificates by default', async () => {
    const client = new MuxClient(`https://127.0.0.1:${backend.port}`);
    try {
      await expect(client.open('/echo')).rejects.toMatchObject({ code: 'GW_ERR_CONNECTION', message: /self-signed/ });
    } finally {
      await client.close();
    }
  });
});

describeEachFront('TLS at the front (ALPN h2 and http/1.1)', (front) => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    stack = await startTestStack({ front, roomBus: 'none' });
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  it('negotiates h2 for MuxClient and http/1.1 for a wss:// client, with a self-signed cert made on first start', async () => {
    expect(stack.frontTlsUrl).toMatch(/^https:/);
    const ca = readFileSync(stack.caFile!);
    const mux = new MuxClient(stack.frontTlsUrl!, { ca });
    const h1 = new H1Client(stack.frontTlsUrl!, { ca });
    try {
      const viaH2 = jsonInbox((await mux.open('/chat/tls')).ws);
      const viaH1 = jsonInbox((await h1.open('/chat/tls')).ws);
      expect((await viaH2.next('welcome')).transport).toBe('h2');
      expect((await viaH1.next('welcome')).transport).toBe('h1');
      expect(mux.stats().connections).toBe(1);
    } finally {
      await Promise.all([mux.close(), h1.close()]);
    }
  });

  it('refuses the self-signed certificate without the CA (verification on by default)', async () => {
    const mux = new MuxClient(stack.frontTlsUrl!);
    const h1 = new H1Client(stack.frontTlsUrl!);
    try {
      await expect(mux.open('/echo')).rejects.toMatchObject({ code: 'GW_ERR_CONNECTION', message: /self-signed|certificate/ });
      await expect(h1.open('/echo')).rejects.toMatchObject({ code: 'GW_ERR_CONNECTION', message: /self-signed|certificate/ });
    } finally {
      await Promise.all([mux.close(), h1.close()]);
    }
  });
});

describe('MuxClient against a peer without RFC 8441', () => {
  let server: ReturnType<typeof createSniffingServer>;
  let url: string;
  beforeAll(async () => {
    // An HTTP/2 server that does NOT send SETTINGS_ENABLE_CONNECT_PROTOCOL, plus plain ws on HTTP/1.1.
    const h2 = http2.createServer();
    h2.on('stream', (s) => s.close(http2.constants.NGHTTP2_REFUSED_STREAM));
    const h1 = http.createServer();
    const wss = new WebSocketServer({ server: h1 });
    wss.on('connection', (ws) => ws.on('message', (d, bin) => ws.send(d as Buffer, { binary: bin })));
    server = createSniffingServer({ h1, h2 });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.close();
  });

  it('refuses with GW_ERR_NO_EXTENDED_CONNECT by default', async () => {
    const client = new MuxClient(url);
    await expect(client.open('/echo')).rejects.toMatchObject({ code: 'GW_ERR_NO_EXTENDED_CONNECT' });
    await client.close();
  });

  it('falls back to HTTP/1.1 Upgrade when asked to', async () => {
    const client = new MuxClient(url, { fallbackToH1: true });
    try {
      const s = await client.open('/echo');
      expect(s.transport).toBe('h1');
      expect(client.usingFallback).toBe(true);
      expect(await echo(s.ws, 'fallback')).toBe('fallback');
    } finally {
      await client.close();
    }
  });
});

describe('start-up errors name the problem', () => {
  it('a missing haproxy binary says how to install it', async () => {
    const settings = { ...defaults(gatewaySchema, { haproxyBin: '/nonexistent/haproxy', frontPort: 0, haproxyStatsPort: 0 }), upstreamProtocol: 'h1' as const };
    await expect(new HaproxyFront(settings, []).start()).rejects.toMatchObject({
      code: 'GW_ERR_MISSING_TOOL',
      message: /apt-get install -y haproxy/,
    });
  });

  it('a taken port is refused before HAProxy could silently share it (SO_REUSEPORT)', async () => {
    const holder = http.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as AddressInfo).port;
    try {
      await expect(assertPortFree('127.0.0.1', port, 'front')).rejects.toMatchObject({ code: 'GW_ERR_PORT_IN_USE' });
    } finally {
      holder.close();
    }
  });
});
