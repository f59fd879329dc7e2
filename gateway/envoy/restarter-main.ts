// Envoy hot restarter entrypoint (the Envoy container's entrypoint; also for a local `envoy` binary).
//
//   node --import tsx gateway/envoy/restarter-main.ts [flags] [-- <more Envoy args…>]
//
// flags (all optional):
//   --envoy-bin PATH                 Envoy binary (default: envoy, looked up on PATH)
//   --config FILE                    passed to Envoy as `-c FILE`
//   --base-id N                      same for every epoch (default 0)
//   --drain-time-s S                 default 20
//   --parent-shutdown-time-s S       default 30 (old epochs exit this long after the new one is up)
//   --drain-strategy gradual|immediate   omitted unless given (Envoy's default: gradual)
//   --admin-url URL                  Envoy admin, e.g. http://127.0.0.1:9901: the child is a real
//                                    Envoy, ready once its worker threads run (recommended)
//   --start-grace-ms MS              without --admin-url: an epoch is ready after this long (default 5000)
//   --ready-timeout-s S              how long a restart waits for readiness before reporting failure (default 60)
//   --term-wait-s S                  after SIGTERM, how long epochs get before SIGKILL (default 30)
//   --skip-validate                  do not run `envoy --mode validate` before each restart
//   --control-port N                 serve the restart control API (POST /restart, GET /epochs) on
//                                    127.0.0.1:N, for a gateway in another process or container
//                                    (gateway/envoy/restarter-control.ts); off by default
//   --control-host H                 loopback address for it (default 127.0.0.1; non-loopback is refused)
//
// Signals: SIGHUP → start the next epoch (queued while the newest is still initializing);
// SIGTERM/SIGINT → SIGTERM every epoch, then exit (0 when all left in time); SIGUSR1 → forwarded.
// Exit code 1 when an epoch died unexpectedly (every other epoch is stopped first), 2 on bad usage.
import { z } from 'zod';
import { loadConfig } from '../../lib/config.js';
import { GatewayError } from '../../lib/errors.js';
import { logger } from '../../lib/log.js';
import { EnvoyRestarter, graceReadiness, workerThreadsReadiness } from './restarter.js';
import { startRestarterControl, type RestarterControl } from './restarter-control.js';

const schema = z.object({
  envoyBin: z.string().min(1).default('envoy'),
  config: z.string().default(''),
  baseId: z.coerce.number().int().min(0).default(0),
  drainTimeS: z.coerce.number().int().min(0).default(20),
  parentShutdownTimeS: z.coerce.number().int().min(0).default(30),
  drainStrategy: z.enum(['gradual', 'immediate']).optional(),
  adminUrl: z.url().optional(),
  startGraceMs: z.coerce.number().int().min(0).default(5_000),
  readyTimeoutS: z.coerce.number().int().positive().default(60),
  termWaitS: z.coerce.number().int().positive().default(30),
  controlPort: z.coerce.number().int().min(0).max(65535).optional(),
  controlHost: z.string().min(1).default('127.0.0.1'),
});

const log = logger('envoy-restarter');

function usage(message: string): never {
  log.error({ code: 'GW_ERR_RESTARTER_USAGE' }, message);
  process.stderr.write(`envoy-restarter: ${message}\nusage: node --import tsx gateway/envoy/restarter-main.ts [flags] [-- <envoy args…>] (see the top of gateway/envoy/restarter-main.ts)\n`);
  process.exit(2);
}

const argv = process.argv.slice(2);
const dashDash = argv.indexOf('--');
const own = dashDash >= 0 ? argv.slice(0, dashDash) : argv;
const passThrough = dashDash >= 0 ? argv.slice(dashDash + 1) : [];

let restarter: EnvoyRestarter;
let control: { port: number; host: string } | undefined;
try {
  // Flags only: generic env names (CONFIG, BASE_ID) could be set in a container for other reasons.
  const { config, flags } = loadConfig(schema, own, {}, { 'skip-validate': { type: 'boolean' } });
  if (config.config && passThrough.some((a) => a === '-c' || a === '--config-path' || a.startsWith('--config-path='))) {
    usage('give the config either as --config or as -c/--config-path after --, not both');
  }
  restarter = new EnvoyRestarter({
    envoyBin: config.envoyBin,
    args: [...passThrough, ...(config.config ? ['-c', config.config] : [])],
    baseId: config.baseId,
    drainTimeS: config.drainTimeS,
    parentShutdownTimeS: config.parentShutdownTimeS,
    drainStrategy: config.drainStrategy,
    isReady: config.adminUrl ? workerThreadsReadiness() : graceReadiness(config.startGraceMs),
    readyTimeoutMs: config.readyTimeoutS * 1000,
    termWaitMs: config.termWaitS * 1000,
    validateBeforeRestart: flags['skip-validate'] !== true,
    log,
  });
  if (config.controlPort !== undefined) control = { port: config.controlPort, host: config.controlHost };
} catch (err) {
  usage((err as Error).message);
}

let controlApi: RestarterControl | undefined;
if (control) {
  try {
    controlApi = await startRestarterControl(restarter, { ...control, log });
  } catch (err) {
    usage(`--control-port ${control.port}: ${(err as Error).message}`);
  }
}

const describe = (err: unknown) => ({ code: err instanceof GatewayError ? err.code : undefined, err: (err as Error).message });

process.on('SIGHUP', () => {
  log.info('SIGHUP: hot restart requested');
  restarter.restart().then(
    (r) => log.info(r, 'hot restart done'),
    (err: unknown) => log.error(describe(err), 'hot restart failed'),
  );
});
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    if (restarter.stopping) {
      log.info({ signal: sig }, 'already stopping');
      return;
    }
    log.info({ signal: sig }, `${sig}: stopping every Envoy epoch`);
    void restarter.stop(sig);
  });
}
process.on('SIGUSR1', () => restarter.signalAll('SIGUSR1'));

restarter.start().catch((err: unknown) => log.error(describe(err), 'Envoy epoch 0 could not be started or did not become ready'));

const code = await restarter.done;
await controlApi?.close();
log.info({ exitCode: code }, 'envoy restarter exiting');
process.exit(code);
