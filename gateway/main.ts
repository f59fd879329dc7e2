// `npm start`: 3 backends + HAProxy front on 127.0.0.1:8080, until Ctrl-C / SIGTERM.
import { gatewaySchema, loadConfig, type GatewayConfig } from '../lib/config.js';
import { GatewayError } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { isLoopbackHost } from '../lib/loopback.js';
import { adminTokenFile } from './admin-token.js';
import { startEnvoyFrontStack } from './envoy-front.js';
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
  if (front === 'envoy') {
    const envoy = await startEnvoyFrontStack(config, log);
    process.stdout.write(
      `\nready: front ${envoy.frontUrl}  (Envoy, envoy/envoy-static.yaml; HTTP/1.1 Upgrade and h2c RFC 8441 on one port)\n` +
        `       envoy admin ${envoy.adminUrl}   backends ${envoy.backends.map((b) => `${b.id}=${b.url}`).join('  ')}\n` +
        `       SIGHUP: hot restart (new Envoy epoch)   stop: Ctrl-C\n\n`,
    );
    const stopEnvoy = () => void envoy.stop().then(() => process.exit(0));
    process.once('SIGINT', stopEnvoy);
    process.once('SIGTERM', stopEnvoy);
    process.on('SIGHUP', () => void envoy.restarter.restart().catch((err: Error) => log.error({ err: err.message }, 'hot restart refused')));
  } else {
    await runHaproxyStack(config);
  }
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
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: draining backends, then HAProxy');
    void web
      .close()
      .then(() => stack.stop())
      .then(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  // SIGHUP = hot restart of the front, as with Envoy's restarter and HAProxy's master.
  process.on('SIGHUP', () => {
    log.info('SIGHUP: hot restart');
    stack.hotRestart.restart().then(
      (r) => stack.admin.publish('hot-restart', r),
      (err: Error) => log.error({ err: err.message }, 'hot restart refused'),
    );
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
}
