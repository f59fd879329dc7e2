import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

// What the bench reads about other processes, straight from Linux /proc (never assumed):
// CPU time, RSS, open sockets, and TCP sockets by state and port (matched to a process through the
// socket inodes in its /proc/<pid>/fd), and a process tree with each member's argv and environment
// (what the secrets test scans). Every reader returns undefined/empty when the process is gone.

let ticksPerSecond: number | undefined;

/** USER_HZ, the unit of utime/stime in /proc/<pid>/stat (100 on nearly every Linux). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** User + system CPU time of a process, in ms (resolution 1/CLK_TCK s). */
export function cpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1000) / clockTicks();
  } catch {
    return undefined;
  }
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Inodes of the sockets a process holds open, and its total fd count. */
function socketInodes(pid: number): { fds: number; inodes: Set<number> } {
  const inodes = new Set<number>();
  let names: string[];
  try {
    names = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return { fds: 0, inodes };
  }
  for (const name of names) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${name}`));
      if (m) inodes.add(Number(m[1]));
    } catch {
      // closed while we looked
    }
  }
  return { fds: names.length, inodes };
}

export interface TcpEntry {
  localPort: number;
  remotePort: number;
  /** 'ESTABLISHED', 'LISTEN', 'TIME_WAIT', ... */
  state: string;
  /** Bytes received and not yet read by the owner (`ss` Recv-Q, for an established socket). */
  rxQueue: number;
  /** Bytes written and not yet acknowledged by the peer (`ss` Send-Q, for an established socket). */
  txQueue: number;
}

const TCP_STATES: Record<string, string> = {
  '01': 'ESTABLISHED',
  '02': 'SYN_SENT',
  '03': 'SYN_RECV',
  '04': 'FIN_WAIT1',
  '05': 'FIN_WAIT2',
  '06': 'TIME_WAIT',
  '07': 'CLOSE',
  '08': 'CLOSE_WAIT',
  '09': 'LAST_ACK',
  '0A': 'LISTEN',
  '0B': 'CLOSING',
};

/** Every TCP socket in this network namespace, by inode (sockets in TIME_WAIT have inode 0). */
export function tcpTable(): Map<number, TcpEntry> {
  const table = new Map<number, TcpEntry>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const inode = Number(f[9]);
      if (!inode) continue;
      table.set(inode, {
        localPort: parseInt(f[1]!.split(':')[1] ?? '0', 16),
        remotePort: parseInt(f[2]!.split(':')[1] ?? '0', 16),
        state: TCP_STATES[f[3]!] ?? f[3]!,
        txQueue: parseInt(f[4]!.split(':')[0] ?? '0', 16),
        rxQueue: parseInt(f[4]!.split(':')[1] ?? '0', 16),
      });
    }
  }
  return table;
}

export interface SocketCount {
  fds: number;
  /** Socket fds of any kind (TCP, Unix, ...). */
  sockets: number;
  /** Established TCP connections owned by the process. */
  tcpEstablished: number;
  /** Established TCP connections whose LOCAL port is one of these (accepted on a listener). */
  accepted: number;
  /** Established TCP connections whose REMOTE port is one of these (dialed out to it). */
  dialed: number;
}

/** Established TCP connections a process owns. */
export function establishedOf(pid: number, table: Map<number, TcpEntry>): TcpEntry[] {
  const out: TcpEntry[] = [];
  for (const inode of socketInodes(pid).inodes) {
    const e = table.get(inode);
    if (e && e.state === 'ESTABLISHED') out.push(e);
  }
  return out;
}

export function socketCount(
  pid: number,
  table: Map<number, TcpEntry>,
  ports: { listen?: readonly number[]; upstream?: readonly number[] } = {},
): SocketCount {
  const { fds, inodes } = socketInodes(pid);
  let tcpEstablished = 0;
  let accepted = 0;
  let dialed = 0;
  for (const inode of inodes) {
    const e = table.get(inode);
    if (!e || e.state !== 'ESTABLISHED') continue;
    tcpEstablished++;
    if (ports.listen?.includes(e.localPort)) accepted++;
    if (ports.upstream?.includes(e.remotePort)) dialed++;
  }
  return { fds, sockets: inodes.size, tcpEstablished, accepted, dialed };
}

/** Kernel memory held by TCP sockets, whole machine (pages × page size); other users add noise. */
export function kernelTcpMemBytes(): number | undefined {
  try {
    const m = /^TCP:.*\bmem (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'));
    return m ? Number(m[1]) * 4096 : undefined;
  } catch {
    return undefined;
  }
}

/** The soft open-files limit of a process ("Max open files"). */
export function openFilesLimit(pid: number | 'self' = 'self'): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The process listening on a TCP port (scans /proc/<pid>/fd for the listening socket's inode). */
export function pidListeningOn(port: number): number | undefined {
  const listening = new Set<number>();
  for (const [inode, e] of tcpTable()) if (e.state === 'LISTEN' && e.localPort === port) listening.add(inode);
  if (listening.size === 0) return undefined;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const { inodes } = socketInodes(Number(name));
    for (const inode of inodes) if (listening.has(inode)) return Number(name);
  }
  return undefined;
}

/** Parent pid of a process (field 4 of /proc/<pid>/stat). */
function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** `pid` and every live process below it (children, theirs, …), read from each process's parent pid. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const parent = parentPid(Number(name));
    if (parent !== undefined) children.set(parent, [...(children.get(parent) ?? []), Number(name)]);
  }
  const tree: number[] = [];
  for (const queue = [pid]; queue.length > 0; ) {
    const next = queue.shift()!;
    tree.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return tree;
}

/** A process's argv as every local user sees it (/proc/<pid>/cmdline); [] when it is gone. */
export function commandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** A process's environment at exec (/proc/<pid>/environ: readable by the same user and root only); {} when unreadable. */
export function environment(pid: number): Record<string, string> {
  try {
    const entries = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
    return Object.fromEntries(entries.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  } catch {
    return {};
  }
}
