// The xDS resources, built from the registry as proto3 JSON (the way envoy/*.yaml spells them).
//
// For an Envoy node (the front in envoy/envoy.yaml):
//   LDS  `front`    listener on 0.0.0.0:8080 — the HCM of envoy/envoy-static.yaml (codec AUTO,
//                   allow_connect, max_concurrent_streams 20000, websocket upgrade, WebSocket-friendly
//                   timeouts, per-connection limits, the admin-cookie filter), with `rds` over ADS
//                   instead of an inline route_config
//   RDS  `front`    virtual host `backends`, `/` → cluster `backends`, route timeout 0s, a retry on
//                   connect failure to another endpoint
// For a gRPC xDS client (@grpc/grpc-js-xds, target xds:///<name>):
//   LDS  <name>     an api_listener (HCM with rds over ADS + the router filter), one per requested name
//   RDS  `grpc`     virtual host `*`, every path → cluster `backends`
// For both:
//   CDS  `backends` type EDS over ADS, ROUND_ROBIN, HTTP/1.1 upstream and the circuit breakers of
//                   envoy-static.yaml (gRPC ignores what it does not use)
//   EDS  `backends` one locality; per endpoint: address, hostname = endpoint id,
//                   load_balancing_weight = weight, health_status HEALTHY | DRAINING | UNHEALTHY
//
// Everything here is pure: (registry endpoints, options) → resources. server.ts encodes and sends.

import net from 'node:net';
import type { Endpoint, EndpointState } from '../../core/registry.js';
import type { JsonObject } from './codec.js';

export const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const HTTP_PROTOCOL_OPTIONS_TYPE = 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/** The Envoy front, as in envoy/envoy-static.yaml. */
export interface FrontOptions {
  listenerName: string;
  routeConfigName: string;
  /** Where Envoy binds the front (inside its container/namespace). */
  address: string;
  port: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS Envoy advertises (lib/config.ts h2MaxConcurrentStreams). */
  maxConcurrentStreams: number;
  /** Per-stream round robin, or sticky-by-room: a consistent hash of the path (lib/config.ts `balance`). */
  balance: 'roundrobin' | 'room';
  /** Towards the backends: HTTP/1.1 Upgrade per session, or HTTP/2 extended CONNECT (lib/config.ts `upstreamProtocol`). */
  upstreamProtocol: 'h1' | 'h2';
  /** A TLS listener beside the plain one (ALPN h2, http/1.1), as in envoy/envoy-static-tls.yaml; PEM files Envoy reads. */
  tls?: { listenerName: string; port: number; certFile: string; keyFile: string };
}

export interface ResourceOptions {
  /** Cluster (CDS) and ClusterLoadAssignment (EDS) name. */
  cluster: string;
  front: FrontOptions;
  /** RouteConfiguration that every gRPC api_listener points at. */
  grpcRouteConfigName: string;
}

export const DEFAULT_FRONT: FrontOptions = {
  listenerName: 'front',
  routeConfigName: 'front',
  address: '0.0.0.0',
  port: 8080,
  maxConcurrentStreams: 20_000,
  balance: 'roundrobin',
  upstreamProtocol: 'h1',
};

export const DEFAULT_RESOURCE_OPTIONS: ResourceOptions = {
  cluster: 'backends',
  front: DEFAULT_FRONT,
  grpcRouteConfigName: 'grpc',
};

const ADS_SOURCE = { ads: {}, resource_api_version: 'V3' } as const;
/**
 * HTTP/2 frames Envoy queues towards one peer before it calls it a flood (defaults 10,000 / 1,000):
 * 100,000, or two per stream the connection may carry when that is more — every session echoing at
 * once queues a DATA frame each (100,000 sessions on one connection passed 100,000 frames).
 */
const floodLimits = (streams: number) => ({ max_outbound_frames: Math.max(100_000, 2 * streams), max_outbound_control_frames: 10_000 });
// The front's own route and endpoints wait for the control plane as long as it takes (Envoy's 15 s
// default would warm a listener or cluster with nothing in it), as LDS/CDS do in envoy/envoy.yaml.
const FRONT_ADS_SOURCE = { ...ADS_SOURCE, initial_fetch_timeout: '0s' } as const;

const routerFilter = (): JsonObject => ({
  name: 'envoy.filters.http.router',
  typed_config: { '@type': ROUTER_TYPE },
});

const LUA_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua';

/**
 * Drops the dashboard's admin cookie (gw_admin) from requests to the backends; every other cookie
 * passes. Browsers send a host's cookies to every port of it, the front's included. Same source as
 * in envoy/*.yaml (HAProxy: `http-request replace-header Cookie` in its template).
 */
const ADMIN_COOKIE_STRIP_LUA = `function envoy_on_request(handle)
  local headers = handle:headers()
  local kept, dropped = {}, false
  for name, value in pairs(headers) do
    if name == "cookie" then
      for crumb in string.gmatch(value, "[^;]+") do
        crumb = crumb:match("^%s*(.-)%s*$")
        if crumb:match("^gw_admin=") then
          dropped = true
        elseif crumb ~= "" then
          kept[#kept + 1] = crumb
        end
      end
    end
  end
  if not dropped then return end
  headers:remove("cookie")
  if #kept > 0 then headers:add("cookie", table.concat(kept, "; ")) end
end
`;

const adminCookieFilter = (): JsonObject => ({
  name: 'envoy.filters.http.lua',
  typed_config: { '@type': LUA_TYPE, default_source_code: { inline_string: ADMIN_COOKIE_STRIP_LUA } },
});

/**
 * Bytes buffered per connection (client side on the listener, backend side on the cluster) before
 * Envoy stops reading from it: 32 KiB (Envoy's edge best practice) instead of 1 MiB, so a client
 * that stops reading holds 32 KiB per stream. Flow control still carries larger messages through.
 */
const PER_CONNECTION_BUFFER_LIMIT_BYTES = 32_768;

// ------------------------------------------------------------------ Envoy front

/** The HttpConnectionManager of the front listener (same settings as envoy-static.yaml). */
function frontHttpConnectionManager(o: ResourceOptions): JsonObject {
  return {
    '@type': HCM_TYPE,
    stat_prefix: 'front',
    // HTTP/2 preface → HTTP/2 (h2c prior knowledge), anything else HTTP/1.1: both on one port.
    codec_type: 'AUTO',
    // The client's address is the peer's; no X-Forwarded-For entry a client sends is trusted. The
    // route writes that address as the one entry the backends see (FRONT_REQUEST_HEADERS).
    use_remote_address: true,
    xff_num_trusted_hops: 0,
    // Request headers live as long as the stream (a WebSocket's whole life): 16 KiB, not 60, each.
    max_request_headers_kb: 16,
    request_headers_timeout: '10s',
    // WebSockets are long-lived and may be quiet: a stream is reset after 1 h without frames
    // (HAProxy: timeout tunnel 1h), not after Envoy's 5 min default.
    stream_idle_timeout: '3600s',
    common_http_protocol_options: {
      // Only reaps connections with no open stream.
      idle_timeout: '300s',
    },
    http2_protocol_options: {
      // RFC 8441 extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL).
      allow_connect: true,
      // Envoy's edge default is 100; 10,000 sessions must fit on one connection.
      max_concurrent_streams: o.front.maxConcurrentStreams,
      initial_stream_window_size: 65536,
      initial_connection_window_size: 1048576,
      connection_keepalive: { interval: '30s', timeout: '10s' },
      // Tens of thousands of sessions on one connection pass Envoy's default flood limits (10,000
      // frames, 1,000 control frames) in normal use.
      ...floodLimits(o.front.maxConcurrentStreams),
    },
    upgrade_configs: [{ upgrade_type: 'websocket' }],
    rds: { config_source: FRONT_ADS_SOURCE, route_config_name: o.front.routeConfigName },
    http_filters: [adminCookieFilter(), routerFilter()],
  };
}

export function frontListener(o: ResourceOptions): JsonObject {
  return {
    name: o.front.listenerName,
    address: { socket_address: { address: o.front.address, port_value: o.front.port } },
    per_connection_buffer_limit_bytes: PER_CONNECTION_BUFFER_LIMIT_BYTES,
    filter_chains: [
      {
        filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: frontHttpConnectionManager(o) }],
      },
    ],
  };
}

/**
 * Envoy turns an HTTP/2 extended CONNECT into an HTTP/1.1 Upgrade without the Sec-WebSocket-Key RFC
 * 6455 requires (envoyproxy/envoy#8547), which `ws` refuses with 400: the front supplies a fixed
 * valid key where the client sent none (an HTTP/1.1 client's own key, and the backend's Accept for
 * it, pass through). The client's transport, for the backend's sessions-by-transport. And the
 * client's address as the only X-Forwarded-For entry, for the backends' per-IP count: Envoy itself
 * appends to what the client sent, and for a client on loopback appends its own interface address.
 */
const FRONT_REQUEST_HEADERS: JsonObject[] = [
  { header: { key: 'sec-websocket-key', value: 'dGhlIHNhbXBsZSBub25jZQ==' }, append_action: 'ADD_IF_ABSENT' },
  { header: { key: 'x-front-http-version', value: '%PROTOCOL%' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
  { header: { key: 'x-forwarded-for', value: '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
];

const DOWNSTREAM_TLS_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';

/** The TLS front: the same connection manager (and route) behind a TLS transport socket. */
export function frontTlsListener(o: ResourceOptions): JsonObject | undefined {
  const tls = o.front.tls;
  if (!tls) return undefined;
  return {
    name: tls.listenerName,
    address: { socket_address: { address: o.front.address, port_value: tls.port } },
    per_connection_buffer_limit_bytes: PER_CONNECTION_BUFFER_LIMIT_BYTES,
    filter_chains: [
      {
        filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: frontHttpConnectionManager(o) }],
        transport_socket: {
          name: 'envoy.transport_sockets.tls',
          typed_config: {
            '@type': DOWNSTREAM_TLS_TYPE,
            common_tls_context: {
              // h2 first: Chrome then carries wss:// on an HTTP/2 connection it already has (RFC 8441).
              alpn_protocols: ['h2', 'http/1.1'],
              tls_certificates: [{ certificate_chain: { filename: tls.certFile }, private_key: { filename: tls.keyFile } }],
            },
          },
        },
      },
    ],
  };
}

const PREVIOUS_HOSTS_TYPE = 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate';

/**
 * A backend that just died (crashed, not yet marked down by the health checks) refuses the
 * connection: the handshake goes to another endpoint, up to twice, instead of failing with 503 —
 * what HAProxy's `retries 2` + `option redispatch 1` do (measured with b3 killed, before the health
 * check saw it: Envoy answered 10 of 30 new sessions 503, HAProxy none). Connect failures only: the
 * request never reached a backend, so a retry cannot repeat anything. previous_hosts: another
 * endpoint, not the same one again. Under RING_HASH each reselection steps one entry along the ring,
 * where the dead host often holds the next few entries too: 32 steps reach the next host (with 3
 * reselections, 1 room in 10 on a dead b3 still got 503, measured), which is also where the room
 * moves once the health checks take the dead host out.
 */
const FRONT_RETRY_POLICY: JsonObject = {
  retry_on: 'connect-failure',
  num_retries: 2,
  retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': PREVIOUS_HOSTS_TYPE } }],
  host_selection_retry_max_attempts: 32,
};

export function frontRouteConfiguration(o: ResourceOptions): JsonObject {
  return {
    name: o.front.routeConfigName,
    virtual_hosts: [
      {
        name: o.cluster,
        domains: ['*'],
        request_headers_to_add: FRONT_REQUEST_HEADERS,
        routes: [
          {
            match: { prefix: '/' },
            // timeout 0s: no route timer. It starts when the downstream request ends (a WebSocket's
            // never does) and, since Envoy 1.36, runs from an upgrade to the backend's answer, so it
            // only bounds the handshake; stream_idle_timeout and the PING keepalive bound dead sessions.
            route: {
              cluster: o.cluster,
              timeout: '0s',
              retry_policy: FRONT_RETRY_POLICY,
              // Sticky-by-room (as envoy/envoy-static-sticky.yaml): hash the path without its query,
              // so /chat/lobby?since=42 lands where /chat/lobby does.
              ...(o.front.balance === 'room' && {
                hash_policy: [{ header: { header_name: ':path', regex_rewrite: { pattern: { regex: '\\?.*' }, substitution: '' } } }],
              }),
            },
          },
        ],
      },
    ],
  };
}

// ------------------------------------------------------------------ gRPC xDS clients

/** What @grpc/grpc-js-xds asks for when a channel targets xds:///<name>: an API listener. */
export function grpcApiListener(name: string, o: ResourceOptions): JsonObject {
  return {
    name,
    api_listener: {
      api_listener: {
        '@type': HCM_TYPE,
        stat_prefix: 'grpc',
        rds: { config_source: ADS_SOURCE, route_config_name: o.grpcRouteConfigName },
        // gRPC requires the router filter, and only as the last filter.
        http_filters: [routerFilter()],
      },
    },
  };
}

export function grpcRouteConfiguration(o: ResourceOptions): JsonObject {
  return {
    name: o.grpcRouteConfigName,
    virtual_hosts: [
      {
        name: o.cluster,
        domains: ['*'],
        routes: [{ match: { prefix: '/' }, route: { cluster: o.cluster } }],
      },
    ],
  };
}

// ------------------------------------------------------------------ shared: CDS + EDS

export function cluster(o: ResourceOptions): JsonObject {
  const sessionBound = Math.max(100_000, 2 * o.front.maxConcurrentStreams);
  return {
    name: o.cluster,
    type: 'EDS',
    eds_cluster_config: { eds_config: FRONT_ADS_SOURCE },
    connect_timeout: '5s',
    per_connection_buffer_limit_bytes: PER_CONNECTION_BUFFER_LIMIT_BYTES,
    // Per request — per WebSocket stream — round robin, weighted by load_balancing_weight (Envoy);
    // or a consistent-hash ring over the route's hash_policy (the same room → the same backend, and
    // a backend added or lost moves only its share of rooms). A gRPC client has no hash policy on
    // its route, so under RING_HASH its calls spread at random.
    lb_policy: o.front.balance === 'room' ? 'RING_HASH' : 'ROUND_ROBIN',
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': HTTP_PROTOCOL_OPTIONS_TYPE,
        explicit_http_config:
          o.front.upstreamProtocol === 'h2'
            ? // RFC 8441 upstream: many sessions per backend connection (envoy-static-h2-upstream.yaml).
              // The flood limits towards the backends too: 50,000 sessions over 3 upstream connections
              // hit the default 1,000 control frames and lost a connection with its 10,000+ streams.
              { http2_protocol_options: { allow_connect: true, max_concurrent_streams: o.front.maxConcurrentStreams, ...floodLimits(o.front.maxConcurrentStreams) } }
            : // Each WebSocket leaves as its own HTTP/1.1 Upgrade towards the backend.
              { http_protocol_options: {} },
      },
    },
    // Never route to an endpoint the registry marked down or draining, however few are left:
    // Envoy's default panic threshold (50%) would spread streams over all of them.
    common_lb_config: { healthy_panic_threshold: { value: 0 } },
    // Envoy's default ring of 1,024 entries (as in envoy-static-sticky.yaml), said explicitly.
    ...(o.front.balance === 'room' && { ring_hash_lb_config: { minimum_ring_size: 1024 } }),
    // Envoy's 1,024 defaults would stop an HTTP/1.1 upstream at 1,024 sessions. Connections stay at
    // 30,000 (each is a file descriptor); requests (sessions) go to 100,000, or twice the streams one
    // client connection may carry when that is more: at 30,000 an HTTP/2 upstream refused the 30,001st
    // session (measured).
    circuit_breakers: {
      // max_retries: Envoy's default of 3 retries at a time turned the 4th of 20 sessions reconnecting
      // at once from a crashed backend into a 503 (upstream_rq_retry_overflow); a retry here is only a
      // connect failure (FRONT_RETRY_POLICY), at most 2 per session.
      thresholds: [{ priority: 'DEFAULT', max_connections: 30000, max_pending_requests: sessionBound, max_requests: sessionBound, max_retries: 100000 }],
    },
    // Health comes from the registry (the gateway's checker) through EDS health_status; there is no
    // Envoy active health check here, so there is exactly one opinion on whether a backend is up.
  };
}

const HEALTH_STATUS: Record<EndpointState, 'HEALTHY' | 'DRAINING' | 'UNHEALTHY'> = {
  active: 'HEALTHY',
  draining: 'DRAINING',
  down: 'UNHEALTHY',
};

/** Endpoints whose host is not an IP address (EDS needs one; Envoy and gRPC reject names). */
export function unroutableEndpoints(endpoints: readonly Endpoint[]): Endpoint[] {
  return endpoints.filter((e) => net.isIP(e.host) === 0);
}

export function clusterLoadAssignment(endpoints: readonly Endpoint[], o: ResourceOptions): JsonObject {
  const usable = [...endpoints].filter((e) => net.isIP(e.host) !== 0).sort((a, b) => a.id.localeCompare(b.id));
  return {
    cluster_name: o.cluster,
    endpoints:
      usable.length === 0
        ? []
        : [
            {
              // gRPC needs a locality with a weight; Envoy ignores locality weights unless asked to.
              locality: { region: 'local' },
              load_balancing_weight: 1,
              lb_endpoints: usable.map((e) => ({
                endpoint: {
                  address: { socket_address: { address: e.host, port_value: e.port } },
                  hostname: e.id,
                },
                health_status: HEALTH_STATUS[e.state],
                load_balancing_weight: e.weight,
              })),
            },
          ],
  };
}
