import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { RestartingChild, Supervised, type RestartEvent } from '../gateway/core/supervisor.js';
import { waitFor } from '../lib/ports.js';
import { sleep, waitUntil } from './helpers/stack.js';

// RestartingChild with real child processes (plain node scripts standing in for a backend): what
// is restarted, how the backoff grows, and that stop() ends it.

const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-restart-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A child that counts its starts in `<name>.starts`; start n crashes at once (exit 3) when n is in
 * `crashOn`, else it writes `<name>.ready-<pid>` and runs until signalled.
 */
function script(name: string, crashOn: number[]) {
  const counter = path.join(dir, `${name}.starts`);
  const source = `
    const fs = require('node:fs');
    const n = (fs.existsSync(${JSON.stringify(counter)}) ? Number(fs.readFileSync(${JSON.stringify(counter)}, 'utf8')) : 0) + 1;
    fs.writeFileSync(${JSON.stringify(counter)}, String(n));
    if (${JSON.stringify(crashOn)}.includes(n)) process.exit(3);
    fs.writeFileSync(${JSON.stringify(path.join(dir, name))} + '.ready-' + process.pid, '');
    process.on('SIGTERM', () => process.exit(0));
    setInterval(() => {}, 1000);`;
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return {
    lines,
    starts: () => (existsSync(counter) ? Number(readFileSync(counter, 'utf8')) : 0),
    options: {
      name,
      spawn: () => new Supervised({ name, command: process.execPath, args: ['-e', source], log, output: 'lines' as const }),
      ready: (child: Supervised) => waitFor(`${name} ready`, async () => existsSync(path.join(dir, `${name}.ready-${child.pid}`)), 10_000, 20),
      log,
      policy: { initialDelayMs: 50, maxDelayMs: 200 },
    },
  };
}

describe('RestartingChild', () => {
  it('restarts a crashed child with a doubling, capped delay while the restarts crash too, and reports it once one is ready', async () => {
    const s = script('loop', [2, 3, 4, 5]);
    const keeper = await RestartingChild.start(s.options);
    const events: RestartEvent[] = [];
    keeper.on('restarted', (e: RestartEvent) => events.push(e));
    const firstPid = keeper.child.pid!;
    try {
      process.kill(firstPid, 'SIGKILL');
      await waitUntil(() => events.length === 1, 20_000, 'restarted');
      expect(s.starts()).toBe(6);
      expect(events[0]).toMatchObject({ name: 'loop', exit: { code: null, signal: 'SIGKILL' }, previousPid: firstPid, pid: keeper.child.pid, restarts: 1 });
      // One delay per failed try: 50, doubled each time, capped at 200.
      expect(s.lines.filter((l) => l.delayMs !== undefined).map((l) => l.delayMs)).toEqual([50, 100, 200, 200, 200]);
    } finally {
      await keeper.stop(2_000);
    }
    expect(keeper.child.running).toBe(false);
    // Longer than any restart delay: a restart still pending would have started by now.
    await sleep(500);
    expect(s.starts()).toBe(6);
  });

  it('leaves a child alone that exits cleanly (code 0 after a SIGTERM from outside)', async () => {
    const s = script('clean', []);
    const keeper = await RestartingChild.start(s.options);
    process.kill(keeper.child.pid!, 'SIGTERM');
    expect(await keeper.child.exited).toEqual({ code: 0, signal: null });
    await sleep(500);
    expect(s.starts()).toBe(1);
    expect(keeper.restarts).toBe(0);
  });

  it('a child that fails its first start is an error for the caller, not restarted', async () => {
    const s = script('first', [1]);
    await expect(RestartingChild.start(s.options)).rejects.toMatchObject({ code: 'GW_ERR_CHILD_PROCESS' });
    await sleep(500);
    expect(s.starts()).toBe(1);
  });
});
