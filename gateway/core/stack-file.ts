import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { GatewayConfig } from '../../lib/config.js';
import { dialHost } from '../../lib/loopback.js';
import { readAdminToken } from '../admin/token.js';
import type { Stack } from './stack.js';

// <stateDir>/stack.json: where a running stack can be reached, written once it is up and removed
// when it stops. The helper commands (endpoints, hot-restart) read it from the state dir they are
// given, so a stack on other ports is found with `--state-dir` alone; the admin token sits beside it.

interface StackFile {
  /** The process that runs the stack (the gateway, or a demo/test that started one in-process). */
  pid: number;
  front: GatewayConfig['front'];
  frontUrl: string;
  frontTlsUrl: string | null;
  adminUrl: string;
  ports: {
    front: number;
    frontTls: number;
    admin: number;
    xds: number;
    envoyAdmin: number;
    haproxyStats: number;
    backends: number[];
  };
  /** The room bus, for a backend started by hand (its password stays in the 0600 redis.conf). */
  roomBus: { host: string; port: number; passwordFile: string | null } | null;
  startedAt: string;
}

const stackFilePath = (stateDir: string) => path.join(path.resolve(stateDir), 'stack.json');

export function writeStackFile(stack: Pick<Stack, 'config' | 'frontUrl' | 'frontTlsUrl' | 'adminUrl' | 'redisUrl'>): void {
  const { config } = stack;
  const body: StackFile = {
    pid: process.pid,
    front: config.front,
    frontUrl: stack.frontUrl,
    frontTlsUrl: stack.frontTlsUrl ?? null,
    adminUrl: stack.adminUrl,
    ports: {
      front: config.frontPort,
      frontTls: config.frontTlsPort,
      admin: config.adminPort,
      xds: config.xdsPort,
      envoyAdmin: config.envoyAdminPort,
      haproxyStats: config.haproxyStatsPort,
      backends: [...config.backendPorts],
    },
    roomBus: stack.redisUrl
      ? {
          host: new URL(stack.redisUrl).hostname,
          port: Number(new URL(stack.redisUrl).port || 6379),
          // The local redis-server's; a REDIS_URL the user gave keeps its credentials to itself.
          passwordFile: config.redisUrl ? null : path.join(path.resolve(config.stateDir), 'redis', 'redis.conf'),
        }
      : null,
    startedAt: new Date().toISOString(),
  };
  const file = stackFilePath(config.stateDir);
  // Renamed into place: a helper never reads half a file.
  writeFileSync(`${file}.tmp`, JSON.stringify(body, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
}

/** Remove the file if this process wrote it (a later stack on the same state dir keeps its own). */
export function removeStackFile(stateDir: string): void {
  if (readStackFile(stateDir)?.pid === process.pid) rmSync(stackFilePath(stateDir), { force: true });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** The running stack's file, or undefined when there is none (or it was left by a process that is gone). */
function readStackFile(stateDir: string): StackFile | undefined {
  const file = stackFilePath(stateDir);
  if (!existsSync(file)) return undefined;
  try {
    const body = JSON.parse(readFileSync(file, 'utf8')) as StackFile;
    return typeof body.adminUrl === 'string' && Number.isInteger(body.pid) && alive(body.pid) ? body : undefined;
  } catch {
    return undefined;
  }
}

/** What a helper command needs on its command line to find this stack: nothing in the default state dir. */
export function stackFlags(stateDir: string): string[] {
  return path.resolve(stateDir) === path.resolve('.gateway') ? [] : ['--state-dir', stateDir];
}

/** How a helper command reaches the running stack's admin API, and how it found it. */
export interface AdminTarget {
  url: string;
  token: string | undefined;
  /** For error messages: which of the ways below found it. */
  from: string;
}

/**
 * The admin API of the stack a helper should talk to. An explicit `--admin URL` wins, then an
 * admin port or host given as a flag or env var, then the state dir's stack.json, then the defaults.
 */
export function findAdmin(
  config: Pick<GatewayConfig, 'host' | 'adminPort' | 'adminToken' | 'stateDir'>,
  given: ReadonlySet<string>,
  adminUrl?: string,
): AdminTarget {
  const token = readAdminToken(config.stateDir, config.adminToken);
  if (adminUrl) return { url: adminUrl.replace(/\/$/, ''), token, from: '--admin' };
  const configured = { url: `http://${dialHost(config.host)}:${config.adminPort}`, token };
  if (given.has('adminPort') || given.has('host')) return { ...configured, from: 'the admin port and host given' };
  const file = readStackFile(config.stateDir);
  if (file) return { url: file.adminUrl, token, from: stackFilePath(config.stateDir) };
  return { ...configured, from: 'the defaults' };
}
