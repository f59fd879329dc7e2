import { WebSocket } from 'ws';
import { BenchWorkerError } from './errors.js';

// Forced GC and memory figures of a backend process, through the V8 inspector it was started with
// (the bench starts backends with NODE_OPTIONS=--inspect=127.0.0.1:0 and reads the URL from the
// "Debugger listening on ws://…" line). The backend itself needs no GC hook for this.

export interface RemoteMemory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

export const INSPECTOR_LINE = /Debugger listening on (ws:\/\/\S+)/;

export async function remoteMemory(inspectorUrl: string, options: { gc: boolean; timeoutMs?: number }): Promise<RemoteMemory> {
  const ws = new WebSocket(inspectorUrl, { perMessageDeflate: false });
  const timeoutMs = options.timeoutMs ?? 15_000;
  let nextId = 1;
  const waiting = new Map<number, (result: unknown) => void>();
  const failed = new Promise<never>((_, reject) => {
    const timer = setTimeout(() => reject(new BenchWorkerError(`inspector ${inspectorUrl} did not answer within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    ws.once('error', (err) => reject(new BenchWorkerError(`inspector ${inspectorUrl}: ${err.message}`)));
    ws.once('close', () => reject(new BenchWorkerError(`inspector ${inspectorUrl} closed`)));
  });
  failed.catch(() => {});
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: { message: string } };
    if (msg.id === undefined) return;
    waiting.get(msg.id)?.(msg.error ? new BenchWorkerError(`inspector: ${msg.error.message}`) : msg.result);
    waiting.delete(msg.id);
  });
  const call = async (method: string, params: object = {}): Promise<unknown> => {
    const id = nextId++;
    const answer = new Promise<unknown>((resolve) => waiting.set(id, resolve));
    ws.send(JSON.stringify({ id, method, params }));
    const result = await Promise.race([answer, failed]);
    if (result instanceof Error) throw result;
    return result;
  };
  try {
    await Promise.race([new Promise((resolve) => ws.once('open', resolve)), failed]);
    if (options.gc) {
      await call('HeapProfiler.collectGarbage');
      await call('HeapProfiler.collectGarbage');
    }
    const result = (await call('Runtime.evaluate', {
      expression: 'JSON.stringify(process.memoryUsage())',
      returnByValue: true,
    })) as { result?: { value?: string } };
    const value = result.result?.value;
    if (typeof value !== 'string') throw new BenchWorkerError(`inspector ${inspectorUrl}: no memoryUsage() answer`);
    return JSON.parse(value) as RemoteMemory;
  } finally {
    ws.removeAllListeners('close');
    ws.on('error', () => {});
    ws.terminate();
  }
}
