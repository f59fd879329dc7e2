import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WebSocket } from 'ws';
import { defaults, gatewaySchema, type GatewayConfig } from '../../lib/config.js';
import type { AdminDeps } from '../../gateway/admin/api.js';
import { startBackendProcess, startStack, type BackendProcess, type Stack } from '../../gateway/harness.js';
import { freePort, privatePorts } from '../../lib/ports.js';
import { logger } from '../../lib/log.js';

/**
 * A real stack (backend processes + a front + the control plane) on ephemeral loopback ports, in its
 * own state dir. The front is `overrides.front`; HAProxy when unset (suites written against HAProxy's
 * internals); the front-agnostic suites run once per front (describeEachFront in ./fronts.ts).
 */
export async function startTestStack(
  overrides: Partial<GatewayConfig> = {},
  backendCount = 3,
  /** More admin routes (the web page/dashboard), built from the final config. */
  extraRoutes?: (config: GatewayConfig) => NonNullable<AdminDeps['extraRoutes']>,
): Promise<Stack & { dispose(): Promise<void> }> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'gw-test-'));
  const config = defaults(gatewaySchema, {
    front: 'haproxy',
    ...(await privatePorts(backendCount)),
    stateDir,
    drainTimeoutMs: 3_000,
    hardStopAfterS: 10,
    ...overrides,
  });
  const stack = await startStack(config, { childOutput: 'lines', extraRoutes: extraRoutes?.(config) });
  return {
    ...stack,
    async dispose() {
      await stack.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/**
 * One backend process on its own (no front, no control plane), as the gateway starts it — restarted
 * if it crashes — for suites that talk to a backend directly.
 */
export async function startTestBackend(overrides: Partial<GatewayConfig> = {}, id = 'b1'): Promise<BackendProcess & { dispose(): Promise<void> }> {
  const config = defaults(gatewaySchema, { drainTimeoutMs: 3_000, ...overrides });
  const backend = await startBackendProcess(config, id, await freePort(), logger('test'), 'lines');
  return Object.assign(backend, { dispose: async () => void (await backend.keeper.stop(config.drainTimeoutMs + 2_000)) });
}

/** Send `text` and resolve with the first message that comes back. */
export function echo(ws: WebSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const onClose = (code: number) => reject(new Error(`closed with ${code} while waiting for echo of ${text}`));
    ws.once('close', onClose);
    ws.once('message', (data) => {
      ws.off('close', onClose);
      resolve(data.toString());
    });
    ws.send(text);
  });
}

export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

export function countBy<T>(items: readonly T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) out[key(item)] = (out[key(item)] ?? 0) + 1;
  return out;
}

/** Collects every JSON message from the moment it is created; `next(type)` takes them in order. */
export function jsonInbox(ws: WebSocket): { next(type: string, timeoutMs?: number): Promise<Record<string, any>>; all: Array<Record<string, any>> } {
  const all: Array<Record<string, any>> = [];
  let cursor = 0;
  const waiters: Array<() => void> = [];
  ws.on('message', (data) => {
    all.push(JSON.parse(data.toString()) as Record<string, any>);
    waiters.splice(0).forEach((w) => w());
  });
  return {
    all,
    async next(type, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        while (cursor < all.length) {
          const m = all[cursor++]!;
          if (m.type === type) return m;
        }
        if (Date.now() > deadline) throw new Error(`no "${type}" message within ${timeoutMs} ms`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `cond` until it holds; throws naming `what` after `timeoutMs` (a bound on waiting, not a timing assertion). */
export async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(20);
  }
}
