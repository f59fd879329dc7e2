// A backend started by hand (`npm run backend`) beside a running stack joins that stack's room bus
// (stack.json + the local Redis's 0600 config), so its chat rooms are everyone's; with no stack in
// its state dir it says its rooms are its own. `endpoints list` shows each endpoint's bus.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MuxClient } from '../client/index.js';
import { freePort, waitFor } from '../lib/ports.js';
import { jsonInbox, startTestStack } from './helpers/stack.js';

const repo = path.resolve(import.meta.dirname, '..');

function startByHand(args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'backend/main.ts', ...args], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'info', LOG_FORMAT: 'json', REDIS_URL: '' },
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, output: () => out };
}

const healthOf = async (port: number) => (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { bus: { kind: string; status: string } };

describe('a backend started by hand', () => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  const started: ChildProcess[] = [];
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    for (const c of started) c.kill('SIGTERM');
    await stack?.dispose();
  });

  it("joins the running stack's room bus, and shares a room with the stack's own backends", async () => {
    const port = await freePort();
    const b9 = startByHand(['--id', 'b9', '--port', String(port), '--state-dir', stack.config.stateDir]);
    started.push(b9.child);
    await waitFor('b9 /healthz', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 45_000, 200);
    expect(await healthOf(port)).toMatchObject({ bus: { kind: 'redis', status: 'ok' } });
    expect(b9.output()).toContain("joined the running stack's room bus");
    // The secret stayed off its command line: it read the password from the 0600 file.
    expect(b9.output()).not.toMatch(/redis:\/\/:[^@\s]+@/);

    // One member on b9, one on the stack's b1, same room: each sees the other's message.
    const room = `hand-${Date.now().toString(36)}`;
    const b1 = stack.backends[0]!;
    const [onB9, onB1] = [new MuxClient(`http://127.0.0.1:${port}`), new MuxClient(b1.url)];
    try {
      const [s9, s1] = await Promise.all([onB9.open(`/chat/${room}`), onB1.open(`/chat/${room}`)]);
      const inbox1 = jsonInbox(s1.ws);
      await new Promise((r) => setTimeout(r, 300));
      s9.ws.send(JSON.stringify({ text: 'from b9' }));
      await expect.poll(() => inbox1.all.some((m) => m.type === 'message' && m.text === 'from b9' && m.backend === 'b9'), { timeout: 10_000 }).toBe(true);
    } finally {
      await Promise.all([onB9.close(), onB1.close()]);
    }
  });

  it('with no stack in its state dir, says its rooms are its own (bus local)', async () => {
    const port = await freePort();
    const empty = mkdtempSync(path.join(os.tmpdir(), 'gw-no-stack-'));
    try {
      const alone = startByHand(['--id', 'b8', '--port', String(port), '--state-dir', empty]);
      started.push(alone.child);
      await waitFor('b8 /healthz', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 45_000, 200);
      expect((await healthOf(port)).bus.kind).toBe('local');
      expect(alone.output()).toContain('rooms in this process only: no running stack');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
