import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaults, gatewaySchema } from '../lib/config.js';
import { startBackendProcess, type BackendProcess } from '../gateway/core/backend-process.js';
import { startEnvoyStack } from '../gateway/envoy/stack.js';
import type { Stack } from '../gateway/core/stack.js';
import { renderAdsEnvoyConfig } from '../gateway/envoy/local.js';
import { envoyBin, envoySkipReason } from './helpers/envoy.js';
import { envoyValidate } from '../gateway/envoy/check/run-envoy.js';
import { MuxClient } from '../client/mux-client.js';
import { freePort, privatePorts } from '../lib/ports.js';
import { logger } from '../lib/log.js';
import { rawRequest } from './helpers/raw-ws.js';
import { AdsTestClient, syncLikeEnvoy } from './helpers/xds-ads-client.js';
import { echo, waitUntil } from './helpers/stack.js';

// The gateway with `--front envoy` in the docker compose topology: the gateway does not start the
// backends (--manage-backends false) and hot restarts go to an Envoy restarter in ANOTHER process
// over its loopback control API (--envoy-restarter-url). Real processes throughout: the restarter
// CLI, the backends, the xDS server and admin API. The restarter's children are the stand-in
// (test/helpers/restarter-stand-in-child.mjs) that records argv and signals: it is NOT Envoy, and
// nothing here says anything about Envoy itself; what is tested is the gateway ⇄ restarter wiring.

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STAND_IN = path.join(repo, 'test/helpers/restarter-stand-in-child.mjs');
const RESTARTER = path.join(repo, 'gateway/envoy/restarter-main.ts');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'envoy-stack-test-'));
const standInLog = path.join(dir, 'stand-in.jsonl');
const validateFail = path.join(dir, 'validate-fail.txt');
const starts = () =>
  fs.existsSync(standInLog)
    ? fs.readFileSync(standInLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; pid: number; epoch: number; baseId: string })
        .filter((r) => r.event === 'start')
    : [];

let restarter: ChildProcess;
let controlPort: number;
let backends: BackendProcess[] = [];
let stack: Stack;
let ports: Awaited<ReturnType<typeof privatePorts>>;

beforeAll(async () => {
  ports = await privatePorts(2);
  controlPort = await freePort();
  restarter = spawn(
    process.execPath,
    ['--import', 'tsx', RESTARTER, '--envoy-bin', process.execPath, '--base-id', '7', '--start-grace-ms', '200', '--parent-shutdown-time-s', '1', '--control-port', String(controlPort), '--', STAND_IN],
    // The stand-in stops its parent epoch after --parent-shutdown-time-s, as Envoy does.
    { cwd: repo, env: { ...process.env, STAND_IN_LOG: standInLog, STAND_IN_VALIDATE_FAIL_FILE: validateFail, STAND_IN_PARENT_SHUTDOWN: '1', LOG_LEVEL: 'warn' }, stdio: 'ignore' },
  );
  const config = defaults(gatewaySchema, {
    ...ports,
    envoyAdminPort: await freePort(), // nothing listens there: session counts are null, not invented
    frontTlsPort: 0,
    stateDir: path.join(dir, 'state'),
    adminToken: 'test-token-0123456789',
    manageBackends: false,
    envoyRestarterUrl: `http://127.0.0.1:${controlPort}`,
    healthIntervalMs: 200,
  });
  // The backends run on their own, as containers do in docker compose.
  backends = await Promise.all(ports.backendPorts.map((port, i) => startBackendProcess(config, `b${i + 1}`, port, logger('test'), 'lines')));
  await waitUntil(() => starts().length === 1, 20_000, 'restarter started epoch 0');
  stack = await startEnvoyStack(config, { childOutput: 'lines' });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  restarter?.kill('SIGTERM');
  await Promise.all(backends.map((b) => b.process.stop(5_000)));
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('gateway --front envoy, compose topology (restarter in another process; its children are a stand-in, not Envoy)', () => {
  it('starts no backend itself, registers the configured ones and health-checks them', async () => {
    expect(stack.backends).toEqual([]);
    await waitUntil(async () => {
      const list = (await (await stack.adminFetch('/endpoints')).json()) as { endpoints: Array<{ id: string; health: { ok: boolean } | null }> };
      return list.endpoints.length === 2 && list.endpoints.every((e) => e.health?.ok === true);
    }, 10_000, 'both backends up');
  });

  it('serves Envoy the front listener on the configured address and port over ADS, with the backends as EDS endpoints', async () => {
    const c = new AdsTestClient(stack.xds.port, { id: 'h2-ws-gateway-front', cluster: 'h2-ws-gateway', user_agent_name: 'envoy' });
    try {
      const sync = await syncLikeEnvoy(c);
      expect(sync.listeners[0]!.address).toEqual({ socket_address: { address: '127.0.0.1', port_value: ports.frontPort } });
      const lbs = (sync.endpoints[0]!.endpoints as Array<{ lb_endpoints: Array<{ endpoint: { address: unknown } }> }>)[0]!.lb_endpoints;
      expect(lbs.map((l) => l.endpoint.address).sort()).toEqual(
        ports.backendPorts.map((p) => ({ socket_address: { address: '127.0.0.1', port_value: p } })).sort(),
      );
    } finally {
      c.close();
    }
  });

  it('POST /hot-restart goes to the remote restarter: epoch 1 with the same base id; GET /hot-restart lists both epochs', async () => {
    const pid0 = starts()[0]!.pid;
    const res = await stack.adminFetch('/hot-restart', { method: 'POST' });
    expect(res.status).toBe(200);
    const result = (await res.json()) as { engine: string; generation: number; epoch: number; oldPids: number[]; newPids: number[] };
    expect(result).toMatchObject({ engine: 'envoy', generation: 2, epoch: 1, oldPids: [pid0] });
    const e1 = starts().find((s) => s.epoch === 1)!;
    expect(result.newPids).toEqual([e1.pid]);
    expect(e1.baseId).toBe('7');

    const gens = (await (await stack.adminFetch('/hot-restart')).json()) as { engine: string; generations: Array<Record<string, unknown>> };
    expect(gens.engine).toBe('envoy');
    expect(gens.generations.map((g) => [g.generation, g.pid, g.current])).toEqual([
      [1, pid0, false],
      [2, e1.pid, true],
    ]);
    // Envoy's admin is not there: the counts say "unknown" instead of a made-up number.
    expect(gens.generations.every((g) => g.sessions === null)).toBe(true);
  });

  it('a restart while the previous epoch still drains: 409 GW_ERR_ENVOY_EPOCH_DRAINING (Envoy would cut it), then accepted once it is gone', async () => {
    // Right after the previous test's restart, epoch 0 drains until its parent shutdown (1 s here).
    const before = starts().length;
    const refused = await stack.adminFetch('/hot-restart', { method: 'POST' });
    if (refused.status === 409) {
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('GW_ERR_ENVOY_EPOCH_DRAINING');
      expect(starts().length).toBe(before);
    }
    await waitUntil(async () => ((await (await stack.adminFetch('/hot-restart')).json()) as { generations: unknown[] }).generations.length === 1, 20_000, 'the old epoch exits');
  });

  it('a config the restarter rejects: 409 with its code and the validator’s words; the running epochs stay', async () => {
    fs.writeFileSync(validateFail, 'error initializing configuration: Protobuf message has unknown field "allow_conect"\n');
    try {
      const before = starts().length;
      const res = await stack.adminFetch('/hot-restart', { method: 'POST' });
      expect(res.status).toBe(409);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('GW_ERR_ENVOY_CONFIG_REJECTED');
      expect(body.error.message).toContain('allow_conect');
      expect(starts().length).toBe(before);
    } finally {
      fs.rmSync(validateFail);
    }
  });

  it('request targets a URL parser refuses: 400 from the admin API and from the restarter control API, both serve on', async () => {
    const adminPort = Number(new URL(stack.adminUrl).port);
    const outcomes: Record<string, number> = {};
    for (const target of ['//%zz/endpoints', '//[/x']) {
      outcomes[`admin GET ${target}`] = await rawRequest(adminPort, `GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-token-0123456789\r\n\r\n`);
      outcomes[`restarter POST ${target}`] = await rawRequest(controlPort, `POST ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
    }
    expect(outcomes).toEqual(Object.fromEntries(Object.keys(outcomes).map((k) => [k, 400])));
    // The restarter is the process Envoy runs under: a throw there used to end it.
    expect(restarter.exitCode).toBeNull();
    expect((await fetch(`http://127.0.0.1:${controlPort}/epochs`)).status).toBe(200);
    expect((await stack.adminFetch('/endpoints')).status).toBe(200);
  });

  it('a restarter that does not answer: 502 naming the control URL', async () => {
    restarter.kill('SIGTERM');
    await new Promise((r) => restarter.once('exit', r));
    const res = await stack.adminFetch('/hot-restart', { method: 'POST' });
    expect(res.status).toBe(502);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('GW_ERR_RESTARTER_UNREACHABLE');
    expect(body.error.message).toContain(`127.0.0.1:${controlPort}`);
  });
});

// The same gateway with a REAL Envoy, wherever an `envoy` binary is on PATH (or ENVOY_BIN is set).
const envoySkip = envoySkipReason('envoy-stack.test: gateway --front envoy with a real local Envoy');

describe('local --front envoy config', () => {
  const file = renderAdsEnvoyConfig({ adminHost: '127.0.0.1', adminPort: 19901, xdsHost: '127.0.0.1', xdsPort: 18123 }, path.join(dir, 'render'));

  it('envoy.yaml is rendered with this run’s admin and xDS ports', () => {
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toContain('port_value: 18123');
    expect(text).toContain('port_value: 19901');
  });

  it.skipIf(envoySkip !== undefined)('envoy --mode validate accepts the rendered envoy.yaml', () => {
    const r = envoyValidate(envoyBin!, file);
    expect(r.ok, r.output).toBe(true);
  });
});

describe.skipIf(envoySkip !== undefined)('gateway --front envoy with a real local Envoy (xDS, restarter in this process)', () => {
  it('serves sessions on one connection through Envoy; POST /hot-restart keeps them echoing and new ones open', async () => {
    const ports = await privatePorts(2);
    const config = defaults(gatewaySchema, {
      ...ports,
      envoyAdminPort: await freePort(),
      frontTlsPort: 0,
      stateDir: path.join(dir, 'real-envoy'),
      adminToken: 'test-token-0123456789',
      roomBus: 'none',
      hardStopAfterS: 10,
    });
    const real = await startEnvoyStack(config, { childOutput: 'lines' });
    const mux = new MuxClient(real.frontUrl);
    try {
      const sessions = await Promise.all(Array.from({ length: 50 }, () => mux.open('/echo')));
      expect(new Set(sessions.map((x) => x.backendId)).size).toBe(2);
      for (const x of sessions) expect(await echo(x.ws, 'before')).toBe('before');
      const res = await real.adminFetch('/hot-restart', { method: 'POST' });
      expect(res.status, await res.clone().text()).toBe(200);
      expect(await res.json()).toMatchObject({ engine: 'envoy', generation: 2, epoch: 1 });
      for (const x of sessions) expect(await echo(x.ws, 'after')).toBe('after');
      const fresh = await Promise.all(Array.from({ length: 10 }, () => mux.open('/echo')));
      for (const x of fresh) expect(await echo(x.ws, 'new')).toBe('new');
    } finally {
      await mux.close();
      await real.stop();
    }
  }, 120_000);
});
