import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readEnvoyFrontCounts } from '../../gateway/envoy/stats.js';
import { renderStaticEnvoyConfig } from '../../gateway/envoy/local.js';
import { envoyBin, envoySkipReason } from './envoy.js';
import { startBackendProcess, type BackendProcess } from '../../gateway/backend-process.js';
import { canConnect, freePort, Supervised, waitFor } from '../../gateway/supervisor.js';
import { defaults, gatewaySchema } from '../../lib/config.js';
import { logger } from '../../lib/log.js';
import { startTestStack } from './stack.js';

// The fronts the core tests run against, from one setting: HAProxy always; Envoy when ENVOY_URL
// (+ ENVOY_ADMIN_URL) points at a running one (e.g. `docker compose up`) or an `envoy` binary is on
// PATH. A front that cannot run here comes back with the reason, which the test prints.

export interface TestFront {
  name: string;
  url: string;
  /** Client TCP connections and WebSocket sessions open at the front, as the proxy counts them. */
  counts(): Promise<{ connections: number; sessions: number }>;
  dispose(): Promise<void>;
}

export type FrontChoice = { name: string; start: () => Promise<TestFront> } | { name: string; skip: string };

async function haproxy(): Promise<TestFront> {
  const stack = await startTestStack();
  return { name: 'haproxy', url: stack.frontUrl, counts: () => stack.haproxy.frontCounts(), dispose: () => stack.dispose() };
}

async function envoyAt(url: string, adminUrl: string): Promise<TestFront> {
  return { name: 'envoy', url, counts: () => readEnvoyFrontCounts(adminUrl), dispose: async () => {} };
}

async function localEnvoy(bin: string): Promise<TestFront> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-envoy-'));
  const config = defaults(gatewaySchema, { stateDir: dir });
  const log = logger('test-envoy');
  const backends: BackendProcess[] = [];
  for (let i = 0; i < 3; i++) backends.push(await startBackendProcess(config, `b${i + 1}`, await freePort(), log, 'lines'));
  const frontPort = await freePort();
  const adminPort = await freePort();
  const file = renderStaticEnvoyConfig({ host: '127.0.0.1', frontPort, adminPort, backends }, dir);
  const envoy = new Supervised({
    name: 'envoy',
    command: bin,
    // Its own base id and no hot restart: several test Envoys must not share shared memory.
    args: ['-c', file, '--disable-hot-restart', '--base-id', String(frontPort), '--log-level', 'warn'],
    log,
    output: 'lines',
    onStderrLine: (line) => log.debug({ child: line }),
  });
  await envoy.whileRunning(waitFor('envoy front', () => canConnect('127.0.0.1', frontPort), 20_000));
  return {
    name: 'envoy',
    url: `http://127.0.0.1:${frontPort}`,
    counts: () => readEnvoyFrontCounts(`http://127.0.0.1:${adminPort}`),
    dispose: async () => {
      await envoy.stop(5_000);
      await Promise.all(backends.map((b) => b.process.stop(5_000)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function frontChoices(env: NodeJS.ProcessEnv = process.env): FrontChoice[] {
  const choices: FrontChoice[] = [{ name: 'haproxy', start: haproxy }];
  if (env.ENVOY_URL) choices.push({ name: 'envoy', start: () => envoyAt(env.ENVOY_URL!, env.ENVOY_ADMIN_URL ?? 'http://127.0.0.1:9901') });
  else if (envoyBin) choices.push({ name: 'envoy', start: () => localEnvoy(envoyBin!) });
  else choices.push({ name: 'envoy', skip: envoySkipReason('fronts') ?? 'no envoy' });
  return choices;
}
