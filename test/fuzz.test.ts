import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendProcess } from '../gateway/core/backend-process.js';
import { describeEachFront, type FrontName } from './helpers/front-matrix.js';
import { closePayload, frame, rawH1, rawH2, serverCloseCode } from './helpers/raw-ws.js';
import { startTestBackend, startTestStack } from './helpers/stack.js';

// A bounded fuzz loop: random frame headers and payloads from a seeded PRNG (seed printed; replay with
// FUZZ_SEED=<n>), on both transports, direct to a backend (once) and through each front (Envoy,
// HAProxy) — the same sequence every time, so the routes can be compared. Every session must end
// with a close code RFC 6455 allows a server to send (or an echo of the client's own close code), and
// the backend must stay up.

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
const SESSIONS = 120;
const FRAMES_PER_SESSION = 12;
const BACKEND_LIMITS = { maxPayloadBytes: 64 * 1024 };

/** mulberry32: small, seedable, good enough to pick bytes. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// 1005: the client's own empty close frame echoed back (a close without a status is legal).
const ALLOWED = new Set([1000, 1001, 1002, 1003, 1005, 1007, 1008, 1009, 1011]);
/** Close codes allowed on top of ALLOWED, per route and client transport, and why. */
const ALSO_ALLOWED: Record<'direct' | FrontName, Record<'h1' | 'h2', readonly number[]>> = {
  direct: { h1: [], h2: [] },
  // Over HTTP/1.1 a few sessions end with 1006: the backend closes with 1002 and drops the socket
  // while the client is still sending, the kernel answers the unread bytes with a TCP RST, and
  // HAProxy aborts the client side before the close frame is flushed. Direct, never.
  haproxy: { h1: [1006], h2: [] },
  // Envoy flushes the backend's close frame before it closes the client's side: its sessions end
  // exactly as direct ones do for the same seed (three seeds compared, 120 sessions each).
  envoy: { h1: [], h2: [] },
};

console.info(`[fuzz] seed ${SEED} (replay: FUZZ_SEED=${SEED} npx vitest run test/fuzz.test.ts)`);

/** SESSIONS sessions of random frames to `port`; the close codes they ended with, and those not allowed. */
async function fuzz(port: number, route: 'direct' | FrontName): Promise<{ codes: Record<string, number>; unexpected: string[] }> {
  const rand = prng(SEED);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const codes: Record<string, number> = {};
  const unexpected: string[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    const h2 = rand() < 0.5;
    const path = rand() < 0.2 ? '/chat/fuzz' : '/echo';
    const opened = h2 ? await rawH2(port, path) : await rawH1(port, path);
    const stream = 'stream' in opened ? opened.stream : opened.socket;
    const head = 'head' in opened ? opened.head : Buffer.alloc(0);
    const sent: string[] = [];
    // A well-formed close frame from the client may be answered with its own status code (RFC 6455
    // §5.5.1: the reply "typically echos the status code it received"), e.g. 4338 from the 4000s.
    const echoable = new Set<number>();
    for (let k = 0; k < FRAMES_PER_SESSION; k++) {
      const size = pick([0, 1, 2, 5, 125, 126, 200, 1000, 70_000]);
      const payload = Buffer.alloc(size);
      for (let b = 0; b < Math.min(size, 64); b++) payload[b] = Math.floor(rand() * 256);
      const spec = { opcode: pick([0, 1, 2, 3, 8, 9, 10, 11, 15]), fin: rand() < 0.8, rsv: rand() < 0.15 ? Math.floor(rand() * 8) : 0, mask: rand() < 0.9, payload };
      sent.push(`${spec.opcode}/${spec.fin ? 'F' : '-'}/${spec.rsv}/${spec.mask ? 'M' : 'u'}/${size}`);
      if (spec.opcode === 8 && spec.fin && spec.rsv === 0 && spec.mask && size >= 2 && size <= 125) echoable.add(payload.readUInt16BE(0));
      stream.write(frame(spec));
    }
    stream.write(frame({ opcode: 8, payload: closePayload(1000) }));
    const code = await serverCloseCode(stream, head);
    const transport = h2 ? 'h2' : 'h1';
    const echoed = echoable.has(code) && !ALLOWED.has(code);
    const key = `${transport} ${route} ${echoed ? 'echo of the client’s close code' : code}`;
    codes[key] = (codes[key] ?? 0) + 1;
    if (!echoed && !ALLOWED.has(code) && !ALSO_ALLOWED[route][transport].includes(code)) unexpected.push(`${key} ${path}: ${sent.join(' ')}`);
    if (process.env.FUZZ_DEBUG && (code === 1006 || code === -1)) console.info(`[fuzz] ${code} ${transport} ${route} ${path}: ${sent.join(' ')}`);
  }
  console.info(`[fuzz] close codes: ${JSON.stringify(codes)}`);
  return { codes, unexpected };
}

/** The backend is up and completes a handshake and a close directly. */
async function backendServes(backend: BackendProcess): Promise<void> {
  expect(backend.process.running).toBe(true);
  const { status, socket, head } = await rawH1(backend.port);
  expect(status).toBe(101);
  socket.write(frame({ opcode: 8, payload: closePayload(1000) }));
  expect(await serverCloseCode(socket, head)).toBe(1000);
}

const TITLE = `${SESSIONS} sessions × ${FRAMES_PER_SESSION} random frames end with an allowed close code; the backend stays up`;

describe(`fuzz (seed ${SEED}), direct to a backend`, () => {
  let backend: Awaited<ReturnType<typeof startTestBackend>>;
  beforeAll(async () => {
    backend = await startTestBackend(BACKEND_LIMITS);
  });
  afterAll(async () => {
    await backend?.dispose();
  });

  it(TITLE, async () => {
    const { unexpected } = await fuzz(backend.port, 'direct');
    expect(unexpected, `replay with FUZZ_SEED=${SEED}`).toEqual([]);
    await backendServes(backend);
  });
});

describeEachFront(`fuzz (seed ${SEED}) through the front`, (frontName) => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    stack = await startTestStack({ front: frontName, roomBus: 'none', ...BACKEND_LIMITS }, 1);
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  it(TITLE, async () => {
    const { unexpected } = await fuzz(Number(new URL(stack.front.url).port), frontName);
    expect(unexpected, `replay with FUZZ_SEED=${SEED}`).toEqual([]);
    await backendServes(stack.backends[0]!);
  });
});
