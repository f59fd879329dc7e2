import { GatewayError } from '../../lib/errors.js';

// Envoy admin `/stats` (text format, one `name: value` per line) read in the terms the dashboard and
// the bench use for either front: client TCP connections vs WebSocket sessions.
//   http.<prefix>.downstream_cx_active            client connections open (gauge)
//   http.<prefix>.downstream_cx_http2_active      ... of which HTTP/2
//   http.<prefix>.downstream_rq_active            requests open: each WebSocket session is one long-lived request
//   http.<prefix>.downstream_cx_http1_active      ... of which HTTP/1.1 (each an Upgrade-ed WebSocket here)
//   http.<prefix>.downstream_cx_upgrades_active   WebSocket upgrades open over BOTH transports: measured on
//                                                 1.40, 1,000 RFC 8441 streams + 20 HTTP/1.1 Upgrades read 1020
//   http.<prefix>.downstream_cx_total / downstream_rq_total
//   cluster.<cluster>.upstream_cx_active          connections to the backends

export class EnvoyAdminError extends GatewayError {
  constructor(url: string, detail: string | number) {
    super('GW_ERR_ENVOY_ADMIN', `Envoy admin ${url} answered ${detail}`);
  }
}

export function parseEnvoyStats(text: string): Map<string, number> {
  const stats = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([^\s:]+):\s*(-?\d+)\s*$/.exec(line);
    if (m) stats.set(m[1]!, Number(m[2]));
  }
  return stats;
}

/** Numeric stats from `/stats?filter=<regex>`. */
export async function readAdminStats(adminUrl: string, filter: string, fetchTimeoutMs = 1_000): Promise<Map<string, number>> {
  const url = new URL('/stats', adminUrl);
  url.searchParams.set('filter', filter);
  const res = await fetch(url, { signal: AbortSignal.timeout(fetchTimeoutMs) });
  if (!res.ok) throw new EnvoyAdminError(url.href, `HTTP ${res.status}`);
  return parseEnvoyStats(await res.text());
}

export interface EnvoyFrontCounts {
  engine: 'envoy';
  connections: number;
  http2Connections: number;
  sessions: number;
  /** HTTP/1.1 client connections (one WebSocket each here). */
  http1Connections: number;
  /** WebSocket upgrades open, RFC 8441 streams and HTTP/1.1 Upgrades alike. */
  upgrades: number;
  connectionsTotal: number;
  sessionsTotal: number;
  upstreamConnections: number;
}

export function envoyFrontCounts(stats: Map<string, number>, statPrefix = 'front', cluster = 'backends'): EnvoyFrontCounts {
  const http = (name: string) => stats.get(`http.${statPrefix}.${name}`) ?? 0;
  return {
    engine: 'envoy',
    connections: http('downstream_cx_active'),
    http2Connections: http('downstream_cx_http2_active'),
    http1Connections: http('downstream_cx_http1_active'),
    sessions: http('downstream_rq_active'),
    upgrades: http('downstream_cx_upgrades_active'),
    connectionsTotal: http('downstream_cx_total'),
    sessionsTotal: http('downstream_rq_total'),
    upstreamConnections: stats.get(`cluster.${cluster}.upstream_cx_active`) ?? 0,
  };
}

export async function readEnvoyFrontCounts(adminUrl: string, statPrefix = 'front', cluster = 'backends'): Promise<EnvoyFrontCounts> {
  const stats = await readAdminStats(adminUrl, `^(http\\.${statPrefix}\\.downstream_|cluster\\.${cluster}\\.upstream_cx_active$)`);
  return envoyFrontCounts(stats, statPrefix, cluster);
}

/**
 * The hosts of `cluster` from admin `/clusters` (text: `<cluster>::<address>::<key>::<value>`), in
 * the terms both fronts share: the EDS hostname is the registry id; a host takes new streams when its
 * health flags are exactly `healthy` (EDS DRAINING → /eds_status_draining, UNHEALTHY →
 * /failed_eds_health) and its weight is above 0.
 */
export function parseEnvoyClusterHosts(text: string, cluster = 'backends'): Array<{ id: string; routable: boolean; weight: number; status: string }> {
  const hosts = new Map<string, Record<string, string>>();
  for (const line of text.split('\n')) {
    const parts = line.split('::');
    if (parts.length !== 4 || parts[0] !== cluster) continue;
    const [, address, key, value] = parts as [string, string, string, string];
    const host = hosts.get(address) ?? {};
    host[key] = value;
    hosts.set(address, host);
  }
  // The cluster's own lines (`backends::default_priority::max_connections::…`) share the shape: a
  // host is what has health flags.
  return [...hosts].filter(([, h]) => h.health_flags !== undefined).map(([address, h]) => {
    const status = h.health_flags ?? '';
    const weight = Number(h.weight ?? 0);
    return { id: h.hostname || address, routable: status === 'healthy' && weight > 0, weight, status };
  });
}

export async function readEnvoyClusterHosts(adminUrl: string, cluster = 'backends', fetchTimeoutMs = 1_000): Promise<ReturnType<typeof parseEnvoyClusterHosts>> {
  const url = new URL('/clusters', adminUrl);
  const res = await fetch(url, { signal: AbortSignal.timeout(fetchTimeoutMs) });
  if (!res.ok) throw new EnvoyAdminError(url.href, `HTTP ${res.status}`);
  return parseEnvoyClusterHosts(await res.text(), cluster);
}

/** Envoy's version from admin `/server_info` (e.g. `<sha>/1.31.10/Clean/RELEASE/BoringSSL` → `1.31.10`). */
export async function readEnvoyVersion(adminUrl: string, fetchTimeoutMs = 1_000): Promise<string> {
  const url = new URL('/server_info', adminUrl);
  const res = await fetch(url, { signal: AbortSignal.timeout(fetchTimeoutMs) });
  if (!res.ok) throw new EnvoyAdminError(url.href, `HTTP ${res.status}`);
  const version = String(((await res.json()) as { version?: unknown }).version ?? '');
  return version.split('/')[1] ?? version;
}
