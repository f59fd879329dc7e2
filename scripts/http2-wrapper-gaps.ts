// What http2-wrapper's Agent, on its own, gets wrong for an RFC 8441 WebSocket client: one
// reproduction per gap, each against a bare node:http2 peer, printing what happened.
// `npx tsx scripts/http2-wrapper-gaps.ts`. client/extended-connect-pool.ts puts each right, and
// test/extended-connect-pool.test.ts checks it does.

import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { Agent, type PromiseListeners } from 'http2-wrapper';

interface Peer {
  port: number;
  sessions: Set<http2.ServerHttp2Session>;
  stop(): void;
}

/** Answers every stream 200 and keeps it open, as a WebSocket stays. */
async function peer(settings: http2.Settings): Promise<Peer> {
  const server = http2.createServer({ settings });
  const p: Peer = { port: 0, sessions: new Set(), stop: () => {} };
  server.on('session', (s) => p.sessions.add(s.on('error', () => {})));
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  p.port = (server.address() as AddressInfo).port;
  p.stop = () => {
    for (const s of p.sessions) s.destroy();
    server.close();
  };
  return p;
}

const CONNECT: http2.OutgoingHttpHeaders = { ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http', ':path': '/echo', 'sec-websocket-version': '13' };
const plain = (origin: URL) => net.connect(Number(origin.port), origin.hostname);
/** A plain socket named like a TLS one, so the Agent's origin set matches (the pool's h2c fix). */
const named = (origin: URL) => Object.assign(plain(origin), { servername: origin.hostname });
const answer = (s: http2.ClientHttp2Stream) =>
  new Promise<string>((resolve) => {
    s.once('response', () => resolve('200'));
    s.once('close', () => resolve(`reset ${s.rstCode}`));
    setTimeout(() => resolve('no answer in 1 s'), 1_000).unref();
  });
const sessionsOf = (agent: Agent) => Object.values(agent.sessions).flat().length;

async function h2cNeverReused(): Promise<string> {
  const p = await peer({ enableConnectProtocol: true });
  const agent = new Agent();
  for (let i = 0; i < 3; i++) await agent.request(`http://127.0.0.1:${p.port}`, { createConnection: plain }, CONNECT);
  const result = `3 CONNECTs one after the other over h2c → ${sessionsOf(agent)} TCP connections (origin set of a plain socket: https://undefined:<port>)`;
  agent.destroy();
  p.stop();
  return result;
}

async function getSessionOverbooks(): Promise<string> {
  const p = await peer({ enableConnectProtocol: true, maxConcurrentStreams: 5 });
  const agent = new Agent();
  const origin = `https://127.0.0.1:${p.port}`;
  const got = await Promise.all(Array.from({ length: 8 }, () => agent.getSession(origin, { createConnection: named })));
  const answers = await Promise.all(got.map((s) => answer(s.request(CONNECT))));
  agent.destroy();
  p.stop();
  const silent = answers.filter((a) => a !== '200').length;
  return `8 × await getSession() with SETTINGS_MAX_CONCURRENT_STREAMS 5 → ${new Set(got).size} session, ${silent} CONNECTs held back by nghttp2 for good (${answers.join(', ')})`;
}

async function singleListenerIgnored(): Promise<string> {
  const p = await peer({ enableConnectProtocol: true });
  const agent = new Agent();
  let called = false;
  const listener: PromiseListeners = { resolve: () => (called = true), reject: () => (called = true) };
  await agent.getSession(`https://127.0.0.1:${p.port}`, { createConnection: named }, listener);
  await new Promise((r) => setTimeout(r, 300));
  agent.destroy();
  p.stop();
  return `getSession(origin, options, listener) as typed and documented (one object) → listener called: ${called}; only an array works`;
}

async function goawayKeepsServing(): Promise<string> {
  const p = await peer({ enableConnectProtocol: true });
  const agent = new Agent();
  const origin = `https://127.0.0.1:${p.port}`;
  const old = await agent.request(origin, { createConnection: named }, CONNECT);
  await answer(old);
  for (const s of p.sessions) s.goaway(http2.constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1);
  await new Promise((r) => old.session!.once('goaway', r));
  const outcomes: string[] = [];
  for (let i = 0; i < 3; i++) {
    outcomes.push(await agent.request(origin, { createConnection: named }, CONNECT).then(() => 'opened', (e: NodeJS.ErrnoException) => e.code ?? e.message));
  }
  agent.destroy();
  p.stop();
  return `GOAWAY(NO_ERROR) while one WebSocket stream stays open → next 3 requests: ${outcomes.join(', ')} (the Agent hands out the closed session until its last stream ends)`;
}

async function protocolSentAnyway(): Promise<string> {
  const p = await peer({});
  const agent = new Agent();
  const s = await agent.request(`https://127.0.0.1:${p.port}`, { createConnection: named }, CONNECT);
  s.on('error', () => {});
  const a = await answer(s);
  const received = [...p.sessions][0]!.state.lastProcStreamID;
  agent.destroy();
  p.stop();
  // nghttp2 on the peer resets it before any 'stream' event: the stream id it processed tells.
  return `peer without SETTINGS_ENABLE_CONNECT_PROTOCOL → the CONNECT with :protocol is sent anyway (peer received stream ${received}, answered ${a} = PROTOCOL_ERROR)`;
}

async function noSettingsTimeout(): Promise<string> {
  const silent = net.createServer((socket) => socket.on('error', () => {}).resume());
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const agent = new Agent();
  let state = 'pending';
  agent.request(`https://127.0.0.1:${(silent.address() as AddressInfo).port}`, { createConnection: named }, CONNECT).then(
    () => (state = 'opened'),
    (e: Error) => (state = `rejected: ${e.message}`),
  );
  await new Promise((r) => setTimeout(r, 2_000));
  agent.destroy();
  silent.close();
  return `a peer that never sends SETTINGS → request still ${state} after 2 s (no SETTINGS timeout; Agent's \`timeout\` is an idle timeout)`;
}

async function windowDefaults(): Promise<string> {
  const p = await peer({ enableConnectProtocol: true });
  const agent = new Agent();
  const s = await agent.request(`https://127.0.0.1:${p.port}`, { createConnection: named }, CONNECT);
  await answer(s);
  const seen = [...p.sessions][0]!.remoteSettings.initialWindowSize;
  const connectionWindow = s.session!.state.effectiveLocalWindowSize;
  agent.destroy();
  p.stop();
  return `without \`settings\` → the Agent announces a ${seen} B window per stream; with or without, it raises every session's connection window to ${connectionWindow} B`;
}

for (const [name, run] of [
  ['h2c', h2cNeverReused],
  ['stream count', getSessionOverbooks],
  ['listener', singleListenerIgnored],
  ['GOAWAY', goawayKeepsServing],
  ['RFC 8441 SETTINGS', protocolSentAnyway],
  ['SETTINGS timeout', noSettingsTimeout],
  ['windows', windowDefaults],
] as const) {
  console.log(`${name}: ${await run()}`);
}
