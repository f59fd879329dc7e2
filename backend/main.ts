// `npm run backend -- --id b4 --port 9104`: one WebSocket backend (HTTP/1.1 Upgrade + RFC 8441 on one port).
import { backendSchema, loadConfig } from '../lib/config.js';
import { GatewayError } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { startBackend } from './server.js';

const log = logger('backend');
try {
  const { config } = loadConfig(backendSchema);
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
