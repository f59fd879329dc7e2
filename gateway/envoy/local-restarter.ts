import { spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../../lib/config.js';
import { GatewayError } from '../../lib/errors.js';
import { dialHost } from '../../lib/loopback.js';
import { RemoteRestarter } from './restarter-control.js';
import { assertPortFree, waitFor } from '../../lib/ports.js';

// The local Envoy runs under the hot-restart orchestrator (gateway/envoy/restarter-main.ts) in a
// process of its own, not inside the gateway: Envoy asks the kernel for SIGTERM when its parent dies
// (measured: the parent SIGKILLed → Envoy "caught ENVOY_SIGTERM"), so a child of the gateway would
// die with it and a control-plane crash would take the front down. The restarter is started in its
// own session (detached), writes to <stateDir>/envoy/envoy.log, and outlives the gateway; a gateway
// started later on the same ports attaches to it instead of starting another.

const RESTARTER_MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'restarter-main.ts');

/** The restarter process did not start, died during start-up, or its first epoch never became ready. */
class RestarterStartError extends GatewayError {
  constructor(message: string) {
    super('GW_ERR_RESTARTER_START', message);
  }
}

export interface LocalRestarter {
  remote: RemoteRestarter;
  pid: number;
  /** True when a restarter from an earlier gateway was already running and was reused. */
  attached: boolean;
  logFile: string;
  /** SIGTERM to the restarter (it stops every epoch), then wait for it to be gone. */
  stop(): Promise<void>;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Where the local restarter's control API listens (config envoyRestarterPort on the gateway's host). */
export const localRestarterUrl = (config: GatewayConfig) => `http://${dialHost(config.host)}:${config.envoyRestarterPort}`;

export async function startLocalRestarter(
  config: GatewayConfig,
  envoyBin: string,
  bootstrap: string,
  log: Logger,
): Promise<LocalRestarter> {
  const url = localRestarterUrl(config);
  const remote = new RemoteRestarter(url);
  const dir = path.join(path.resolve(config.stateDir), 'envoy');
  mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, 'envoy.log');
  const stop = (pid: number) => async () => {
    if (!alive(pid)) return;
    process.kill(pid, 'SIGTERM');
    await waitFor('the Envoy restarter to exit', async () => !alive(pid), 40_000).catch(() => {
      log.warn({ pid }, 'Envoy restarter still running after 40 s: SIGKILL');
      process.kill(pid, 'SIGKILL');
    });
  };

  const running = await remote.pid();
  if (running !== undefined) {
    log.info({ pid: running, url }, 'an Envoy restarter from an earlier gateway is running: attached (Envoy kept serving meanwhile)');
    return { remote, pid: running, attached: true, logFile, stop: stop(running) };
  }

  await assertPortFree(config.host, config.envoyRestarterPort, 'Envoy restarter control API');
  await assertPortFree(config.host, config.frontPort, 'Envoy front');
  if (config.frontTlsPort) await assertPortFree(config.host, config.frontTlsPort, 'Envoy TLS front');
  await assertPortFree(config.host, config.envoyAdminPort, 'Envoy admin');
  const out = openSync(logFile, 'a');
  const child = spawn(
    process.execPath,
    [
      '--import', 'tsx', RESTARTER_MAIN,
      '--envoy-bin', envoyBin,
      '--config', bootstrap,
      // One base id per admin port, so two local stacks (tests) keep their shared memory apart.
      '--base-id', String(config.envoyAdminPort),
      '--drain-time-s', String(Math.min(20, Math.max(1, config.hardStopAfterS - 1))),
      '--parent-shutdown-time-s', String(config.hardStopAfterS),
      // The old epoch sends GOAWAY on every HTTP/2 connection as soon as it starts draining, as an
      // old HAProxy worker does, so a client's next session goes to the new epoch. With Envoy's
      // default (`gradual`) no GOAWAY came within seconds (measured), and sessions opened right after
      // a restart still landed on the old epoch, to be cut at its parent shutdown. Compose's
      // restarter passes the same.
      '--drain-strategy', 'immediate',
      '--admin-url', `http://${dialHost(config.host)}:${config.envoyAdminPort}`,
      '--control-port', String(config.envoyRestarterPort),
      '--control-host', dialHost(config.host),
      // Envoy's info lines (every extension it links, every xDS update) would drown the log.
      '--', '--log-level', 'warn',
    ],
    { detached: true, stdio: ['ignore', out, out], env: { ...process.env, LOG_FORMAT: 'json' } },
  );
  closeSync(out);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new RestarterStartError(`could not start ${RESTARTER_MAIN}`);
  log.info({ pid, url, logFile }, 'Envoy restarter started (its own process; Envoy output in the log file)');
  // Epoch 0 is ready once its workers run, which needs the xDS server up (it is, by now).
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (!alive(pid)) throw new RestarterStartError(`the Envoy restarter exited during start-up: see ${logFile}`);
    if ((await remote.epochs().catch(() => [])).some((e) => e.ready)) break;
    if (Date.now() > deadline) {
      await stop(pid)();
      throw new RestarterStartError(`Envoy epoch 0 was not ready within 60 s: see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { remote, pid, attached: false, logFile, stop: stop(pid) };
}
