import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { BACKEND_FIELDS, envName, kebab, SECRET_FIELDS, withoutSecrets, type GatewayConfig } from '../../lib/config.js';
import type { Teardown } from './teardown.js';
import { RestartingChild, Supervised, type RestartPolicy } from './supervisor.js';
import { assertPortFree, waitFor } from '../../lib/ports.js';

// A backend (`backend/main.ts`) as a child process of the gateway, the bench or a test, with every
// backend setting the gateway has passed down as flags — except the secrets (the JWT secret, a Redis
// URL that may carry a password), which go in its environment: any local user reads a process's
// command line, only the same user (and root) its environment. The environment rather than a 0600
// file in the state dir: nothing is left on disk after a crash (the state dir may be a kept volume,
// as in docker compose), and env vars are already how every config field can be given. One that
// crashes is started again on the same port (RestartingChild); the front's and the gateway's health
// checks take it out of rotation while it is down and back in once /healthz answers.

const BACKEND_MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'backend', 'main.ts');

export interface BackendProcess {
  id: string;
  host: string;
  port: number;
  /** The running child: a new one after each restart. */
  readonly process: Supervised;
  /** Restarts after a crash ('restarted' events); its stop() stops the backend for good. */
  readonly keeper: RestartingChild;
  url: string;
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
  restart: { policy?: Partial<RestartPolicy>; mayRestart?: () => boolean } = {},
): Promise<BackendProcess> {
  await assertPortFree(config.host, port, `backend ${id}`);
  const childLog = log.child({ backend: id });
  // Told its bus (or none) here: it must not go looking for a stack's.
  const flags: string[] = ['--join-stack-bus', 'false'];
  // Only the secrets this backend is given, not whatever the gateway's own environment holds (a
  // REDIS_URL there must not reach a backend run with `--room-bus none`).
  const env = withoutSecrets(process.env);
  const settings: Record<string, unknown> = { ...Object.fromEntries(BACKEND_FIELDS.map((key) => [key, config[key]])), redisUrl };
  for (const [key, value] of Object.entries(settings)) {
    if (value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    const text = Array.isArray(value) ? value.join(',') : String(value);
    if (Object.hasOwn(SECRET_FIELDS, key)) env[envName(key)] = text;
    else flags.push(`--${kebab(key)}`, text);
  }
  const spawn = () => new Supervised({
    name: `backend ${id}`,
    command: process.execPath,
    args: ['--import', 'tsx', BACKEND_MAIN, '--id', id, '--port', String(port), '--host', config.host, ...flags],
    env,
    log: childLog,
    output,
    onStdoutLine: (line) => childLog.debug({ child: line }),
    onStderrLine: (line) => childLog.warn({ child: line }),
  });
  const url = `http://${config.host}:${port}`;
  const keeper = await RestartingChild.start({
    name: `backend ${id}`,
    spawn,
    // Generous: each backend compiles its TypeScript at start (tsx), three at once on a busy 2-core
    // machine took up to 17 s; a backend that never answers still fails the start, just later.
    ready: () => waitFor(`backend ${id} /healthz`, () => healthy(url), 45_000, 100),
    log: childLog,
    ...restart,
  });
  return {
    id,
    host: config.host,
    port,
    get process() {
      return keeper.child;
    },
    keeper,
    url,
  };
}

/**
 * The backends on config.backendPorts (b1, b2, …). Their stop (each drains its sessions with 1001
 * first) goes on `teardown` before they start, so a start that fails half-way stops those that did.
 */
export async function startConfiguredBackends(
  config: GatewayConfig,
  log: Logger,
  output: 'inherit' | 'lines',
  redisUrl: string | undefined,
  teardown: Pick<Teardown, 'add' | 'running'>,
): Promise<BackendProcess[]> {
  const backends: BackendProcess[] = [];
  teardown.add(() => Promise.all(backends.map((b) => b.keeper.stop(config.drainTimeoutMs + 2_000))));
  // From the first step of the stack's stop on, a backend that dies stays down: the teardown is
  // about to stop it anyway.
  const mayRestart = () => !teardown.running;
  const results = await Promise.allSettled(
    config.backendPorts.map((port, i) => startBackendProcess(config, backendId(i), port, log, output, redisUrl, { mayRestart })),
  );
  for (const r of results) if (r.status === 'fulfilled') backends.push(r.value);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return backends;
}
