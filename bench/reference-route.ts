import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from '../lib/ports.js';
import { BenchWorkerError } from './errors.js';
import { INSPECTOR_LINE } from './inspector.js';

// The `reference` route's server (bench/reference-server.ts) as a process of its own, with an
// inspector like the backends', so its CPU, RSS and heap are read the same way.

const SERVER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'reference-server.ts');

export interface ReferenceServer {
  id: 'ref';
  url: string;
  port: number;
  pid: number;
  inspectorUrl: string | undefined;
  stop(): Promise<void>;
}

export async function startReferenceServer(host: string, timeoutMs = 30_000): Promise<ReferenceServer> {
  const port = await freePort(host);
  const child = spawn(process.execPath, ['--inspect=127.0.0.1:0', '--import', 'tsx', SERVER, '--port', String(port), '--host', host], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let inspectorUrl: string | undefined;
  createInterface({ input: child.stderr }).on('line', (line) => {
    inspectorUrl ??= INSPECTOR_LINE.exec(line)?.[1];
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new BenchWorkerError(`the reference server did not listen within ${timeoutMs} ms`)), timeoutMs);
      child.once('exit', (code) => reject(new BenchWorkerError(`the reference server exited (${code}) before it listened`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (!line.startsWith('reference echo server listening')) return;
        clearTimeout(timer);
        resolve();
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { id: 'ref', url: `http://${host}:${port}`, port, pid: child.pid!, inspectorUrl, stop };
}
