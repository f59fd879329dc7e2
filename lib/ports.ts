import { readFileSync } from 'node:fs';
import net from 'node:net';
import { PortInUseError, TimeoutError } from './errors.js';

// Ports, in one place: is one free, is one answering, and a free set for a private stack.

/** Poll `check` until it returns true. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new TimeoutError(what, timeoutMs);
}

export function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Fail fast when a port is taken. HAProxy binds with SO_REUSEPORT, so a stale HAProxy on the same
 * port would silently share it and take a random share of the connections.
 */
export async function assertPortFree(host: string, port: number, who: string): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new PortInUseError(host, port, who) : err),
    );
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/**
 * A port the OS considers free right now (for tests and ephemeral stacks). It is picked below the
 * kernel's range for outgoing connections (ip_local_port_range, 32768+ by default), not by
 * listen(0): listen(0) draws from that same range, so a test opening thousands of client
 * connections could take the "free" port before the stack binds it.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [low, high] = listenPortRange();
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    // A port handed out a moment ago is probably not bound yet: never give it twice (privatePorts
    // asks for eight in a row, and the stack binds them only later).
    if (handedOut.has(port)) continue;
    if (await canListen(host, port)) {
      handedOut.add(port);
      if (handedOut.size > 2_000) handedOut.delete(handedOut.values().next().value!);
      return port;
    }
  }
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Ports freePort returned, oldest first. */
const handedOut = new Set<number>();

/** Ports for freePort: from 20000 up to just below the outgoing-connection range (and above every default port). */
function listenPortRange(): [number, number] {
  let outgoingLow = 32768;
  try {
    outgoingLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || outgoingLow;
  } catch {
    // not Linux: keep the default
  }
  return outgoingLow > 21_000 ? [20_000, outgoingLow - 1] : [outgoingLow + 10_000, 65_000];
}

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, host, () => probe.close(() => resolve(true)));
  });
}

/** Every port a stack binds, each free right now: a stack that never collides with `npm start` or another run. */
export async function privatePorts(backends = 3): Promise<{
  frontPort: number;
  frontTlsPort: number;
  haproxyStatsPort: number;
  adminPort: number;
  redisPort: number;
  xdsPort: number;
  envoyAdminPort: number;
  envoyRestarterPort: number;
  backendPorts: number[];
}> {
  return {
    frontPort: await freePort(),
    frontTlsPort: await freePort(),
    haproxyStatsPort: await freePort(),
    adminPort: await freePort(),
    redisPort: await freePort(),
    xdsPort: await freePort(),
    envoyAdminPort: await freePort(),
    envoyRestarterPort: await freePort(),
    backendPorts: await Promise.all(Array.from({ length: backends }, () => freePort())),
  };
}
