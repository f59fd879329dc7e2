// `npm run backend -- --id b4 --port 9104`: one WebSocket backend (HTTP/1.1 Upgrade + RFC 8441 on one port).
import { commandLine, defineCommand } from '../lib/cli.js';
import { backendSchema } from '../lib/config.js';
import { GatewayError } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { startBackend } from './server.js';
import { stackBus } from './stack-bus.js';

const BACKEND = defineCommand({
  name: 'npm run backend',
  synopsis: '--id ID [--port PORT] [options]',
  about: [
    'One WebSocket backend: HTTP/1.1 Upgrade, h2c extended CONNECT (RFC 8441) and, given a',
    'certificate, TLS on one port. Routes /echo, /chat/<room>, /feed, /healthz, /metrics, /rooms.',
    'Add it to a running stack with `npm run endpoints -- add 127.0.0.1:PORT`.',
  ].join(' '),
  config: backendSchema,
});

const log = logger('backend');
const { config: given } = commandLine(BACKEND);
try {
  let config = given;
  if (!config.redisUrl && config.joinStackBus) {
    const bus = stackBus(config.stateDir);
    if (bus.kind === 'joined') {
      config = { ...config, redisUrl: bus.redisUrl };
      log.info({ backend: config.id, from: bus.from }, "joined the running stack's room bus");
    } else if (bus.kind === 'unreachable') {
      log.warn({ backend: config.id }, `NOT on the stack's room bus (${bus.why}): chat rooms on this backend will not see the others'`);
    } else {
      log.info({ backend: config.id }, `rooms in this process only: ${bus.why}`);
    }
  }
  const backend = await startBackend(config, log.child({ backend: config.id }));
  const stop = (signal: string) => {
    log.info({ signal, backend: config.id }, 'stopping');
    void backend.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
} catch (err) {
  const message = err instanceof GatewayError ? err.message : String((err as Error)?.stack ?? err);
  log.fatal({ code: (err as GatewayError).code }, message);
  process.exitCode = 1;
}
