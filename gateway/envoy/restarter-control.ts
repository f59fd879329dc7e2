import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ConfigError, GatewayError, isErrorCode } from '../../lib/errors.js';
import { logger } from '../../lib/log.js';
import { isLoopbackHost } from '../../lib/loopback.js';
import { parseRequestTarget } from '../../lib/request-target.js';
import type { EnvoyRestarter, EnvoyRestartResult, EpochSource, LiveEpoch } from './restarter.js';

// The Envoy restarter's control API: how a gateway in ANOTHER process asks for a hot restart. In
// docker compose the restarter is the Envoy container's entrypoint and the gateway is a second
// container in the same network namespace, so a signal cannot cross; a loopback HTTP call can.
//
//   POST /restart   start the next epoch; 200 with the result once it is ready,
//                   409 {error: {code, message}} when it is refused (config rejected, stopping, ...)
//   GET  /epochs    {epochs: LiveEpoch[]}, oldest first
//   GET  /healthz   {ok: true, pid}
//
// It binds loopback only: whoever can reach it can restart Envoy, and in the compose pod only the
// pod's own containers share that loopback.

/** An error the restarter answered with, or that reaching it raised: the code is the restarter's. */
export class RestarterControlError extends GatewayError {}

export interface RestarterControl {
  url: string;
  close(): Promise<void>;
}

export async function startRestarterControl(
  restarter: Pick<EnvoyRestarter, 'restart' | 'epochs'>,
  options: { host?: string; port: number; log?: Logger },
): Promise<RestarterControl> {
  const host = options.host ?? '127.0.0.1';
  const log = options.log ?? logger('envoy-restarter');
  if (!isLoopbackHost(host)) {
    throw new ConfigError('controlHost', `the restart control API binds loopback only, got ${host}`);
  }
  const send = (res: http.ServerResponse, status: number, body: unknown) => {
    if (res.headersSent) return void res.destroy();
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body) + '\n');
  };
  const handle = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const target = parseRequestTarget(req.url);
    if (!target.ok) return send(res, 400, { error: { code: target.error.code, message: target.error.message } });
    const path = target.url.pathname;
    // The pid lets a gateway that attached to a running restarter stop it later (SIGTERM).
    if (req.method === 'GET' && path === '/healthz') return send(res, 200, { ok: true, pid: process.pid });
    if (req.method === 'GET' && path === '/epochs') return send(res, 200, { epochs: restarter.epochs() });
    if (req.method === 'POST' && path === '/restart') {
      log.info('hot restart requested over the control API');
      restarter.restart().then(
        (result) => send(res, 200, result),
        (err: unknown) => {
          const code = err instanceof GatewayError ? err.code : 'GW_ERR_INTERNAL';
          log.error({ code, err: (err as Error).message }, 'hot restart failed');
          send(res, 409, { error: { code, message: (err as Error).message } });
        },
      );
      return;
    }
    send(res, 404, { error: { code: 'GW_ERR_NOT_FOUND', message: `no route ${req.method} ${path}` } });
  };
  // The restarter process owns every Envoy epoch: an exception out of a handler would take the
  // front down with it, so anything one throws is answered 500 instead.
  const server = http.createServer((req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      log.error({ err }, 'restart control API handler failed');
      send(res, 500, { error: { code: 'GW_ERR_INTERNAL', message: (err as Error).message } });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => resolve());
  });
  const url = `http://${host}:${(server.address() as AddressInfo).port}`;
  log.info({ url }, 'restart control API listening');
  return {
    url,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** The restarter behind a control API, as an EpochSource for EnvoyHotRestart (the gateway side). */
export class RemoteRestarter implements EpochSource {
  readonly url: string;
  readonly #restartTimeoutMs: number;

  /** `restartTimeoutMs` must exceed the restarter's own readiness timeout (default 60 s). */
  constructor(url: string, options: { restartTimeoutMs?: number } = {}) {
    this.url = url.replace(/\/$/, '');
    this.#restartTimeoutMs = options.restartTimeoutMs ?? 90_000;
  }

  async restart(): Promise<EnvoyRestartResult> {
    return (await this.#call('POST', '/restart', this.#restartTimeoutMs)) as EnvoyRestartResult;
  }

  /** The restarter's pid, or undefined when nothing answers at the URL. */
  async pid(): Promise<number | undefined> {
    try {
      return ((await this.#call('GET', '/healthz', 1_000)) as { pid?: number }).pid;
    } catch {
      return undefined;
    }
  }

  async epochs(): Promise<LiveEpoch[]> {
    return ((await this.#call('GET', '/epochs', 2_000)) as { epochs: LiveEpoch[] }).epochs;
  }

  async #call(method: string, path: string, timeoutMs: number): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, { method, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      throw new RestarterControlError(
        'GW_ERR_RESTARTER_UNREACHABLE',
        `the Envoy restarter's control API at ${this.url} did not answer ${method} ${path}: ${(err as Error).message} (is the restarter running with --control-port?)`,
      );
    }
    const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
    if (!res.ok) {
      const message = body.error?.message ?? `${method} ${path}: HTTP ${res.status}`;
      // A restarter of another version may answer with a code this one does not list: keep its words.
      const code = body.error?.code;
      if (isErrorCode(code)) throw new RestarterControlError(code, message);
      throw new RestarterControlError('GW_ERR_RESTARTER', code === undefined ? message : `${code}: ${message}`);
    }
    return body;
  }
}
