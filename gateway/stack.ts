import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../lib/config.js';
import { logger } from '../lib/log.js';
import { HaproxyFront, type ServerEntry } from './haproxy.js';
import { assertPortFree, Supervised, waitFor } from './supervisor.js';

// The local stack `npm start` runs: N backend processes and HAProxy in front of them.

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BACKEND_MAIN = path.join(ROOT, 'backend', 'main.ts');

export interface BackendProcess extends ServerEntry {
  process: Supervised;
  url: string;
}

export interface Stack {
  config: GatewayConfig;
  frontUrl: string;
  statsUrl: string;
  haproxy: HaproxyFront;
  backends: BackendProcess[];
  stop(): Promise<void>;
}

export function backendId(index: number): string {
  return `b${index + 1}`;
}

async function healthy(url: string): Promise<boolean> {
  const res = await fetch(`${url}/healthz`);
  return res.ok;
}

export async function startBackendProcess(
  config: GatewayConfig,
  id: string,
  port: number,
  log: Logger,
  output: 'inherit' | 'lines',
): Promise<BackendProcess> {
  await assertPortFree(config.host, port, `backend ${id}`);
  const childLog = log.child({ backend: id });
  const proc = new Supervised({
    name: `backend ${id}`,
    command: process.execPath,
    args: [
      '--import', 'tsx', BACKEND_MAIN,
      '--id', id, '--port', String(port), '--host', config.host,
      '--drain-timeout-ms', String(config.drainTimeoutMs),
      '--max-payload-bytes', String(config.maxPayloadBytes),
      '--h2-max-concurrent-streams', String(config.h2MaxConcurrentStreams),
      '--max-session-memory-mb', String(config.maxSessionMemoryMb),
      '--feed-rate-hz', String(config.feedRateHz),
    ],
    log: childLog,
    output,
    onStdoutLine: (line) => childLog.debug({ child: line }),
    onStderrLine: (line) => childLog.warn({ child: line }),
  });
  const url = `http://${config.host}:${port}`;
  await proc.whileRunning(waitFor(`backend ${id} /healthz`, () => healthy(url), 15_000, 100));
  return { id, host: config.host, port, process: proc, url };
}

export async function startStack(
  config: GatewayConfig,
  options: { log?: Logger; childOutput?: 'inherit' | 'lines' } = {},
): Promise<Stack> {
  const log = options.log ?? logger('gateway');
  const output = options.childOutput ?? 'inherit';
  const backends: BackendProcess[] = [];
  let haproxy: HaproxyFront | undefined;

  const stop = async () => {
    // Backends first: they close their sessions with 1001, which reaches clients through the front.
    await Promise.all(backends.map((b) => b.process.stop(config.drainTimeoutMs + 2_000)));
    await haproxy?.stop();
  };

  try {
    const started = await Promise.all(
      config.backendPorts.map((port, i) => startBackendProcess(config, backendId(i), port, log, output)),
    );
    backends.push(...started);
    haproxy = new HaproxyFront(config, backends, logger('haproxy'));
    await haproxy.start();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    config,
    frontUrl: haproxy.frontUrl,
    statsUrl: `http://${config.host}:${config.haproxyStatsPort}/`,
    haproxy,
    backends,
    stop,
  };
}
