// The load generator: a child process the bench forks (bench/load-generator.ts) so that the client
// side has its own event loop and its own CPU account. It holds one WsClient (MuxClient or
// H1Client, bound by 'init') and the sessions it opened, and runs one request at a time.
import { H1Client, MuxClient, type WsClient, type WsSession } from '../client/index.js';
import { closedLoopEcho, echoEach, openLoopEcho, openSessions, spreadOf } from '../client/echo-probe.js';
import { runFanout } from './fanout.js';
import type { WorkerEvent, WorkerOp, WorkerReply, WorkerRequest, WorkerResults, WorkerTarget } from './protocol.js';

const send = (reply: WorkerReply) => process.send?.(reply);

let target: WorkerTarget | undefined;
let client: WsClient | undefined;
let sessions: WsSession[] = [];

function makeClient(t: WorkerTarget): WsClient {
  return t.transport === 'h2'
    ? new MuxClient(t.url, { maxSessionMemoryMb: t.maxSessionMemoryMb, handshakeTimeoutMs: t.handshakeTimeoutMs })
    : new H1Client(t.url, { handshakeTimeoutMs: t.handshakeTimeoutMs });
}

function currentClient(): WsClient {
  if (!target) throw new Error('worker not initialised: send "init" first');
  return (client ??= makeClient(target));
}

function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('the load generator needs --expose-gc for a forced GC');
  // Twice: the first pass can leave objects with finalizers for the second.
  gc();
  gc();
}

function cpuUs(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

function progressReporter(id: number): (done: number, total: number) => void {
  let last = 0;
  return (done, total) => {
    const now = performance.now();
    if (done !== total && now - last < 100) return;
    last = now;
    send({ id, type: 'event', event: 'progress', done, total } satisfies WorkerEvent);
  };
}

const markReporter = (id: number) => (mark: 'start' | 'end') => send({ id, type: 'event', event: 'mark', mark, cpuUs: cpuUs() });

async function handle(id: number, body: WorkerOp): Promise<WorkerResults[WorkerOp['op']]> {
  switch (body.op) {
    case 'init':
      target = body.target;
      // Collect what loading this process left (tsx compiling the client's TypeScript, module
      // graphs): otherwise the first measured window pays a major GC of it, ~14 ms here, which a
      // storm of 100 sessions reported as 140 µs of CPU per session.
      collectGarbage();
      return { pid: process.pid, node: process.version };
    case 'open': {
      const c = currentClient();
      const r = await openSessions(c, body.n, {
        path: body.path,
        concurrency: body.concurrency,
        deadlineMs: body.deadlineMs,
        onProgress: progressReporter(id),
        // The window ends with the last handshake, before the latency histogram is summarised
        // (tens of ms in a fresh process: at 100 sessions more than the sessions themselves).
        onMark: markReporter(id),
      });
      sessions.push(...r.sessions);
      const stats = c.stats();
      return {
        open: sessions.length,
        opened: r.sessions.length,
        failed: r.failed,
        errors: r.errors,
        elapsedMs: r.elapsedMs,
        handshake: r.handshake,
        clientConnections: stats.connections,
        connectionsOpened: stats.connectionsOpened,
        spread: spreadOf(sessions),
      };
    }
    case 'echoAll':
      return echoEach(sessions, body.size, body.timeoutMs);
    case 'latency':
      return openLoopEcho(sessions, { ...body, onMark: markReporter(id) });
    case 'throughput':
      return closedLoopEcho(sessions, { ...body, onMark: markReporter(id) });
    case 'fanout':
      return runFanout(currentClient(), { ...body, onMark: markReporter(id), onProgress: progressReporter(id) });
    case 'mem': {
      if (body.gc) collectGarbage();
      const m = process.memoryUsage();
      return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers };
    }
    case 'closeAll': {
      const closed = sessions.length;
      for (const s of sessions) s.ws.terminate();
      sessions = [];
      // Node's Http2Session.destroy() waits for its GOAWAY to be written: against a peer that stopped
      // reading, MuxClient.close() never settles. Bounded here; the parent then replaces this process.
      const closing = client?.close() ?? Promise.resolve();
      client = undefined;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        closing.then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), 5_000))),
      ]);
      clearTimeout(timer);
      return { closed, closeTimedOut: timedOut };
    }
  }
}

process.on('message', (msg: WorkerRequest) => {
  handle(msg.id, msg.body).then(
    (value) => send({ id: msg.id, type: 'result', ok: true, value }),
    (err: unknown) =>
      send({
        id: msg.id,
        type: 'result',
        ok: false,
        error: { message: (err as Error)?.message ?? String(err), code: (err as { code?: string })?.code },
      }),
  );
});
// The parent going away (Ctrl-C, crash) must not leave a load generator behind.
process.on('disconnect', () => process.exit(0));
send({ id: 0, type: 'ready', pid: process.pid });
