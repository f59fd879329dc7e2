// `npm run demo`, the main job, as a user runs it: on private ports, its terminal holds the progress
// and the result table (last), and the stack's logs go to <state dir>/demo.log unless --verbose.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { privatePorts } from '../lib/ports.js';
import { describeEachFront } from './helpers/front-matrix.js';

const repo = path.resolve(import.meta.dirname, '..');

async function runDemo(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts', ...args], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'pipe'],
    // As a user runs it: info-level logs (the test runner's default is warn), which must not reach the terminal.
    env: { ...process.env, LOG_LEVEL: 'info', LOG_FORMAT: 'json' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, stdout, stderr };
}

describeEachFront('npm run demo', (front) => {
  it('ends with its table; the stack logs to a file, not the terminal', { timeout: 180_000 }, async () => {
    const p = await privatePorts(3);
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'gw-demo-test-'));
    try {
      const { code, stdout, stderr } = await runDemo([
        '--front', front, '--sessions', '50', '--messages', '2', '--state-dir', stateDir,
        '--front-port', String(p.frontPort), '--front-tls-port', String(p.frontTlsPort), '--haproxy-stats-port', String(p.haproxyStatsPort),
        '--admin-port', String(p.adminPort), '--redis-port', String(p.redisPort), '--xds-port', String(p.xdsPort),
        '--envoy-admin-port', String(p.envoyAdminPort), '--envoy-restarter-port', String(p.envoyRestarterPort), '--backend-ports', p.backendPorts.join(','),
      ]);
      expect(code, stderr).toBe(0);
      const lines = stdout.trim().split('\n');
      // No log line on the terminal: everything on stdout is the result.
      expect(lines.filter((l) => l.startsWith('{"level"'))).toEqual([]);
      expect(stdout).toMatch(/\| h2 mux \(1 conn\) \| 50 +\| 1 +\|/);
      expect(stdout).toMatch(/\| h1 upgrade +\| 50 +\| 50 +\|/);
      expect(lines.at(-1)).toMatch(/^h2 used 1 TCP connection\(s\) for 50 sessions; h1 used 50\./);
      expect(stderr).toContain(`its logs: ${path.join(stateDir, 'demo.log')}`);
      const log = path.join(stateDir, 'demo.log');
      expect(existsSync(log)).toBe(true);
      expect(readFileSync(log, 'utf8')).toMatch(/backend listening/);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
