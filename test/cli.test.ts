import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { backendSchema, envName, findStackSchema, gatewaySchema, kebab, SECRET_FIELDS } from '../lib/config.js';
import { privatePorts } from '../lib/ports.js';

// Every command as a user types it: `--help` prints every flag the command takes (generated from the
// config schema, so it cannot drift), a misspelt flag is named with the nearest real one (exit 2, no
// stack trace), and the helper commands find a stack on other ports through --state-dir (stack.json)
// or --admin-port, as `npm start` itself takes them.

const repo = path.resolve(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

/** npm script → its entry file, read from package.json (so a new command is covered here at once). */
const commands = Object.entries(pkg.scripts)
  .flatMap(([name, script]) => {
    const entry = /^tsx (\S+\.ts)$/.exec(script)?.[1];
    return entry ? [[name, entry] as const] : [];
  });

/** The config fields each command takes (besides its own options). */
const CONFIG: Record<string, z.ZodObject> = {
  start: gatewaySchema,
  demo: gatewaySchema,
  'demo:endpoints': gatewaySchema,
  'demo:hot-restart': gatewaySchema,
  bench: gatewaySchema,
  'bench:rooms': gatewaySchema.pick({ front: true }),
  backend: backendSchema,
  endpoints: findStackSchema,
  'hot-restart': findStackSchema,
  'envoy:check': gatewaySchema.pick({}),
  'h2-frames': gatewaySchema.pick({}),
  'h2-stall': gatewaySchema.pick({ haproxyBin: true, haproxyTemplate: true }),
};

/** A misspelt flag per command, and the flag it should suggest. */
const TYPOS: Record<string, [string[], string]> = {
  start: [['--frontport', '8081'], '--front-port'],
  demo: [['--sesions', '10'], '--sessions'],
  'demo:endpoints': [['--drain-deadline', '3'], '--drain-deadline-s'],
  'demo:hot-restart': [['--upstream-protcol', 'h2'], '--upstream-protocol'],
  bench: [['--quik'], '--quick'],
  'bench:rooms': [['--member', '5'], '--members'],
  backend: [['--id', 'b9', '--prot', '9109'], '--port'],
  endpoints: [['list', '--admin-prot', '9000'], '--admin-port'],
  'hot-restart': [['--stauts'], '--status'],
  'envoy:check': [['--ofline'], '--offline'],
  'h2-frames': [['--quiet-dat'], '--quiet-data'],
  'h2-stall': [['--in-flight-kb', '64'], '--in-flight-kib'],
};

const env = { ...process.env, LOG_LEVEL: 'warn', LOG_FORMAT: 'json' };
const STACK_TRACE = /^\s+at .+[(:]\d+/m;

function run(entry: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', entry, ...args], { cwd: repo, env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('every command', () => {
  it('is in the tables below (a new npm script gets its help and typo checked here)', () => {
    expect(commands.map(([name]) => name).sort()).toEqual(Object.keys(CONFIG).sort());
    expect(Object.keys(TYPOS).sort()).toEqual(Object.keys(CONFIG).sort());
  });

  it.each(commands)('npm run %s -- --help: usage with every flag, its default and env var, in 80 columns (exit 0)', (name, entry) => {
    const r = run(entry, ['--help']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^usage: npm (run )?${name === 'start' ? 'start' : name} -- `));
    expect(r.stdout).toContain('--help, -h');
    for (const key of Object.keys(CONFIG[name]!.shape)) {
      // Secrets come from the environment or a file only: help names the file flag and both variables.
      const expected = Object.hasOwn(SECRET_FIELDS, key)
        ? `^  --${kebab(key)}-file PATH\\s+\\(${envName(key)} or ${envName(key)}_FILE`
        : `^  --${kebab(key)}\\b.*\\s+\\(${envName(key)}, default `;
      expect(r.stdout, key).toMatch(new RegExp(expected, 'm'));
    }
    for (const line of r.stdout.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
    expect(r.stderr).toBe('');
  });

  it.each(commands)('npm run %s with a misspelt flag: names it and the nearest flag, no stack trace (exit 2)', (name, entry) => {
    const [args, suggestion] = TYPOS[name]!;
    const r = run(entry, args);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    const typed = args.find((a) => a.startsWith('--') && a !== '--id')!;
    expect(r.stderr).toContain(`unknown flag ${typed}; did you mean ${suggestion}?`);
    expect(r.stderr).toContain('-- --help lists every flag');
    expect(r.stdout + r.stderr).not.toMatch(STACK_TRACE);
  });

  it('a bad value names the field and where it came from (exit 2)', () => {
    const r = run('scripts/demo.ts', ['--sessions', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^npm run demo: --sessions: .*>=1 \(got "0"\)/);
    const e = run('scripts/hot-restart.ts', [], { ADMIN_PORT: 'ninety' });
    expect(e.code).toBe(2);
    expect(e.stderr).toMatch(/invalid config field "adminPort": .*env ADMIN_PORT="ninety"/);
    expect(e.stderr + e.stdout).not.toMatch(STACK_TRACE);
  });

  it('endpoints without a command, or with an unknown one, says which commands exist (exit 2)', () => {
    for (const args of [[], ['lsit']]) {
      const r = run('scripts/endpoints.ts', args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/list, add, drain, remove, weight or activate/);
    }
  });
});

describe('helpers find a stack on other ports through its state dir', () => {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'gw-cli-'));
  let ports: Awaited<ReturnType<typeof privatePorts>>;
  let gateway: ReturnType<typeof spawn>;
  let stdout = '';

  beforeAll(async () => {
    ports = await privatePorts(3);
    const flags = Object.entries({ ...ports, frontTlsPort: 0 }).flatMap(([k, v]) => [`--${kebab(k)}`, Array.isArray(v) ? v.join(',') : String(v)]);
    gateway = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts', '--front', 'haproxy', '--room-bus', 'none', '--state-dir', stateDir, ...flags], {
      cwd: repo,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    gateway.stdout!.on('data', (d) => (stdout += d));
    const deadline = Date.now() + 60_000;
    while (!stdout.includes('stop: Ctrl-C') && gateway.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(stdout).toContain('stop: Ctrl-C');
  }, 90_000);

  afterAll(async () => {
    if (gateway.exitCode === null) {
      const exited = new Promise((r) => gateway.once('exit', r));
      gateway.kill('SIGTERM');
      await exited;
    }
    rmSync(stateDir, { recursive: true, force: true });
  }, 60_000);

  it('the ready block names the state dir in the helper commands it suggests', () => {
    expect(stdout).toContain(`npm run endpoints -- list --state-dir ${stateDir};`);
    expect(stdout).toContain(`npm run hot-restart -- --state-dir ${stateDir} (or SIGHUP)`);
    expect(stdout).toContain(`token in ${path.join(stateDir, 'admin-token')}`);
    const file = JSON.parse(readFileSync(path.join(stateDir, 'stack.json'), 'utf8'));
    expect(file).toMatchObject({ front: 'haproxy', adminUrl: `http://127.0.0.1:${ports.adminPort}`, ports: { front: ports.frontPort, backends: ports.backendPorts } });
  });

  it.each([
    ['--state-dir (stack.json)', ['list', '--state-dir', stateDir], {}],
    ['--admin-port and --state-dir', ['list', '--admin-port', '', '--state-dir', stateDir], {}],
    ['ADMIN_PORT and STATE_DIR', ['list'], { STATE_DIR: stateDir, ADMIN_PORT: '' }],
  ] as const)('npm run endpoints -- list with %s', (_how, args, extraEnv) => {
    const fill = (v: string) => v || String(ports.adminPort);
    const r = run('scripts/endpoints.ts', args.map(fill), Object.fromEntries(Object.entries(extraEnv).map(([k, v]) => [k, fill(v)])));
    expect(r.code, r.stderr).toBe(0);
    ports.backendPorts.forEach((port, i) => expect(r.stdout).toMatch(new RegExp(`^b${i + 1} +127\\.0\\.0\\.1:${port} +active`, 'm')));
  });

  it('npm run hot-restart finds it too: --status, then a hot restart', () => {
    const status = run('scripts/hot-restart.ts', ['--status', '--state-dir', stateDir]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^engine haproxy\n {2}generation \d+ {2}pid \d+ {2}current/);
    const restart = run('scripts/hot-restart.ts', ['--state-dir', stateDir]);
    expect(restart.code, restart.stderr).toBe(0);
    expect(restart.stdout).toMatch(/^hot restart done in \d+ ms: haproxy generation \d+/);
  });

  it('the 401 text and the explainers name this stack’s token file and ports', async () => {
    const denied = await fetch(`http://127.0.0.1:${ports.adminPort}/endpoints`);
    expect(denied.status).toBe(401);
    expect(((await denied.json()) as { error: { message: string } }).error.message).toContain(path.join(stateDir, 'admin-token'));
    const token = readFileSync(path.join(stateDir, 'admin-token'), 'utf8').trim();
    const page = await (await fetch(`http://127.0.0.1:${ports.adminPort}/explain/watch-frames`, { headers: { authorization: `Bearer ${token}` } })).text();
    expect(page).toContain(`tcp port ${ports.frontPort}`);
    expect(page).not.toContain('tcp port 8080');
  });

  it('stack.json goes away when the stack stops', async () => {
    const exited = new Promise<number | null>((r) => gateway.once('exit', r));
    gateway.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(existsSync(path.join(stateDir, 'stack.json'))).toBe(false);
  });
});
