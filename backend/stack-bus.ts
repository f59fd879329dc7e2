import { readFileSync } from 'node:fs';
import path from 'node:path';

// A backend started by hand beside `npm start` joins that stack's room bus: the stack wrote where
// its Redis listens to <stateDir>/stack.json, and the local Redis's password sits in its redis.conf
// (mode 600, readable by this same user). Without it the backend's chat rooms would silently be
// its own, apart from every other backend's.

export type StackBus =
  | { kind: 'joined'; redisUrl: string; from: string }
  | { kind: 'none'; why: string }
  | { kind: 'unreachable'; why: string };

export function stackBus(stateDir: string): StackBus {
  const file = path.join(path.resolve(stateDir), 'stack.json');
  let stack: { roomBus?: { host: string; port: number; passwordFile: string | null } | null };
  try {
    stack = JSON.parse(readFileSync(file, 'utf8')) as typeof stack;
  } catch {
    return { kind: 'none', why: `no running stack in ${stateDir} (no stack.json)` };
  }
  const bus = stack.roomBus;
  if (!bus) return { kind: 'none', why: `the stack in ${stateDir} runs without a room bus` };
  if (!bus.passwordFile) return { kind: 'unreachable', why: `the stack's Redis (${bus.host}:${bus.port}) was given by REDIS_URL; set REDIS_URL here too` };
  try {
    const password = /^requirepass\s+(\S+)$/m.exec(readFileSync(bus.passwordFile, 'utf8'))?.[1];
    if (!password) return { kind: 'unreachable', why: `no password in ${bus.passwordFile}` };
    return { kind: 'joined', redisUrl: `redis://:${encodeURIComponent(password)}@${bus.host}:${bus.port}`, from: file };
  } catch (err) {
    return { kind: 'unreachable', why: `cannot read ${bus.passwordFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
}
