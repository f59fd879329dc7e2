// `npm start`: 3 backends + Envoy in front on 127.0.0.1:8080 (fed over xDS) and the control plane,
// until Ctrl-C / SIGTERM. `npm start -- --front haproxy`: the same with HAProxy in front.
import { commandLine, exitOnMistake, isUserMistake, defineCommand } from '../lib/cli.js';
import { gatewaySchema, type GatewayConfig } from '../lib/config.js';
import { ConfigError, GatewayError } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { isLoopbackHost } from '../lib/loopback.js';
import { adminTokenFile, readAdminToken } from './admin/token.js';
import type { HotRestartEngine } from './core/hot-restart.js';
import { stackFlags } from './core/stack-file.js';
import { startStack } from './stack.js';
import { createWebRoutes, webOptionsFromConfig } from './admin/pages.js';

const log = logger('gateway');

const START = defineCommand({
  name: 'npm start',
  about: [
    'Backends, Redis and a front (Envoy, or HAProxy with --front haproxy) with the control plane:',
    'registry, health checks, drain, hot restart, admin API and dashboard. Prints a ready block with',
    'the URLs; Ctrl-C or SIGTERM stops everything, SIGHUP hot-restarts the front.',
  ].join(' '),
  config: gatewaySchema,
});

const { config } = commandLine(START);
try {
  if (!isLoopbackHost(config.host) && !config.jwtSecret && !config.insecure) {
    throw new ConfigError('host', `refusing to serve ${config.host} (not loopback) without handshake auth; set JWT_SECRET (or --jwt-secret-file PATH), or pass --insecure to do it anyway`);
  }
  await run(config);
} catch (err) {
  if (isUserMistake(err)) exitOnMistake(START, err);
  log.fatal({ code: (err as GatewayError).code }, err instanceof GatewayError ? err.message : String((err as Error)?.stack ?? err));
  process.exitCode = 1;
}

async function run(config: GatewayConfig): Promise<void> {
  // The chat page, live dashboard and explainers, served by the admin server.
  const web = createWebRoutes(webOptionsFromConfig(config));
  const stack = await startStack(config, { log, extraRoutes: web.routes });
  const { front } = stack;
  const how =
    front.engine === 'envoy'
      ? stack.envoy?.restarterPid !== undefined
        ? `fed over xDS (grpc://${stack.xds.host}:${stack.xds.port}); epochs under the restarter (pid ${stack.envoy.restarterPid}${stack.envoy.attached ? ', attached: it was running' : ''}, ${stack.envoy.restarterUrl}); log ${stack.envoy.logFile}`
        : `fed over xDS; restarter at ${stack.envoy?.restarterUrl}`
      : 'driven over its runtime API, master-worker reloads';
  // The helpers find this stack through its state dir (stack.json): say so when it is not the default.
  const find = stackFlags(config.stateDir).join(' ');
  // On loopback the first visit needs no copy-paste: the link carries the token, which the admin
  // server trades for a cookie and drops from the address bar. Elsewhere the link would leak it.
  const token = readAdminToken(config.stateDir, config.adminToken);
  const dashboard = `${stack.adminUrl}/dashboard?token=${isLoopbackHost(config.host) && token ? encodeURIComponent(token) : '<admin token>'}`;
  process.stdout.write(
    [
      '',
      `open:  ${dashboard}`,
      `ready: front ${front.url}  (${front.label}; HTTP/1.1 Upgrade and h2c RFC 8441 on one port)`,
      `       routes  ws://${config.host}:${config.frontPort}/echo  /chat/<room>  /feed`,
      ...(front.tlsUrl ? [`       tls     ${front.tlsUrl}  (ALPN h2, http/1.1${stack.caFile ? `; self-signed, trust ${stack.caFile}` : ''})`] : []),
      `       front   ${how}; ${front.engine === 'envoy' ? 'admin' : 'stats'} ${front.statsUrl}`,
      `       auth    ${config.jwtSecret ? 'JWT (HS256) required at the handshake' : 'none (loopback demo; set JWT_SECRET to require tokens)'}${config.allowedOrigins.length ? `; origins ${config.allowedOrigins.join(', ')}` : ''}`,
      `       admin   ${stack.adminUrl}/endpoints  (npm run endpoints -- list${find ? ` ${find}` : ''}; token in ${config.adminToken ? 'ADMIN_TOKEN' : adminTokenFile(config.stateDir)})`,
      `       web     ${stack.adminUrl}/  (chat)  ${stack.adminUrl}/dashboard  ${stack.adminUrl}/explain   (every page needs the token once: the open: link, or paste it on the login page)`,
      `       backends ${stack.registry.list().map((e) => `${e.id}=${e.host}:${e.port}`).join('  ')}${config.manageBackends ? '' : '  (not started here)'}`,
      `       try: npm run demo -- --front-url ${front.url}   npm run hot-restart${find ? ` -- ${find}` : ''} (or SIGHUP)   stop: Ctrl-C`,
      '',
    ].join('\n'),
  );
  handleSignals(stack.hotRestart, (r) => stack.admin.publish('hot-restart', r), () => web.close().then(() => stack.stop()));
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
