import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandLine, environment, processTree } from '../lib/procfs.js';
import { H1Client, MuxClient, type WsClient } from '../client/index.js';
import { startBackendProcess, type BackendProcess } from '../gateway/harness.js';
import { localRedisConfigFile, startLocalRedis, type LocalRedis } from '../gateway/core/redis.js';
import { freePort, privatePorts } from '../lib/ports.js';
import { backendSchema, defaults, gatewaySchema, loadConfig, withoutSecrets } from '../lib/config.js';
import { ConfigError } from '../lib/errors.js';
import { logger } from '../lib/log.js';
import { redactSecrets } from '../lib/redact.js';
import { describeEachFront } from './helpers/front-matrix.js';
import { echo, jsonInbox, waitUntil } from './helpers/stack.js';

// Secrets stay off command lines and out of logs: the JWT secret and a Redis password reach a
// process through its environment (or a file), never its argv, which every local user can read;
// a token a client puts in a query string is redacted by every log line of the project and left out
// of the fronts' traffic lines; the local Redis takes no client without its generated password.

const SECRET = `jwt-secret-${randomBytes(24).toString('hex')}`;
const signToken = () =>
  new SignJWT({ rooms: '*' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));

describe('secrets in the config: environment or file, never a flag', () => {
  it('refuses --jwt-secret and --admin-token on the command line, naming the env var and the file flag, without repeating the value', () => {
    for (const [schema, args] of [[backendSchema, ['--id', 'b1', '--jwt-secret', SECRET]], [gatewaySchema, ['--jwt-secret', SECRET]]] as const) {
      const attempt = () => loadConfig(schema, args, {});
      expect(attempt).toThrow(ConfigError);
      expect(attempt).toThrow(/"jwtSecret": --jwt-secret would put a secret on the command line.*set JWT_SECRET in the environment, or pass --jwt-secret-file PATH/);
      expect(attempt).not.toThrow(new RegExp(SECRET));
    }
    expect(() => loadConfig(gatewaySchema, ['--admin-token', 'a-token-of-20-chars!'], {})).toThrow(/"adminToken".*ADMIN_TOKEN.*--admin-token-file PATH/);
  });

  it('refuses a Redis URL with a password on the command line, and takes one without', () => {
    expect(() => loadConfig(backendSchema, ['--id', 'b1', '--redis-url', 'redis://:pa55word@127.0.0.1:6390'], {})).toThrow(/"redisUrl".*REDIS_URL.*--redis-url-file/);
    expect(() => loadConfig(backendSchema, ['--id', 'b1', '--redis-url', 'redis://:pa55word@127.0.0.1:6390'], {})).not.toThrow(/pa55word/);
    expect(loadConfig(backendSchema, ['--id', 'b1', '--redis-url', 'redis://127.0.0.1:6390'], {}).config.redisUrl).toBe('redis://127.0.0.1:6390');
    expect(loadConfig(backendSchema, ['--id', 'b1'], { REDIS_URL: 'redis://:pa55word@127.0.0.1:6390' }).config.redisUrl).toBe('redis://:pa55word@127.0.0.1:6390');
  });

  it('reads a secret from the environment or from a file (flag or *_FILE), one trailing newline dropped', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-secret-'));
    try {
      const file = path.join(dir, 'jwt-secret');
      writeFileSync(file, `${SECRET}\n`, { mode: 0o600 });
      expect(loadConfig(backendSchema, ['--id', 'b1'], { JWT_SECRET: SECRET }).config.jwtSecret).toBe(SECRET);
      expect(loadConfig(backendSchema, ['--id', 'b1', '--jwt-secret-file', file], {}).config.jwtSecret).toBe(SECRET);
      expect(loadConfig(gatewaySchema, [], { JWT_SECRET_FILE: file }).config.jwtSecret).toBe(SECRET);
      expect(() => loadConfig(gatewaySchema, ['--jwt-secret-file', path.join(dir, 'missing')], {})).toThrow(/"jwtSecret": could not read the file given by --jwt-secret-file .*missing\): ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a secret that fails validation is not repeated in the error', () => {
    expect(() => loadConfig(gatewaySchema, [], { JWT_SECRET: 'short-secret' })).toThrow(/"jwtSecret": at least 32 characters \(from env JWT_SECRET\)$/);
  });

  it('children that need no secret get an environment without any', () => {
    const env = withoutSecrets({ PATH: '/bin', JWT_SECRET: 'x', JWT_SECRET_FILE: '/f', ADMIN_TOKEN: 'y', REDIS_URL: 'redis://:p@h:1', LOG_LEVEL: 'debug' });
    expect(env).toEqual({ PATH: '/bin', LOG_LEVEL: 'debug' });
  });

  it('`npm run backend -- --jwt-secret X` exits 2 (a user mistake) with the message, and never echoes the secret', async () => {
    const out = await new Promise<{ code: number; output: string }>((resolve) =>
      execFile(process.execPath, ['--import', 'tsx', 'backend/main.ts', '--id', 'b9', '--jwt-secret', SECRET], { env: { ...process.env, LOG_FORMAT: 'json' } }, (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code) : 0, output: stdout + stderr }),
      ),
    );
    expect(out.code).toBe(2);
    expect(out.output).toMatch(/--jwt-secret would put a secret on the command line.*JWT_SECRET/);
    expect(out.output).not.toContain(SECRET);
  });
});

describe('redaction (lib/redact.ts)', () => {
  it('keeps the path and every parameter name, drops every query value and a URL password', () => {
    expect(redactSecrets('/chat/lobby?token=abc.def.ghi&since=1-0')).toBe('/chat/lobby?token=[redacted]&since=[redacted]');
    expect(redactSecrets('"GET /echo?token=x HTTP/1.1"')).toBe('"GET /echo?token=[redacted] HTTP/1.1"');
    expect(redactSecrets('redis://:p4ss@127.0.0.1:6390/0')).toBe('redis://:[redacted]@127.0.0.1:6390/0');
    expect(redactSecrets('redis://user:p4ss@host:1')).toBe('redis://user:[redacted]@host:1');
    expect(redactSecrets('/echo and redis://127.0.0.1:6390, is it running?')).toBe('/echo and redis://127.0.0.1:6390, is it running?');
  });
});

describe('a Redis URL with credentials given by the user (REDIS_URL)', () => {
  let redis: LocalRedis;
  let stateDir: string;
  const backends: BackendProcess[] = [];
  beforeAll(async () => {
    stateDir = mkdtempSync(path.join(os.tmpdir(), 'gw-redis-url-'));
    // A Redis that takes no client without a password: the same one the gateway runs, on its own.
    redis = await startLocalRedis({ host: '127.0.0.1', port: await freePort(), dir: stateDir });
    const config = defaults(gatewaySchema, { drainTimeoutMs: 1_000, redisUrl: redis.url });
    for (const id of ['b1', 'b2']) backends.push(await startBackendProcess(config, id, await freePort(), logger('test'), 'lines', config.redisUrl));
  });
  afterAll(async () => {
    await Promise.all(backends.map((b) => b.keeper.stop(3_000)));
    await redis?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('backends given redis://:<password>@host:port share rooms, and have the URL in their environment only', async () => {
    const password = decodeURIComponent(new URL(redis.url).password);
    expect(password.length).toBeGreaterThan(20);
    for (const b of backends) {
      expect(commandLine(b.process.pid!).join(' ')).not.toContain(password);
      expect(environment(b.process.pid!).REDIS_URL).toBe(redis.url);
    }
    const [one, two] = backends.map((b) => new MuxClient(b.url));
    try {
      const a = await one!.open('/chat/across');
      const b = await two!.open('/chat/across');
      const inbox = jsonInbox(b.ws);
      expect((await inbox.next('welcome')).bus).toBe('redis');
      a.ws.send(JSON.stringify({ text: 'from b1' }));
      expect(await inbox.next('message')).toMatchObject({ text: 'from b1' });
    } finally {
      await Promise.all([one!.close(), two!.close()]);
    }
  });
});

/** Everything `npm start` wrote: its own stdout and stderr (backends and HAProxy write there too). */
interface Started {
  proc: ChildProcess;
  output: () => string;
  ports: Awaited<ReturnType<typeof privatePorts>>;
  stateDir: string;
}

async function startGateway(front: string): Promise<Started> {
  const ports = await privatePorts(2);
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'gw-secrets-'));
  const args = [
    '--front', front, '--front-port', String(ports.frontPort), '--front-tls-port', '0', '--admin-port', String(ports.adminPort),
    '--xds-port', String(ports.xdsPort), '--envoy-admin-port', String(ports.envoyAdminPort), '--envoy-restarter-port', String(ports.envoyRestarterPort),
    '--haproxy-stats-port', String(ports.haproxyStatsPort), '--redis-port', String(ports.redisPort),
    '--backend-ports', ports.backendPorts.join(','), '--state-dir', stateDir, '--drain-timeout-ms', '1000', '--hard-stop-after-s', '5',
  ];
  const proc = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'debug', LOG_FORMAT: 'json', JWT_SECRET: SECRET },
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  await waitUntil(() => out.includes('ready:') || proc.exitCode !== null, 60_000, 'gateway ready');
  expect(out, 'gateway output').toContain('ready:');
  return { proc, output: () => out, ports, stateDir };
}

/** HAProxy's traffic lines, as the gateway logged them (JSON lines with a `traffic` field). */
function trafficLines(output: string): string[] {
  return output.split('\n').flatMap((line) => {
    try {
      const traffic = (JSON.parse(line) as { traffic?: unknown }).traffic;
      return typeof traffic === 'string' ? [traffic] : [];
    } catch {
      return [];
    }
  });
}

/** Every regular file under `dir`, with its contents. */
function filesUnder(dir: string): Array<{ file: string; text: string }> {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .map((file) => ({ file, text: readFileSync(file, 'latin1') }));
}

describeEachFront('secrets in a running stack (npm start, LOG_LEVEL=debug)', (front) => {
  let gateway: Started;
  /** Every process of the stack, taken while it runs; whatever is left of them is killed at the end. */
  let stackProcesses: Array<{ pid: number; argv: string }> = [];
  let redisPassword: string;

  beforeAll(async () => {
    gateway = await startGateway(front);
    stackProcesses = processTree(gateway.proc.pid!).map((pid) => ({ pid, argv: commandLine(pid).join(' ') }));
    const config = readFileSync(localRedisConfigFile(path.join(gateway.stateDir, 'redis')), 'utf8');
    redisPassword = /^requirepass (\S+)$/m.exec(config)![1]!;
  }, 90_000);
  afterAll(async () => {
    if (gateway?.proc.exitCode === null) gateway.proc.kill('SIGKILL');
    // Only a process still running the same command: a pid freed by a clean stop may be reused.
    for (const { pid, argv } of stackProcesses) {
      if (commandLine(pid).join(' ') !== argv) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    if (gateway) rmSync(gateway.stateDir, { recursive: true, force: true });
  });

  it('no process of the stack has the JWT secret or the Redis password on its command line; the backends have them in their environment', () => {
    const processes = stackProcesses.map(({ pid, argv }) => ({ pid, argv, env: environment(pid) }));
    // The scan covers the whole stack: the front, Redis and both backends are among them.
    const frontBinary = front === 'envoy' ? /envoy/ : /haproxy/;
    expect(processes.some((p) => frontBinary.test(p.argv))).toBe(true);
    expect(processes.some((p) => p.argv.startsWith('redis-server'))).toBe(true);
    const backendProcesses = processes.filter((p) => p.argv.includes('backend/main.ts'));
    expect(backendProcesses).toHaveLength(2);

    for (const p of processes) {
      expect(p.argv, `argv of ${p.pid}`).not.toContain(SECRET);
      expect(p.argv, `argv of ${p.pid}`).not.toContain(redisPassword);
    }
    for (const p of backendProcesses) {
      expect(p.env.JWT_SECRET).toBe(SECRET);
      expect(p.env.REDIS_URL).toBe(`redis://:${redisPassword}@127.0.0.1:${gateway.ports.redisPort}`);
    }
    // Those that need no secret get none. Left out: the gateway itself (given JWT_SECRET) and the
    // esbuild service tsx runs below every TypeScript process, which inherits that process's environment.
    const needNone = processes.filter((q) => q.pid !== gateway.proc.pid && !backendProcesses.includes(q) && !q.argv.includes('esbuild'));
    expect(needNone.length).toBeGreaterThanOrEqual(2);
    for (const p of needNone) {
      expect(Object.keys(p.env), `environment of ${p.argv}`).not.toContain('JWT_SECRET');
      expect(Object.keys(p.env), `environment of ${p.argv}`).not.toContain('REDIS_URL');
    }
  });

  it('the local Redis refuses a client without its password (NOAUTH), its config file is mode 600, and rooms span the backends', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(gateway.ports.redisPort, '127.0.0.1', () => socket.write('PING\r\n'));
      socket.once('data', (d) => {
        resolve(d.toString());
        socket.destroy();
      });
      socket.once('error', reject);
    });
    expect(answer).toMatch(/^-NOAUTH/);
    expect(statSync(localRedisConfigFile(path.join(gateway.stateDir, 'redis'))).mode & 0o777).toBe(0o600);

    const mux = new MuxClient(`http://127.0.0.1:${gateway.ports.frontPort}`);
    try {
      const auth = { headers: { authorization: `Bearer ${await signToken()}` } };
      const members = await Promise.all(Array.from({ length: 4 }, () => mux.open('/chat/secrets', auth)));
      const a = members[0]!;
      const b = members.find((m) => m.backendId !== a.backendId)!;
      expect(b, 'a member on the other backend').toBeDefined();
      const inbox = jsonInbox(b.ws);
      a.ws.send(JSON.stringify({ text: 'across backends' }));
      expect(await inbox.next('message')).toMatchObject({ text: 'across backends' });
    } finally {
      await mux.close();
    }
  });

  it('a token in the query string reaches no log: front, backends, gateway, Redis, a client; nor does the JWT secret or the Redis password', async () => {
    const jwt = await signToken();
    const frontUrl = `http://127.0.0.1:${gateway.ports.frontPort}`;
    const backendUrls = gateway.ports.backendPorts.map((p) => `http://127.0.0.1:${p}`);
    const withToken = (p: string) => `${p}?token=${jwt}`;
    const bearer = { headers: { authorization: `Bearer ${jwt}` } };

    // Through the front and straight to a backend, over HTTP/2 and HTTP/1.1: sessions that open,
    // one refused for want of a bearer header, one for a route that does not exist.
    for (const url of [frontUrl, backendUrls[0]!]) {
      for (const client of [new MuxClient(url), new H1Client(url)] as WsClient[]) {
        try {
          const s = await client.open(withToken('/echo'), bearer);
          expect(await echo(s.ws, 'hello')).toBe('hello');
          const chat = await client.open(`${withToken('/chat/lobby')}&since=0-0`, bearer);
          expect((await jsonInbox(chat.ws).next('welcome')).room).toBe('lobby');
          await expect(client.open(withToken('/echo'))).rejects.toMatchObject({ status: 401 });
          await expect(client.open(withToken('/nowhere'), bearer)).rejects.toMatchObject({ status: 404 });
        } finally {
          await client.close();
        }
      }
    }

    // A client process at debug level: a kept session reopened, an open refused.
    const client = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        ['--import', 'tsx', 'test/helpers/query-token-client.ts'],
        { env: { ...process.env, LOG_LEVEL: 'debug', LOG_FORMAT: 'json', FRONT_URL: frontUrl, BACKEND_URLS: backendUrls.join(','), CLIENT_JWT: jwt } },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
      ),
    );
    expect(client, 'query-token-client').toMatchObject({ code: 0 });
    expect(client.stdout).toContain('query-token-client done');

    if (front === 'haproxy') {
      // HAProxy logs a session when it ends: wait for all ten on /echo (2 per client here, 3 per
      // client of the client process; method GET whatever the client spoke, HAProxy translates).
      const echoLines = () => trafficLines(gateway.output()).filter((l) => l.includes('/echo')).length;
      await waitUntil(() => echoLines() >= 10, 10_000, 'HAProxy traffic lines of all ten /echo sessions');
    }
    // Stopped, so every process has written and flushed its last line.
    gateway.proc.kill('SIGTERM');
    expect(await new Promise((r) => gateway.proc.once('exit', r))).toBe(0);

    const logs = [
      { file: 'gateway stdout+stderr', text: gateway.output() },
      { file: 'client stdout+stderr', text: client.stdout + client.stderr },
      ...filesUnder(gateway.stateDir),
    ];
    const redisConfig = localRedisConfigFile(path.join(gateway.stateDir, 'redis'));
    for (const { file, text } of logs) {
      expect(text.includes(jwt), `the token in ${file}`).toBe(false);
      expect(text.includes(SECRET), `the JWT secret in ${file}`).toBe(false);
      if (file !== redisConfig) expect(text.includes(redisPassword), `the Redis password in ${file}`).toBe(false);
    }

    // What was logged instead, so the checks above read lines that had every chance to hold them:
    // the client's lines with the paths, redacted; HAProxy's traffic lines with the path only — no
    // query at all, not even a redacted one (Node redacts the `traffic` field too; this is the
    // front's own log format at work).
    expect(client.stdout).toContain('"path":"/echo?token=[redacted]","code":1001');
    expect(client.stdout).toMatch(/"message":"WebSocket handshake for \/echo\?token=\[redacted\] rejected with HTTP status 401"/);
    if (front === 'haproxy') {
      const traffic = trafficLines(gateway.output());
      expect(traffic.filter((l) => / 404 .*"GET \/nowhere HTTP\/1\.1"$/.test(l))).toHaveLength(1);
      expect(traffic.filter((l) => l.includes('?'))).toEqual([]);
    }
    if (front === 'envoy') expect(logs.some((l) => l.file.endsWith(path.join('envoy', 'envoy.log')))).toBe(true);
  });
});
