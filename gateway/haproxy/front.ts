import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import type { GatewayConfig, UpstreamProtocol } from '../../lib/config.js';
import { GatewayError, MissingToolError, TimeoutError } from '../../lib/errors.js';
import { logger } from '../../lib/log.js';
import { Supervised } from '../core/supervisor.js';
import { assertPortFree, canConnect, waitFor } from '../../lib/ports.js';

// HAProxy as the local front: render the config from the template, run it in master-worker mode,
// and talk to it over its runtime API (stats socket) and master CLI.

const run = promisify(execFile);
export const DEFAULT_TEMPLATE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'haproxy', 'haproxy.cfg.tmpl');
const HAPROXY_INSTALL_HINT = 'sudo apt-get install -y haproxy   (Debian/Ubuntu; HAProxy 2.6+ is needed for RFC 8441)';

export interface ServerEntry {
  id: string;
  host: string;
  port: number;
  weight?: number;
  /** Anything but 'active' renders as `disabled`; the driver re-applies drain/maint after a reload. */
  state?: 'active' | 'draining' | 'down';
}

/** Server options shared by config lines and runtime `add server` (dynamic servers ignore default-server). */
export function serverOptions(
  settings: Pick<HaproxySettings, 'upstreamProtocol' | 'healthIntervalMs' | 'healthFall' | 'healthRise'>,
  weight = 1,
): string {
  // `proto h2` keeps HTTP/2 to the backend: many sessions share an upstream connection instead of
  // one socket each. Health checks stay HTTP/1.1; the backends serve both on the same port.
  const proto = settings.upstreamProtocol === 'h2' ? ' proto h2 check-proto h1' : '';
  // HAProxy's own checks run at the gateway's cadence, so both mark an endpoint down alike.
  return `weight ${weight} check inter ${settings.healthIntervalMs} fall ${settings.healthFall} rise ${settings.healthRise}${proto}`;
}

export type HaproxySettings = Pick<
  GatewayConfig,
  | 'host'
  | 'frontPort'
  | 'haproxyStatsPort'
  | 'haproxyMaxconn'
  | 'h2MaxConcurrentStreams'
  | 'hardStopAfterS'
  | 'haproxyBin'
  | 'stateDir'
  | 'haproxyTemplate'
  | 'balance'
  | 'frontTlsPort'
  | 'maxSessionsPerIp'
  | 'haproxySessionOpensPer10sPerIp'
  | 'healthIntervalMs'
  | 'healthTimeoutMs'
  | 'healthFall'
  | 'healthRise'
> & { upstreamProtocol: UpstreamProtocol };

/** haproxy.cfg.tmpl and the values rendered into it disagree: a bug in the template or in the renderer. */
class TemplateError extends GatewayError {
  constructor(message: string) {
    super('GW_ERR_TEMPLATE', message);
  }
}

/** HAProxy's runtime API refused a command, or answered without what was asked for. */
export class HaproxyCommandError extends GatewayError {
  constructor(command: string, problem: string) {
    super('GW_ERR_HAPROXY_RUNTIME', `HAProxy "${command}": ${problem}`);
  }
}

/** Fill `{{name}}` placeholders; an unknown or unused placeholder is a bug in the template. */
function renderTemplate(template: string, values: Record<string, string | number>): string {
  const used = new Set<string>();
  const out = template.replace(/\{\{(\w+)\}\}/g, (_m, name: string) => {
    if (!(name in values)) throw new TemplateError(`haproxy template uses {{${name}}}, which has no value`);
    used.add(name);
    return String(values[name]);
  });
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length) throw new TemplateError(`haproxy template lacks {{${unused.join('}}, {{')}}}`);
  return out;
}

export function renderHaproxyConfig(settings: HaproxySettings, servers: readonly ServerEntry[], statsSocket: string, tlsPem?: string): string {
  const lines = servers
    .map((s) => `    server ${s.id} ${s.host}:${s.port} ${serverOptions(settings, s.weight)}${s.state && s.state !== 'active' ? ' disabled' : ''}`)
    .join('\n');
  // Re-read on every render: editing the template and reloading is how a user changes the front.
  return renderTemplate(readFileSync(settings.haproxyTemplate || DEFAULT_TEMPLATE, 'utf8'), {
    host: settings.host,
    frontPort: settings.frontPort,
    statsPort: settings.haproxyStatsPort,
    maxconn: settings.haproxyMaxconn,
    h2MaxConcurrentStreams: settings.h2MaxConcurrentStreams,
    hardStopAfterS: settings.hardStopAfterS,
    maxSessionsPerIp: settings.maxSessionsPerIp,
    sessionOpensPer10sPerIp: settings.haproxySessionOpensPer10sPerIp,
    healthTimeoutMs: settings.healthTimeoutMs,
    statsSocket,
    // TLS on its own port; ALPN lets browsers and MuxClient pick http/1.1 or h2 there.
    tlsBind: tlsPem && settings.frontTlsPort ? `    bind ${settings.host}:${settings.frontTlsPort} ssl crt ${tlsPem} alpn h2,http/1.1` : '',
    // Sticky-by-room hashes the path alone: HAProxy keeps an HTTP/2 request's target in absolute
    // form (http://host/chat/x) but an HTTP/1.1 one as sent (/chat/x), so plain `balance uri` put
    // one room's HTTP/2 and HTTP/1.1 members on different servers. `uri` stops at the '?' already.
    balance: settings.balance === 'room' ? 'balance uri path-only\n    hash-type consistent' : 'balance roundrobin',
    servers: lines,
  });
}

/** Send one command to a HAProxy CLI socket (runtime API or master CLI) and read the whole answer. */
function socketCommand(socketPath: string, command: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    const chunks: Buffer[] = [];
    socket.setTimeout(timeoutMs, () => socket.destroy(new TimeoutError(`HAProxy CLI "${command}"`, timeoutMs)));
    socket.on('connect', () => socket.end(command + '\n'));
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
  });
}

/** Parse `show stat` CSV into one object per proxy/server row. */
function parseShowStat(csv: string): Array<Record<string, string>> {
  const lines = csv.split('\n').filter((l) => l.trim());
  const header = lines.shift()?.replace(/^# /, '').split(',') ?? [];
  return lines.map((line) => Object.fromEntries(line.split(',').map((v, i) => [header[i] ?? String(i), v])));
}

/**
 * The servers of `backend` in `show stat` rows, in the terms both fronts share. A server takes new
 * streams while its status is UP (also "UP 1/2": one failed check, not yet down) and its effective
 * weight is above 0; DRAIN, MAINT, DOWN and "DOWN 1/2" (coming back) take none.
 */
export function haproxyEndpoints(rows: ReadonlyArray<Record<string, string>>, backend = 'backends'): Array<{ id: string; routable: boolean; weight: number; status: string }> {
  return rows
    .filter((r) => r.pxname === backend && r.svname !== 'BACKEND' && r.svname !== 'FRONTEND')
    .map((r) => {
      const status = r.status ?? '';
      const weight = Number(r.weight ?? 0);
      return { id: r.svname ?? '', routable: /^UP\b/.test(status) && weight > 0, weight, status };
    });
}

export class HaproxyConfigRejectedError extends GatewayError {
  readonly detail: string;
  constructor(file: string, detail: string) {
    super('GW_ERR_HAPROXY_CONFIG', `HAProxy rejected the rendered config (${file}); nothing was changed:\n${detail}`);
    this.detail = detail;
  }
}

async function haproxyVersion(bin = 'haproxy'): Promise<string> {
  try {
    const { stdout } = await run(bin, ['-v']);
    return /version (\S+)/.exec(stdout)?.[1] ?? 'unknown';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new MissingToolError(bin, HAPROXY_INSTALL_HINT);
    throw err;
  }
}

const LEVELS: Record<string, 'info' | 'warn' | 'error'> = { NOTICE: 'info', WARNING: 'warn', ALERT: 'error' };

export class HaproxyFront {
  readonly settings: HaproxySettings;
  readonly stateDir: string;
  readonly configPath: string;
  readonly statsSocket: string;
  readonly masterSocket: string;
  readonly #log: Logger;
  #servers: ServerEntry[];
  #process: Supervised | undefined;
  #stopping = false;
  version = '';
  /** Combined cert+key for the TLS bind; set before start() to enable TLS on frontTlsPort. */
  tlsPem: string | undefined;

  constructor(settings: HaproxySettings, servers: readonly ServerEntry[], log: Logger = logger('haproxy')) {
    this.settings = settings;
    this.#servers = [...servers];
    this.#log = log;
    this.stateDir = path.resolve(settings.stateDir);
    this.configPath = path.join(this.stateDir, 'haproxy.cfg');
    this.statsSocket = path.join(this.stateDir, 'haproxy-stats.sock');
    this.masterSocket = path.join(this.stateDir, 'haproxy-master.sock');
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /** The servers the next rendered config (start or reload) will carry. */
  setServers(servers: readonly ServerEntry[]): void {
    this.#servers = [...servers];
  }

  get frontUrl(): string {
    return `http://${this.settings.host}:${this.settings.frontPort}`;
  }

  get frontTlsUrl(): string | undefined {
    return this.tlsPem && this.settings.frontTlsPort ? `https://${this.settings.host}:${this.settings.frontTlsPort}` : undefined;
  }

  /**
   * Render the config, have HAProxy check it (`haproxy -c`), and only then move it into place:
   * a broken template or server line is refused with HAProxy's own words, and the file the running
   * generation was started from stays as it was.
   */
  async writeCheckedConfig(): Promise<void> {
    mkdirSync(this.stateDir, { recursive: true });
    const candidate = `${this.configPath}.${process.pid}.candidate`;
    writeFileSync(candidate, renderHaproxyConfig(this.settings, this.#servers, this.statsSocket, this.tlsPem));
    try {
      await run(this.settings.haproxyBin, ['-c', '-f', candidate]);
    } catch (err) {
      const output = `${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? String(err)}`;
      // HAProxy's [ALERT] lines name the file, the line and the keyword; the rest is banner.
      const alerts = output.split('\n').filter((l) => l.includes('[ALERT]')).map((l) => l.replace(/^\[ALERT\]\s*\(\d+\)\s*:\s*/, ''));
      rmSync(candidate, { force: true });
      throw new HaproxyConfigRejectedError(candidate, (alerts.length ? alerts.join('\n') : output).trim());
    }
    renameSync(candidate, this.configPath);
  }

  async start(): Promise<void> {
    this.#stopping = false;
    const bin = this.settings.haproxyBin;
    this.version = await haproxyVersion(bin);
    await assertPortFree(this.settings.host, this.settings.frontPort, 'HAProxy front');
    await assertPortFree(this.settings.host, this.settings.haproxyStatsPort, 'HAProxy stats');
    if (this.tlsPem && this.settings.frontTlsPort) await assertPortFree(this.settings.host, this.settings.frontTlsPort, 'HAProxy TLS front');
    await this.writeCheckedConfig();
    const proc = new Supervised({
      name: 'haproxy',
      command: bin,
      args: ['-W', '-S', `${this.masterSocket},mode,600`, '-f', this.configPath],
      log: this.#log,
      output: 'lines',
      onStdoutLine: (line) => this.#log.debug({ traffic: line }, 'haproxy log'),
      onStderrLine: (line) => {
        // Once we stop it, HAProxy's "worker exited (Terminated)" alerts are expected news.
        const level = this.#stopping ? 'info' : (LEVELS[/^\[(\w+)\]/.exec(line)?.[1] ?? ''] ?? 'info');
        this.#log[level](line.replace(/^\[\w+\]\s*/, ''));
      },
    });
    this.#process = proc;
    await proc.whileRunning(
      waitFor('HAProxy front to accept connections', () => canConnect(this.settings.host, this.settings.frontPort), 10_000),
    );
    // The front can accept before the master CLI listens (seen under load): reloads and `show proc` need it.
    await proc.whileRunning(waitFor('HAProxy master CLI', () => this.master('show proc').then(() => true), 10_000));
    this.#log.info({ version: this.version, pid: proc.pid, front: this.frontUrl }, 'haproxy ready');
  }

  /** Runtime API (stats socket, level admin). */
  runtime(command: string): Promise<string> {
    return socketCommand(this.statsSocket, command);
  }

  /** Master CLI: `show proc`, `reload`, ... */
  master(command: string): Promise<string> {
    return socketCommand(this.masterSocket, command);
  }

  async stats(): Promise<Array<Record<string, string>>> {
    return parseShowStat(await this.runtime('show stat'));
  }

  /** The frontend row of `show stat`: `conn_tot` counts client TCP connections, `req_tot` requests/streams. */
  async frontendStats(name = 'front'): Promise<Record<string, string>> {
    const row = (await this.stats()).find((r) => r.pxname === name && r.svname === 'FRONTEND');
    if (!row) throw new HaproxyCommandError('show stat', `no FRONTEND row for ${name}`);
    return row;
  }

  /**
   * Connections vs sessions across every live worker (old generations included): the picture of
   * multiplexing, 1 TCP connection carrying 1,000 sessions.
   */
  async frontCounts(): Promise<{ connections: number; sessions: number; connectionsTotal: number; sessionsTotal: number }> {
    const workers = await this.workers();
    const [perWorker, fe] = await Promise.all([
      Promise.all(workers.map(async (w) => [await this.workerConnections(w.pid), await this.workerSessions(w.pid)] as const)),
      this.frontendStats(),
    ]);
    return {
      connections: perWorker.reduce((n, [c]) => n + (c ?? 0), 0),
      sessions: perWorker.reduce((n, [, s]) => n + (s ?? 0), 0),
      connectionsTotal: Number(fe.conn_tot ?? 0),
      sessionsTotal: Number(fe.req_tot ?? 0),
    };
  }

  /** Worker PIDs from the master CLI, newest first; old workers still draining are listed too. */
  async workers(): Promise<Array<{ pid: number; reloads: number }>> {
    const out = await this.master('show proc');
    const workers: Array<{ pid: number; reloads: number }> = [];
    for (const line of out.split('\n')) {
      const m = /^(\d+)\s+worker\s+(\d+)/.exec(line.trim());
      if (m) workers.push({ pid: Number(m[1]), reloads: Number(m[2]) });
    }
    return workers;
  }

  /** How many reloads the master has done since it started. */
  async masterReloads(): Promise<number> {
    const out = await this.master('show proc');
    const m = /^\s*\d+\s+master\s+(\d+)/m.exec(out);
    return m ? Number(m[1]) : 0;
  }

  /** Streams of the front proxy a given worker still carries (one per WebSocket session). */
  async workerSessions(pid: number): Promise<number | null> {
    try {
      const out = await this.master(`@!${pid} show sess`);
      return out.split('\n').filter((l) => l.includes(' fe=front ')).length;
    } catch {
      return null;
    }
  }

  /** Client TCP connections a given worker still holds (`CurrConns` of `show info`). */
  async workerConnections(pid: number): Promise<number | null> {
    try {
      const m = /^CurrConns: (\d+)/m.exec(await this.master(`@!${pid} show info`));
      return m ? Number(m[1]) : null;
    } catch {
      return null;
    }
  }

  /** Master-worker reload: a new worker takes the listeners; old ones send GOAWAY and drain. */
  async reload(): Promise<void> {
    await this.writeCheckedConfig();
    const before = new Set((await this.workers()).map((w) => w.pid));
    await this.master('reload');
    await waitFor(
      'HAProxy reload to start a new worker',
      async () => (await this.workers()).some((w) => !before.has(w.pid)),
      10_000,
    );
    this.#log.info({ oldWorkers: [...before] }, 'haproxy reloaded');
  }

  async stop(graceMs = 5_000): Promise<void> {
    this.#stopping = true;
    await this.#process?.stop(graceMs);
  }
}
