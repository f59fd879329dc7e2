import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { MissingToolError } from '../../lib/errors.js';
import { logger } from '../../lib/log.js';
import { Supervised } from './supervisor.js';
import { assertPortFree, canConnect, waitFor } from '../../lib/ports.js';

// A local redis-server as a child process, for the room bus when no REDIS_URL is given.
// In-memory only (no RDB/AOF): room history is a recovery window, not a database.

const run = promisify(execFile);
const REDIS_INSTALL_HINT = 'sudo apt-get install -y redis-server   (Debian/Ubuntu), or set REDIS_URL to an existing Redis';

export interface LocalRedis {
  url: string;
  process: Supervised;
  stop(): Promise<void>;
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
  mkdirSync(options.dir, { recursive: true });
  const proc = new Supervised({
    name: 'redis-server',
    command: bin,
    args: ['--port', String(options.port), '--bind', options.host, '--save', '', '--appendonly', 'no', '--dir', path.resolve(options.dir), '--protected-mode', 'yes'],
    log,
    output: 'lines',
    onStdoutLine: (line) => log.debug({ child: line }),
    onStderrLine: (line) => log.warn({ child: line }),
  });
  await proc.whileRunning(waitFor('redis-server to accept connections', () => canConnect(options.host, options.port), 10_000));
  log.info({ port: options.port, pid: proc.pid }, 'redis-server ready (in-memory, no persistence)');
  return { url: `redis://${options.host}:${options.port}`, process: proc, stop: async () => void (await proc.stop(3_000)) };
}
