import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { MissingToolError } from '../../lib/errors.js';
import { logger } from '../../lib/log.js';
import { Supervised } from './supervisor.js';
import { assertPortFree, canConnect, waitFor } from '../../lib/ports.js';

// A local redis-server as a child process, for the room bus when no REDIS_URL is given.
// In-memory only (no RDB/AOF): room history is a recovery window, not a database.
//
// It takes clients with a password only: a fresh random one at every start, written with the rest
// of its settings to a config file only this user can read (<dir>/redis.conf, mode 600). Not on
// redis-server's command line (`--requirepass` there is readable by every local user), and not
// kept anywhere else: a process of the same user who wants in (redis-cli) reads it from that file.
// The backends get it inside the Redis URL, through their environment (gateway/core/backend-process.ts).

const run = promisify(execFile);
const REDIS_INSTALL_HINT = 'sudo apt-get install -y redis-server   (Debian/Ubuntu), or set REDIS_URL to an existing Redis';

export interface LocalRedis {
  /** redis://:<password>@host:port — a secret: log it only through lib/log.ts (its `url` field is redacted). */
  url: string;
  /** The config file redis-server was started from (mode 600; holds the password). */
  configFile: string;
  process: Supervised;
  stop(): Promise<void>;
}

/** The config file of the local Redis whose working dir is `dir` (what `startLocalRedis` writes). */
export const localRedisConfigFile = (dir: string) => path.join(path.resolve(dir), 'redis.conf');

/** A redis.conf string value: quoted, so a path with spaces stays one argument. */
const quoted = (value: string) => `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;

function writeConfig(file: string, settings: Record<string, string>): void {
  const text = Object.entries(settings).map(([key, value]) => `${key} ${value}\n`).join('');
  // Removed first: writeFileSync's mode applies only to a file it creates, and an older file may
  // have been made with wider permissions.
  rmSync(file, { force: true });
  writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
}

export async function startLocalRedis(
  options: { host: string; port: number; dir: string; bin?: string },
  log: Logger = logger('redis'),
): Promise<LocalRedis> {
  const bin = options.bin ?? 'redis-server';
  try {
    await run(bin, ['--version']);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new MissingToolError(bin, REDIS_INSTALL_HINT);
    throw err;
  }
  await assertPortFree(options.host, options.port, 'redis');
  const dir = path.resolve(options.dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // base64url: no character redis.conf or a URL's userinfo would need to escape.
  const password = randomBytes(32).toString('base64url');
  const configFile = localRedisConfigFile(dir);
  writeConfig(configFile, {
    port: String(options.port),
    bind: options.host,
    save: '""',
    appendonly: 'no',
    dir: quoted(dir),
    'protected-mode': 'yes',
    requirepass: password,
  });
  const proc = new Supervised({
    name: 'redis-server',
    command: bin,
    args: [configFile],
    log,
    output: 'lines',
    onStdoutLine: (line) => log.debug({ child: line }),
    onStderrLine: (line) => log.warn({ child: line }),
  });
  await proc.whileRunning(waitFor('redis-server to accept connections', () => canConnect(options.host, options.port), 10_000));
  log.info({ port: options.port, pid: proc.pid, configFile }, 'redis-server ready (in-memory, no persistence, password in its config file)');
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `redis://:${password}@${host}:${options.port}`,
    configFile,
    process: proc,
    stop: async () => void (await proc.stop(3_000)),
  };
}
