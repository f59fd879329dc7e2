import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MuxClient } from '../client/index.js';
import { acceptExtendedConnect } from '../lib/ws-h2-adapter.js';
import { WS_RECEIVE_DEFAULTS } from '../lib/config.js';
import { echo, waitUntil } from './helpers/stack.js';
import { selfSignedCert } from './helpers/tls.js';

// MuxClient's pool is http2-wrapper's Agent plus what RFC 8441 needs (client/extended-connect-pool.ts).
// Each test here is one thing the Agent gets wrong for a WebSocket client on its own, and which the
// pool puts right (scripts/http2-wrapper-gaps.ts shows the Agent alone): an http2-wrapper upgrade
// that changes the internals the fixes lean on fails here by name, not in a hot restart.

interface Peer {
  url: string;
  /** The highest stream id the peer's HTTP/2 layer received, read when the client says GOAWAY:
   *  counts streams nghttp2 reset before any 'stream' event too. */
  lastStreamId: number;
  sessions: Set<http2.ServerHttp2Session>;
  close(): Promise<void>;
}

const peers: Peer[] = [];
afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
});

/** An echoing RFC 8441 peer (node:http2), plain text or TLS. */
async function startPeer(settings: http2.Settings, tls?: { cert: Buffer; key: Buffer }, greeting?: string): Promise<Peer> {
  const server = tls ? http2.createSecureServer({ ...tls, settings }) : http2.createServer({ settings });
  const peer: Peer = { url: '', lastStreamId: 0, sessions: new Set(), close: async () => {} };
  server.on('session', (s) => {
    peer.sessions.add(s);
    s.on('error', () => {});
    s.on('goaway', () => (peer.lastStreamId = Math.max(peer.lastStreamId, s.state.lastProcStreamID ?? 0)));
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const accepted = acceptExtendedConnect(stream, headers, { limits: { ...WS_RECEIVE_DEFAULTS, maxPayload: 1024 } });
    if (!accepted.ok) return;
    accepted.ws.on('error', () => {});
    accepted.ws.on('message', (data, isBinary) => accepted.ws.send(data as Buffer, { binary: isBinary }));
    if (greeting !== undefined) accepted.ws.send(greeting);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  peer.url = `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  peer.close = async () => {
    for (const s of peer.sessions) s.destroy();
    await new Promise((r) => server.close(r));
  };
  peers.push(peer);
  return peer;
}

describe('the pool on http2-wrapper, where the Agent alone falls short', () => {
  it('reuses one h2c connection for sessions opened one after the other (the Agent alone dials one per request)', async () => {
    const peer = await startPeer({ enableConnectProtocol: true });
    const client = new MuxClient(peer.url);
    try {
      for (let i = 0; i < 5; i++) expect(await echo((await client.open('/echo')).ws, `s${i}`)).toBe(`s${i}`);
      expect(client.stats()).toMatchObject({ connections: 1, connectionsOpened: 1, openStreams: 5 });
    } finally {
      await client.close();
    }
  });

  it('every session of a storm gets the message its peer sends with the 200 (a listener attached after `await open()`)', async () => {
    const peer = await startPeer({ enableConnectProtocol: true }, undefined, 'welcome');
    const client = new MuxClient(peer.url);
    try {
      const greeted = await Promise.all(
        Array.from({ length: 50 }, async () => {
          const { ws } = await client.open('/echo');
          return new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
        }),
      );
      expect(greeted).toEqual(Array.from({ length: 50 }, () => 'welcome'));
    } finally {
      await client.close();
    }
  });

  it('over TLS to an IP address too: one connection, no RFC 6066 warning', async () => {
    const { cert, key } = selfSignedCert();
    const pem = { cert: readFileSync(cert), key: readFileSync(key) };
    const peer = await startPeer({ enableConnectProtocol: true }, pem);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    const client = new MuxClient(peer.url, { ca: pem.cert });
    try {
      for (let i = 0; i < 3; i++) expect(await echo((await client.open('/echo')).ws, `t${i}`)).toBe(`t${i}`);
      expect(client.stats()).toMatchObject({ connections: 1, connectionsOpened: 1 });
      expect(warnings.filter((w) => /ServerName/.test(w))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await client.close();
    }
  });

  it('counts long-lived streams against the peer limit: opened together, 8 sessions over a limit of 5 take two connections', async () => {
    const peer = await startPeer({ enableConnectProtocol: true, maxConcurrentStreams: 5 });
    const client = new MuxClient(peer.url);
    try {
      const sessions = await Promise.all(Array.from({ length: 8 }, () => client.open('/echo')));
      expect(await Promise.all(sessions.map((s, i) => echo(s.ws, `n${i}`)))).toEqual(sessions.map((_, i) => `n${i}`));
      expect(client.connections().map((c) => [c.streams, c.limit])).toEqual([[5, 5], [3, 5]]);
    } finally {
      await client.close();
    }
  });

  it('the same one after the other: the first connection fills to the limit, the rest go to a second; a freed slot is used again', async () => {
    const peer = await startPeer({ enableConnectProtocol: true, maxConcurrentStreams: 5 });
    const client = new MuxClient(peer.url);
    try {
      const sessions = [];
      for (let i = 0; i < 8; i++) sessions.push(await client.open('/echo'));
      expect(await Promise.all(sessions.map((s, i) => echo(s.ws, `q${i}`)))).toEqual(sessions.map((_, i) => `q${i}`));
      expect(client.connections().map((c) => [c.streams, c.limit])).toEqual([[5, 5], [3, 5]]);
      const first = sessions[0]!;
      first.ws.terminate();
      await waitUntil(() => client.connections()[0]?.streams === 4, 5_000, 'the freed slot is counted');
      const again = await client.open('/echo');
      expect(again.localPort).toBe(first.localPort);
      expect(client.connections().map((c) => c.streams)).toEqual([5, 3]);
      expect(client.stats().connectionsOpened).toBe(2);
    } finally {
      await client.close();
    }
  });

  it('GOAWAY(NO_ERROR) with sessions open: they keep echoing, the next one opens on a new connection', async () => {
    const peer = await startPeer({ enableConnectProtocol: true });
    const client = new MuxClient(peer.url);
    const goaways: number[] = [];
    client.on('goaway', (_id: number, code: number) => goaways.push(code));
    try {
      const old = await client.open('/echo');
      for (const s of peer.sessions) s.goaway(http2.constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1);
      await waitUntil(() => goaways.length > 0, 5_000, 'GOAWAY reaches the client');
      const fresh = await client.open('/echo');
      expect(fresh.localPort).not.toBe(old.localPort);
      expect(await echo(old.ws, 'old')).toBe('old');
      expect(await echo(fresh.ws, 'fresh')).toBe('fresh');
      expect(client.connections().map((c) => c.goingAway)).toEqual([true, false]);
      expect(client.stats().connectionsOpened).toBe(2);
    } finally {
      await client.close();
    }
  });

  it('a peer without ENABLE_CONNECT_PROTOCOL: GW_ERR_NO_EXTENDED_CONNECT and no stream sent (the Agent alone sends :protocol anyway)', async () => {
    const peer = await startPeer({});
    const client = new MuxClient(peer.url);
    try {
      await expect(client.open('/echo')).rejects.toMatchObject({ code: 'GW_ERR_NO_EXTENDED_CONNECT' });
      await waitUntil(() => peer.sessions.size === 1 && [...peer.sessions].every((s) => s.closed || s.destroyed), 5_000, 'the client closes that connection');
      expect(peer.lastStreamId).toBe(0);
    } finally {
      await client.close();
    }
  });

  it('a peer that never sends SETTINGS: GW_ERR_TIMEOUT (the Agent alone waits for ever)', async () => {
    // Reads (so it sees the client go) and never answers.
    const silent = net.createServer((socket) => socket.on('error', () => {}).resume());
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const client = new MuxClient(`http://127.0.0.1:${(silent.address() as AddressInfo).port}`, { settingsTimeoutMs: 200 });
    try {
      await expect(client.open('/echo')).rejects.toMatchObject({ code: 'GW_ERR_TIMEOUT', message: /SETTINGS/ });
      expect(client.stats().connections).toBe(0);
    } finally {
      await client.close();
      await new Promise((r) => silent.close(r));
    }
  });
});
