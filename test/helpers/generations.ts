import { establishedOf, tcpTable } from '../../lib/procfs.js';
import type { WsSession } from '../../client/types.js';
import type { Stack } from '../../gateway/harness.js';

// Which hot-restart generation carries a session, asked of the kernel rather than of the proxy: the
// process that owns the proxy's end of the session's TCP connection. The same for every front
// (an HAProxy worker, an Envoy epoch), where the proxies' own counters differ (Envoy adds an old
// epoch's gauges into the new one's while both live, so it has no per-generation split).

/** Our port → the pid (among `pids`) holding the proxy's end of that connection. */
export function connectionOwners(pids: readonly number[], frontPorts: readonly number[]): Map<number, number> {
  const table = tcpTable();
  const ports = new Set(frontPorts);
  const owners = new Map<number, number>();
  for (const pid of pids) {
    for (const e of establishedOf(pid, table)) if (ports.has(e.localPort)) owners.set(e.remotePort, pid);
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
