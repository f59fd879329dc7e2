// The bench's floor, NOT the product: the least a WebSocket echo server can be with `ws` — no
// auth, origin or per-IP checks, no rate limit, no metrics, no rooms, no logging — on HTTP/1.1
// Upgrade and RFC 8441 on one port, as backend/server.ts serves them. The `reference` route runs
// the bench's scenarios against it beside `direct` (the project's backend), so "backend
// efficiency = backend / bare ws" is measured in the same run, on the same machine, alternated.
//
//   node --import tsx bench/reference-server.ts --port N [--host 127.0.0.1]
import http from 'node:http';
import http2 from 'node:http2';
import { parseArgs } from 'node:util';
import { WebSocketServer, type WebSocket } from 'ws';
import { WS_RECEIVE_DEFAULTS } from '../lib/config.js';
import { createSniffingServer } from '../lib/protocol-sniffer.js';
import { acceptExtendedConnect } from '../lib/ws-h2-adapter.js';

const { values } = parseArgs({ options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } } });
const port = Number(values.port);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node --import tsx bench/reference-server.ts --port N [--host H]\n');
  process.exit(2);
}

const ID = { 'x-backend-id': 'ref' };
const MAX_PAYLOAD = 1024 * 1024;
let sessions = 0;

function echo(ws: WebSocket): void {
  sessions++;
  ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
  ws.once('close', () => sessions--);
}

const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PAYLOAD });
wss.on('headers', (headers) => headers.push('x-backend-id: ref'));
const h1 = http.createServer((req, res) => {
  // /healthz: the bench waits for sessions to leave between runs.
  res.writeHead(req.url === '/healthz' ? 200 : 426, { 'content-type': 'application/json', ...ID });
  res.end(JSON.stringify({ status: 'ok', backend: 'ref', sessions }));
});
h1.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, echo));

const h2 = http2.createServer({ settings: { enableConnectProtocol: true, maxConcurrentStreams: 1_000_000 } as http2.Settings });
h2.on('stream', (stream, headers) => {
  stream.on('error', () => stream.destroy());
  if (headers[':method'] !== 'CONNECT') {
    stream.respond({ ':status': 200, 'content-type': 'application/json', ...ID });
    return void stream.end(JSON.stringify({ status: 'ok', backend: 'ref', sessions }));
  }
  // What a bare ws server gives an HTTP/1.1 session by default, given here by hand (see the adapter).
  const result = acceptExtendedConnect(stream, headers, { responseHeaders: ID, limits: { ...WS_RECEIVE_DEFAULTS, maxPayload: MAX_PAYLOAD } });
  if (result.ok) echo(result.ws);
});

createSniffingServer({ h1, h2 }).listen(port, values.host, () => process.stdout.write(`reference echo server listening on ${values.host}:${port}\n`));
process.on('SIGTERM', () => process.exit(0));
