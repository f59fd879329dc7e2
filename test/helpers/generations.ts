import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { WsSession } from '../../client/types.js';
import type { Stack } from '../../gateway/stack.js';

// Which hot-restart generation carries a session, asked of the kernel rather than of the proxy: the
// process that owns the proxy's end of the session's TCP connection. The same for every front
// (an HAProxy worker, an Envoy epoch), where the proxies' own counters differ (Envoy adds an old
// epoch's gauges into the new one's while both live, so it has no per-generation split).

/** Proxy-side socket inode → our (client) port, for ESTABLISHED loopback connections to `ports`. */
function acceptedSockets(ports: ReadonlySet<number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '01') continue;
      const local = parseInt(f[1]!.split(':').at(-1)!, 16);
      const remote = parseInt(f[2]!.split(':').at(-1)!, 16);
      if (ports.has(local)) out.set(f[9]!, remote);
    }
  }
  return out;
}

/** Our port → the pid (among `pids`) holding the proxy's end of that connection. */
export function connectionOwners(pids: readonly number[], frontPorts: readonly number[]): Map<number, number> {
  const sockets = acceptedSockets(new Set(frontPorts));
  const owners = new Map<number, number>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // exited meanwhile
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
      const clientPort = inode === undefined ? undefined : sockets.get(inode);
      if (clientPort !== undefined) owners.set(clientPort, pid);
    }
  }
  return owners;
}

/** The live generation carrying each of `sessions` (undefined: no live generation holds its connection). */
export async function generationOf(stack: Stack, sessions: readonly WsSession[]): Promise<Array<number | undefined>> {
  const generations = await stack.hotRestart.generations();
  const frontPorts = [stack.config.frontPort, ...(stack.config.frontTlsPort ? [stack.config.frontTlsPort] : [])];
  const owners = connectionOwners(generations.map((g) => g.pid), frontPorts);
  return sessions.map((s) => {
    const pid = s.localPort === undefined ? undefined : owners.get(s.localPort);
    return generations.find((g) => g.pid === pid)?.generation;
  });
}

/** How many of `sessions` each live generation carries (`none`: no live generation holds the connection). */
export async function sessionsByGeneration(stack: Stack, sessions: readonly WsSession[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const g of await generationOf(stack, sessions)) out[String(g ?? 'none')] = (out[String(g ?? 'none')] ?? 0) + 1;
  return out;
}
