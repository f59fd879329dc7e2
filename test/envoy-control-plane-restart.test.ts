import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MuxClient } from '../client/index.js';
import { readAdminStats } from '../gateway/envoy/stats.js';
import { startBackendProcess, type BackendProcess } from '../gateway/core/backend-process.js';
import { privatePorts } from '../lib/ports.js';
import { defaults, gatewaySchema } from '../lib/config.js';
import { logger } from '../lib/log.js';
import { envoySkipReason } from './helpers/envoy.js';
import { echo, waitUntil } from './helpers/stack.js';

// Envoy outlives its control plane: the gateway process dies (SIGKILL) and a new one starts on the
// same ports and state dir. The backends run on their own (--manage-backends false, as in docker
// compose), so only the control plane goes away. The new gateway attaches to the running restarter; Envoy keeps every
// connection and session throughout, and — since an LDS change would drain every connection on the
// listener — neither the restart nor endpoint changes modify the listener.

const skip = envoySkipReason('envoy-control-plane-restart.test');

describe.skipIf(skip !== undefined)('[envoy] a control plane restart under live sessions', () => {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'gw-cp-restart-'));
  const token = 'test-token-0123456789';
  const gateways: ChildProcess[] = [];
  const backends: BackendProcess[] = [];
  let ports: Awaited<ReturnType<typeof privatePorts>>;

  const startGateway = async (): Promise<{ proc: ChildProcess; out: () => string }> => {
    const args = [
      '--front', 'envoy', '--front-port', String(ports.frontPort), '--front-tls-port', '0', '--admin-port', String(ports.adminPort),
      '--xds-port', String(ports.xdsPort), '--envoy-admin-port', String(ports.envoyAdminPort), '--envoy-restarter-port', String(ports.envoyRestarterPort),
      '--haproxy-stats-port', String(ports.haproxyStatsPort), '--redis-port', String(ports.redisPort), '--room-bus', 'none',
      '--backend-ports', ports.backendPorts.join(','), '--manage-backends', 'false', '--state-dir', stateDir, '--health-interval-ms', '300',
    ];
    const proc = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts', ...args], {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, LOG_LEVEL: 'warn', ADMIN_TOKEN: token },
    });
    gateways.push(proc);
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    await waitUntil(() => out.includes('ready:') || proc.exitCode !== null, 60_000, 'gateway ready');
    expect(out, 'gateway output').toContain('ready:');
    return { proc, out: () => out };
  };
  const admin = (p: string, init: RequestInit = {}) =>
    fetch(`http://127.0.0.1:${ports.adminPort}${p}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers } });
  const listenerStats = async () =>
    Object.fromEntries(await readAdminStats(`http://127.0.0.1:${ports.envoyAdminPort}`, '^listener_manager\\.(listener_modified|listener_added|listener_removed|total_listeners_draining)$'));

  /** Envoy is connected to this gateway's xDS server and has ACKed the last EDS version sent. */
  const envoyCaughtUp = () =>
    waitUntil(
      async () => {
        const nodes = (await (await admin('/xds')).json()) as Array<{ kind: string; streams: number; types: Record<string, { sent?: { version: string }; acked?: { version: string } }> }>;
        const envoy = nodes.find((n) => n.kind === 'envoy' && n.streams > 0);
        return envoy?.types.EDS?.sent !== undefined && envoy.types.EDS.acked?.version === envoy.types.EDS.sent.version;
      },
      30_000,
      'Envoy ACKed the last EDS push of this gateway',
    );

  afterAll(async () => {
    for (const g of gateways) if (g.exitCode === null) g.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 3_000));
    await Promise.all(backends.map((b) => b.process.stop(5_000)));
    // Whatever is left (the restarter and Envoy carry the state dir in their argv).
    for (const pattern of [stateDir]) {
      try {
        execFileSync('pkill', ['-f', '--', pattern]);
      } catch {
        // nothing matched
      }
    }
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('sessions keep echoing, the new gateway attaches, and the listener is never modified', async () => {
    ports = await privatePorts(3);
    const config = defaults(gatewaySchema, { ...ports, stateDir, roomBus: 'none' });
    backends.push(...(await Promise.all(ports.backendPorts.map((port, i) => startBackendProcess(config, `b${i + 1}`, port, logger('test'), 'lines')))));
    const first = await startGateway();
    const mux = new MuxClient(`http://127.0.0.1:${ports.frontPort}`);
    try {
      const sessions = await Promise.all(Array.from({ length: 30 }, () => mux.open('/echo')));
      const baseline = await listenerStats();
      expect(baseline['listener_manager.listener_added']).toBeGreaterThanOrEqual(1);

      // Endpoint changes reach Envoy over EDS only.
      expect((await admin('/endpoints/b3/drain', { method: 'POST', body: '{}' })).status).toBe(202);
      await waitUntil(async () => (await Promise.all(Array.from({ length: 6 }, () => mux.open('/echo')))).every((s) => s.backendId !== 'b3'), 10_000, 'b3 drained at Envoy');
      expect((await admin('/endpoints/b3', { method: 'PATCH', body: JSON.stringify({ state: 'active' }) })).status).toBe(200);
      await envoyCaughtUp();

      // The control plane dies; Envoy and the backends carry on.
      first.proc.kill('SIGKILL');
      await new Promise((r) => first.proc.once('exit', r));
      expect(await Promise.all(sessions.map((s, i) => echo(s.ws, `alone ${i}`)))).toEqual(sessions.map((_, i) => `alone ${i}`));

      const second = await startGateway();
      expect(second.out()).toMatch(/attached: it was running/);
      // Envoy reconnects to the new xDS server with its retry backoff.
      await envoyCaughtUp();
      expect(await Promise.all(sessions.map((s, i) => echo(s.ws, `after ${i}`)))).toEqual(sessions.map((_, i) => `after ${i}`));
      const fresh = await Promise.all(Array.from({ length: 30 }, () => mux.open('/echo')));
      expect(new Set(fresh.map((s) => s.backendId))).toEqual(new Set(['b1', 'b2', 'b3']));
      expect(mux.stats().connectionsOpened).toBe(1);

      const after = await listenerStats();
      console.log(`[envoy-control-plane-restart] listener stats before ${JSON.stringify(baseline)} after ${JSON.stringify(after)}`);
      expect(after['listener_manager.listener_modified']).toBe(baseline['listener_manager.listener_modified']);
      expect(after['listener_manager.listener_removed']).toBe(baseline['listener_manager.listener_removed']);
    } finally {
      await mux.close();
    }
  }, 180_000);
});
