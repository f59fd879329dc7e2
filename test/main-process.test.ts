import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MuxClient } from '../client/index.js';
import { canConnect, freePort } from '../lib/ports.js';
import { echo } from './helpers/stack.js';

// `npm start` as a user runs it: a process that prints a ready line, serves, and on SIGTERM stops
// every child it started.

describe('npm start (gateway/main.ts)', () => {
  it('prints a ready line, serves through the front, and SIGTERM stops every child', async () => {
    const ports = { front: await freePort(), stats: await freePort(), admin: await freePort(), redis: await freePort(), xds: await freePort(), tls: await freePort(), b: [await freePort(), await freePort(), await freePort()] };
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'gw-main-'));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'gateway/main.ts', '--front-port', String(ports.front), '--haproxy-stats-port', String(ports.stats), '--admin-port', String(ports.admin), '--redis-port', String(ports.redis), '--xds-port', String(ports.xds), '--front-tls-port', String(ports.tls),
        '--backend-ports', ports.b.join(','), '--state-dir', stateDir, '--drain-timeout-ms', '1000'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } },
    );
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const deadline = Date.now() + 30_000;
      while (!stdout.includes('ready:') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      expect(stdout).toContain(`ready: front http://127.0.0.1:${ports.front}`);

      const client = new MuxClient(`http://127.0.0.1:${ports.front}`);
      const s = await client.open('/echo');
      expect(await echo(s.ws, 'through npm start')).toBe('through npm start');
      await client.close();

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      for (const port of [ports.front, ports.stats, ports.admin, ports.redis, ports.xds, ports.tls, ...ports.b]) expect(await canConnect('127.0.0.1', port)).toBe(false);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('exits 2 (a user mistake) with one line naming a bad config field', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts', '--front-port', '99999'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOG_FORMAT: 'json' },
    });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code).toBe(2);
    expect(err).toMatch(/^npm start: invalid config field "frontPort": .*--front-port="99999"/);
  });
});

describe('npm start -- --front envoy', () => {
  it('without an envoy binary, exits 1 and says how to install one', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts', '--front', 'envoy', '--backend-ports', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOG_FORMAT: 'json', PATH: '/usr/bin:/bin', ENVOY_BIN: '/nonexistent/envoy' },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code).toBe(1);
    expect(out).toMatch(/GW_ERR_MISSING_TOOL.*scripts\/install-deps/);
  });
});
