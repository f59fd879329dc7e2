// `npm start`: 3 backends + HAProxy front on 127.0.0.1:8080 and the control plane, until Ctrl-C / SIGTERM.
// `npm start -- --front envoy`: the same with Envoy in front (a local binary, or docker compose's).
import { gatewaySchema, loadConfig, type GatewayConfig } from '../lib/config.js';
import { GatewayError } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { isLoopbackHost } from '../lib/loopback.js';
import { adminTokenFile } from './admin-token.js';
import { startEnvoyStack } from './envoy-stack.js';
import type { HotRestartEngine } from './hot-restart.js';
import { startStack } from './stack.js';
import { createWebRoutes, webOptionsFromConfig } from './web.js';

const log = logger('gateway');


try {
  // --front haproxy|envoy: which proxy runs in front (HAProxy with the full control plane, or a local envoy binary).
  const { config, flags } = loadConfig(gatewaySchema, process.argv.slice(2), process.env, { insecure: { type: 'boolean' }, front: { type: 'string' } });
  const front = flags.front ?? 'haproxy';
  if (front !== 'haproxy' && front !== 'envoy') throw new GatewayError('GW_ERR_CONFIG', `invalid config field "front": must be haproxy or envoy, got ${JSON.stringify(front)}`);
  const insecure = flags.insecure === true || process.env.INSECURE === '1';
  if (!isLoopbackHost(config.host) && !config.jwtSecret && !insecure) {
    throw new GatewayError(
      'GW_ERR_CONFIG',
      `invalid config field "host": refusing to serve ${config.host} (not loopback) without handshake auth; set JWT_SECRET (--jwt-secret), or pass --insecure to do it anyway`,
    );
  }
  if (front === 'envoy') await runEnvoyStack(config);
  else await runHaproxyStack(config);
} catch (err) {
  log.fatal({ code: (err as GatewayError).code }, err instanceof GatewayError ? err.message : String((err as Error)?.stack ?? err));
  process.exitCode = 1;
}

async function runHaproxyStack(config: GatewayConfig): Promise<void> {
  // The chat page, live dashboard and explainers, served by the admin server.
  const web = createWebRoutes(webOptionsFromConfig(config));
  const stack = await startStack(config, { log, extraRoutes: web });
  process.stdout.write(
    [
      '',
      `ready: front ${stack.frontUrl}  (HTTP/1.1 Upgrade and h2c RFC 8441 on one port, HAProxy ${stack.haproxy.version})`,
      `       routes  ws://${config.host}:${config.frontPort}/echo  /chat/<room>  /feed`,
      ...(stack.frontTlsUrl ? [`       tls     ${stack.frontTlsUrl}  (ALPN h2, http/1.1${stack.caFile ? `; self-signed, trust ${stack.caFile}` : ''})`] : []),
      `       auth    ${config.jwtSecret ? 'JWT (HS256) required at the handshake' : 'none (loopback demo; set JWT_SECRET to require tokens)'}${config.allowedOrigins.length ? `; origins ${config.allowedOrigins.join(', ')}` : ''}`,
      `       admin   ${stack.adminUrl}/endpoints  (npm run endpoints -- list; token in ${config.adminToken ? 'ADMIN_TOKEN' : adminTokenFile(config.stateDir)})`,
      `       web     ${stack.adminUrl}/  (chat)  ${stack.adminUrl}/dashboard  ${stack.adminUrl}/explain   (first visit: ${stack.adminUrl}/dashboard?token=<admin token>)`,
      `       stats   ${stack.statsUrl}  (Prometheus: ${stack.statsUrl}metrics)`,
      `       backends ${stack.backends.map((b) => `${b.id}=${b.url}`).join('  ')}`,
      `       try: npm run demo -- --front ${stack.frontUrl}   npm run hot-restart   stop: Ctrl-C`,
      '',
    ].join('\n'),
  );
  handleSignals(stack.hotRestart, (r) => stack.admin.publish('hot-restart', r), () => web.close().then(() => stack.stop()));
}

async function runEnvoyStack(config: GatewayConfig): Promise<void> {
  const web = createWebRoutes(webOptionsFromConfig(config));
  const stack = await startEnvoyStack(config, { log, extraRoutes: web });
  const how = stack.restarter
    ? `local envoy under the hot-restart orchestrator (epochs, base id ${config.envoyAdminPort})`
    : `restarter at ${config.envoyRestarterUrl}`;
  process.stdout.write(
    [
      '',
      `ready: front ${stack.frontUrl}  (Envoy over xDS: envoy/envoy.yaml; HTTP/1.1 Upgrade and h2c RFC 8441 on one port)`,
      `       envoy   admin ${stack.envoyAdminUrl}  ${how}`,
      `       xds     grpc://${stack.plane.xds.host}:${stack.plane.xds.port}  (ADS; GET ${stack.adminUrl}/xds shows versions sent / ACKed)`,
      `       admin   ${stack.adminUrl}/endpoints  (npm run endpoints -- list; token in ${config.adminToken ? 'ADMIN_TOKEN' : adminTokenFile(config.stateDir)})`,
      `       web     ${stack.adminUrl}/dashboard  (first visit: ?token=<admin token>)`,
      `       backends ${stack.registry.list().map((e) => `${e.id}=${e.host}:${e.port}`).join('  ')}${config.manageBackends ? '' : '  (not started here)'}`,
      `       hot restart: POST ${stack.adminUrl}/hot-restart, npm run hot-restart, or SIGHUP   stop: Ctrl-C`,
      '',
    ].join('\n'),
  );
  handleSignals(stack.hotRestart, (r) => stack.plane.admin.publish('hot-restart', r), () => web.close().then(() => stack.stop()));
}

/** SIGINT/SIGTERM: stop once; SIGHUP: hot restart of the front (as Envoy's restarter and HAProxy's master do). */
function handleSignals(hotRestart: HotRestartEngine, published: (r: unknown) => void, stopAll: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: control plane, then backends (they close sessions with 1001), then the front');
    void stopAll().then(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', () => {
    log.info('SIGHUP: hot restart');
    hotRestart.restart().then(published, (err: Error) => log.error({ err: err.message }, 'hot restart refused'));
  });
}
