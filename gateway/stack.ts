import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { BACKEND_FIELDS, kebab, type GatewayConfig } from '../lib/config.js';
import { logger } from '../lib/log.js';
import { startAdminApi, type AdminDeps, type AdminServer } from './admin-api.js';
import { DrainController } from './drain.js';
import { MissingToolError } from '../lib/errors.js';
import { HaproxyDriver } from './haproxy-driver.js';
import { ensureAdminToken } from './admin-token.js';
import { startLocalRedis } from './redis.js';
import { ensureCertificate } from './tls.js';
import { startXdsServer, type XdsServer } from './xds/index.js';
import { HaproxyFront } from './haproxy.js';
import { HealthChecker } from './health.js';
import { HaproxyHotRestart, type HotRestartEngine } from './hot-restart.js';
import { EndpointRegistry } from './registry.js';
import { assertPortFree, Supervised, waitFor } from './supervisor.js';

// The local stack `npm start` runs: N backend processes, HAProxy in front of them, and the control
// plane (endpoint registry, health checks, drain, admin API) that drives HAProxy.

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BACKEND_MAIN = path.join(ROOT, 'backend', 'main.ts');

export interface BackendProcess {
  id: string;
  host: string;
  port: number;
  process: Supervised;
  url: string;
}

export interface Stack {
  config: GatewayConfig;
  frontUrl: string;
  /** https:// front (ALPN h2, http/1.1), when TLS is on. */
  frontTlsUrl: string | undefined;
  /** PEM to trust for a self-signed front certificate. */
  caFile: string | undefined;
  statsUrl: string;
  adminUrl: string;
  haproxy: HaproxyFront;
  registry: EndpointRegistry;
  driver: HaproxyDriver;
  health: HealthChecker;
  drain: DrainController;
  hotRestart: HotRestartEngine;
  xds: XdsServer;
  admin: AdminServer;
  /** The admin API with the admin token attached. */
  adminFetch(path: string, init?: RequestInit): Promise<Response>;
  /** Backend processes this stack started (endpoints added later may run elsewhere). */
  backends: BackendProcess[];
  /** The room bus the backends share, if any. */
  redisUrl: string | undefined;
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
  redisUrl?: string,
): Promise<BackendProcess> {
  await assertPortFree(config.host, port, `backend ${id}`);
  const childLog = log.child({ backend: id });
  const proc = new Supervised({
    name: `backend ${id}`,
    command: process.execPath,
    args: [
      '--import', 'tsx', BACKEND_MAIN,
      '--id', id, '--port', String(port), '--host', config.host,
      // Every backend setting the gateway has (limits, auth, ...) goes down as a flag.
      ...BACKEND_FIELDS.flatMap((key) => {
        const value = config[key];
        if (value === undefined || (Array.isArray(value) && value.length === 0)) return [];
        return [`--${kebab(key)}`, Array.isArray(value) ? value.join(',') : String(value)];
      }),
      ...(redisUrl ? ['--redis-url', redisUrl] : []),
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
  options: { log?: Logger; childOutput?: 'inherit' | 'lines'; extraRoutes?: AdminDeps['extraRoutes'] } = {},
): Promise<Stack> {
  const log = options.log ?? logger('gateway');
  const output = options.childOutput ?? 'inherit';
  const backends: BackendProcess[] = [];
  const cleanups: Array<() => Promise<void> | void> = [];

  const stop = async () => {
    // Control plane first (no more changes), then backends: they close their sessions with 1001,
    // which reaches clients through the front; HAProxy last.
    for (const cleanup of cleanups.reverse()) await cleanup();
    cleanups.length = 0;
  };

  try {
    await assertPortFree(config.host, config.adminPort, 'admin API');
    const registry = new EndpointRegistry({
      stateFile: path.join(path.resolve(config.stateDir), 'registry.json'),
      seed: config.backendPorts.map((port, i) => ({ id: backendId(i), host: config.host, port })),
    });

    let redisUrl = config.roomBus === 'redis' ? config.redisUrl : undefined;
    if (config.roomBus === 'redis' && !redisUrl) {
      try {
        const redis = await startLocalRedis({ host: config.host, port: config.redisPort, dir: path.join(config.stateDir, 'redis') });
        cleanups.push(() => redis.stop());
        redisUrl = redis.url;
      } catch (err) {
        if (!(err instanceof MissingToolError)) throw err;
        log.warn(`${err.message}. Rooms will NOT span backends until then (each backend keeps its own).`);
      }
    }

    const haproxy = new HaproxyFront(config, registry.list(), logger('haproxy'));
    const certificate = config.frontTlsPort
      ? await ensureCertificate(config.stateDir, { cert: config.tlsCert, key: config.tlsKey }, [config.host, 'localhost'])
      : undefined;
    haproxy.tlsPem = certificate?.pem;
    cleanups.push(() => haproxy.stop());
    cleanups.push(() => Promise.all(backends.map((b) => b.process.stop(config.drainTimeoutMs + 2_000))).then(() => undefined));
    const started = await Promise.all(
      config.backendPorts.map((port, i) => startBackendProcess(config, backendId(i), port, log, output, redisUrl)),
    );
    backends.push(...started);
    await haproxy.start();

    const driver = new HaproxyDriver(haproxy, registry);
    driver.start();
    cleanups.push(() => driver.stop());
    const health = new HealthChecker(registry, {
      intervalMs: config.healthIntervalMs,
      timeoutMs: config.healthTimeoutMs,
      fall: config.healthFall,
      rise: config.healthRise,
    });
    health.start();
    cleanups.push(() => health.stop());
    const drain = new DrainController(registry, health, { deadlineMs: config.drainDeadlineMs, pollMs: 250, closeGraceMs: 5_000 });
    drain.resume();
    cleanups.push(() => drain.stop());
    // The Envoy driver: the same registry served over xDS, for an Envoy front (docker compose, or an
    // `envoy` binary with envoy/envoy.yaml) to follow alongside HAProxy.
    const xds = await startXdsServer({ registry, host: config.host, port: config.xdsPort });
    cleanups.push(() => xds.close());
    const hotRestart = new HaproxyHotRestart(haproxy, driver);
    const front = async () => ({ engine: 'haproxy' as const, version: haproxy.version, ...(await haproxy.frontCounts()) });
    const token = ensureAdminToken(config.stateDir, config.adminToken);
    const admin = await startAdminApi({ token, registry, drain, health, hotRestart, xds, front, extraRoutes: options.extraRoutes }, config.host, config.adminPort);
    cleanups.push(() => admin.close());

    return {
      config,
      frontUrl: haproxy.frontUrl,
      frontTlsUrl: haproxy.frontTlsUrl,
      caFile: certificate?.selfSigned ? certificate.cert : undefined,
      statsUrl: `http://${config.host}:${config.haproxyStatsPort}/`,
      adminUrl: admin.url,
      haproxy,
      registry,
      driver,
      health,
      drain,
      hotRestart,
      xds,
      admin,
      adminFetch: (p, init = {}) =>
        fetch(`${admin.url}${p}`, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` } }),
      backends,
      redisUrl,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
