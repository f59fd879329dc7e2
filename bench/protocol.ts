import type { EchoEachResult, LatencySummary, TimedEchoResult } from '../client/echo-probe.js';
import type { FanoutResult } from './fanout.js';

// Messages between the bench (parent) and a load-generator process (bench/worker.ts) over the
// fork() IPC channel. One request at a time; the worker answers with `result` and may send
// `event`s (window marks with its CPU time, progress) while the request runs.

export interface WorkerTarget {
  url: string;
  transport: 'h1' | 'h2';
  handshakeTimeoutMs: number;
  maxSessionMemoryMb: number;
}

export type WorkerOp =
  | { op: 'init'; target: WorkerTarget }
  | { op: 'open'; n: number; path: string; concurrency: number; deadlineMs: number }
  | { op: 'echoAll'; size: number; timeoutMs: number }
  | { op: 'latency'; size: number; ratePerS: number; durationMs: number; warmupMs: number; drainMs: number }
  | { op: 'throughput'; size: number; window: number; durationMs: number; warmupMs: number; drainMs: number }
  | {
      op: 'fanout';
      room: string;
      members: number;
      messages: number;
      intervalMs: number;
      concurrency: number;
      settleTimeoutMs: number;
      drainMs: number;
    }
  | { op: 'mem'; gc: boolean }
  | { op: 'closeAll' };

export interface OpenReply {
  /** Sessions open now (this call and earlier ones). */
  open: number;
  opened: number;
  failed: number;
  errors: Record<string, number>;
  elapsedMs: number;
  handshake: LatencySummary;
  /** What the client itself reports; the parent also counts sockets in /proc. */
  clientConnections: number;
  connectionsOpened: number;
  spread: Record<string, number>;
}

export interface MemReply {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

export interface WorkerResults {
  init: { pid: number; node: string };
  open: OpenReply;
  echoAll: EchoEachResult;
  latency: TimedEchoResult;
  throughput: TimedEchoResult;
  fanout: FanoutResult;
  mem: MemReply;
  /** closeTimedOut: the client's close() did not finish in time (a peer that stopped reading). */
  closeAll: { closed: number; closeTimedOut: boolean };
}

export type ResultOf<O extends WorkerOp> = WorkerResults[O['op']];

export interface WorkerRequest {
  id: number;
  body: WorkerOp;
}

/** CPU time of the worker (process.cpuUsage, µs) when it emitted a window mark. */
export type WorkerEvent =
  | { id: number; type: 'event'; event: 'mark'; mark: 'start' | 'end'; cpuUs: number }
  | { id: number; type: 'event'; event: 'progress'; done: number; total: number };

export type WorkerReply =
  | { id: number; type: 'result'; ok: true; value: unknown }
  | { id: number; type: 'result'; ok: false; error: { message: string; code?: string } }
  | WorkerEvent
  | { id: 0; type: 'ready'; pid: number };
