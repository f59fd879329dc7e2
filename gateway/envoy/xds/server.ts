// The Envoy driver: an xDS control plane (ADS, state of the world) fed by the EndpointRegistry.
//
//   envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources
//
// One bidirectional stream per client carries LDS, RDS, CDS and EDS. For every stream and resource
// type the server keeps: what the client subscribed to (resource_names, or wildcard), what it last
// sent (version, nonce, content hash), what the client last ACKed, and the last NACK.
//
//   request with an empty response_nonce      → initial request for the type: always answered
//   request whose nonce ≠ the last one sent   → stale (it answers an older response): its ACK/NACK
//                                                is recorded, but it gets no response
//   request with the last nonce, no error     → ACK: that version is in force on the client
//   request with the last nonce + error_detail → NACK: logged with error_detail.message; the client
//                                                keeps its last good (ACKed) version and the
//                                                rejected content is not sent again
//
// After every request, and after every registry change (coalesced per tick), the server rebuilds
// the resources the stream subscribed to and sends a response only if their content differs from
// what was last sent on that stream. Version strings are `<registry version>-<content hash>`:
// a registry change that alters a type's resources gives a new version, an unchanged type keeps
// its version (and is not re-sent), and NACKed content is never re-sent in a loop.
//
// Envoy vs gRPC client: decided per node from `node.user_agent_name` ("envoy" vs "gRPC …"), falling
// back to the shape of its LDS request (wildcard → Envoy's front listener, named → gRPC api
// listeners). Only LDS differs; RDS/CDS/EDS are served by name to anyone. See docs/xds.md.

import { createHash, randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { PortInUseError, TimeoutError } from '../../../lib/errors.js';
import { logger } from '../../../lib/log.js';
import type { Endpoint, EndpointRegistry, RegistryEvent } from '../../core/registry.js';
import { encodeResource, typeNameOf, type JsonObject } from './codec.js';
import { XdsError } from './errors.js';
import { adsService, RESOURCE_TYPE_URLS, TYPE_SHORT, TypeUrl, isResourceTypeUrl, type ResourceTypeUrl } from './protos.js';
import {
  cluster,
  clusterLoadAssignment,
  DEFAULT_FRONT,
  DEFAULT_RESOURCE_OPTIONS,
  frontListener,
  frontTlsListener,
  frontRouteConfiguration,
  grpcApiListener,
  grpcRouteConfiguration,
  unroutableEndpoints,
  type FrontOptions,
  type ResourceOptions,
} from './resources.js';

export type NodeKind = 'envoy' | 'grpc' | 'unknown';
export type TypeShort = 'LDS' | 'RDS' | 'CDS' | 'EDS';

/** The translation registry → Envoy resources (resources.ts) the server serves from. */
const TRANSLATOR = { frontListener, frontTlsListener, frontRouteConfiguration, grpcApiListener, grpcRouteConfiguration, cluster, clusterLoadAssignment };
export type ResourceTranslator = typeof TRANSLATOR;

export interface StartXdsServerOptions {
  registry: EndpointRegistry;
  /** Default 127.0.0.1 (lib/config.ts `host`). */
  host?: string;
  /** Default 18000 (lib/config.ts `xdsPort`); 0 picks a free port. */
  port?: number;
  log?: Logger;
  /** CDS/EDS name, default `backends` (envoy/*.yaml). */
  cluster?: string;
  /** The Envoy front listener (defaults match envoy/envoy-static.yaml). */
  front?: Partial<FrontOptions>;
  /** RouteConfiguration name for gRPC api listeners, default `grpc`. */
  grpcRouteConfigName?: string;
  /** Identifies this server in DiscoveryResponse.control_plane. */
  identifier?: string;
  /**
   * Builders to use instead of resources.ts's. The server serves whatever they build and does not
   * know why: a test stands in one that builds what a client must reject, to drive the NACK path.
   */
  translator?: Partial<ResourceTranslator>;
  /** How often host names of endpoints are looked up again (a container that restarts may get a new IP). Default 30 s. */
  resolveEveryMs?: number;
}

export interface SentInfo {
  version: string;
  nonce: string;
  at: number;
  resources: string[];
}
export interface AckInfo {
  version: string;
  nonce: string;
  at: number;
}
export interface NackInfo {
  /** The rejected version. */
  version: string;
  nonce: string;
  at: number;
  /** error_detail.message as the client sent it. */
  message: string;
  code: number;
  /** The version the client still runs (its request's version_info / our last ACKed one). */
  inForce: string | undefined;
}
export interface TypeStatus {
  subscribed: string[] | '*';
  sent?: SentInfo;
  acked?: AckInfo;
  /** Last NACK of this type; cleared when a later version is ACKed. */
  nacked?: NackInfo;
}
export interface NodeStatus {
  nodeId: string;
  cluster: string;
  kind: NodeKind;
  userAgent: string;
  /** Open ADS streams from this node id. */
  streams: number;
  connectedAt: number;
  types: Partial<Record<TypeShort, TypeStatus>>;
}

export interface XdsEventBase {
  nodeId: string;
  kind: NodeKind;
  typeUrl: ResourceTypeUrl;
  type: TypeShort;
}
export type XdsResponseEvent = XdsEventBase & SentInfo & { registryVersion: number };
/** `stale`: the reply answers an older response than the last one sent (it arrived after a newer push). */
export type XdsAckEvent = XdsEventBase & AckInfo & { sentAt: number; stale: boolean };
export type XdsNackEvent = XdsEventBase & NackInfo & { stale: boolean };

// Wire shapes (proto-loader, keepCase, enums/longs as strings).
interface WireNode {
  id?: string;
  cluster?: string;
  user_agent_name?: string;
}
interface DiscoveryRequest {
  version_info?: string;
  node?: WireNode | null;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string } | null;
}
interface DiscoveryResponse {
  version_info: string;
  resources: { type_url: string; value: Buffer }[];
  type_url: string;
  nonce: string;
  control_plane: { identifier: string };
}
type AdsCall = grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>;

interface StreamTypeState {
  wildcard: boolean;
  names: Set<string>;
  sent?: SentInfo & { hash: string };
  /** nonce → version of the last few responses, so a late ACK/NACK is still attributed. */
  recent: Map<string, { version: string; at: number }>;
}
interface StreamState {
  id: number;
  call: AdsCall;
  peer: string;
  node?: NodeStatus;
  kind: NodeKind;
  types: Map<ResourceTypeUrl, StreamTypeState>;
  closed: boolean;
}

const MAX_NODES = 1_000;

/** Order of pushes after a registry change: clusters before endpoints, listeners before routes. */
const PUSH_ORDER: readonly ResourceTypeUrl[] = [TypeUrl.cluster, TypeUrl.endpoint, TypeUrl.listener, TypeUrl.route];

export function classifyNode(node: WireNode | null | undefined): NodeKind {
  const ua = node?.user_agent_name ?? '';
  if (/envoy/i.test(ua)) return 'envoy';
  if (/grpc/i.test(ua)) return 'grpc';
  return 'unknown';
}

export class XdsServer extends EventEmitter {
  readonly host: string;
  #port = 0;
  readonly #registry: EndpointRegistry;
  readonly #log: Logger;
  readonly #server = new grpc.Server({
    // Envoy and gRPC clients may keep the ADS stream alive with PINGs.
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  });
  readonly #opts: ResourceOptions;
  readonly #identifier: string;
  readonly #streams = new Set<StreamState>();
  readonly #nodes = new Map<string, NodeStatus>();
  readonly #nackLog: XdsNackEvent[] = [];
  readonly #nonceBase = randomBytes(3).toString('hex');
  #nonceSeq = 0;
  #streamSeq = 0;
  readonly #translator: ResourceTranslator;
  #pushScheduled = false;
  #closed = false;
  // EDS carries IP addresses only (Envoy and gRPC reject names), so endpoints registered by host
  // name are looked up here: name → address, refreshed every resolveEveryMs; a name that does not
  // resolve is left out (with a warning) until it does.
  readonly #resolved = new Map<string, string>();
  readonly #unresolvable = new Set<string>();
  readonly #resolveEveryMs: number;
  #resolveTimer: NodeJS.Timeout | undefined;
  readonly #onChange = (event: RegistryEvent): void => {
    this.#schedulePush(`registry ${event.type} ${event.endpoint.id}`);
    if (net.isIP(event.endpoint.host) === 0 && !this.#resolved.has(event.endpoint.host)) void this.#resolveNames();
  };

  constructor(options: StartXdsServerOptions) {
    super();
    this.#registry = options.registry;
    this.host = options.host ?? '127.0.0.1';
    this.#port = options.port ?? 18000;
    this.#log = options.log ?? logger('xds');
    this.#identifier = options.identifier ?? 'h2-ws-gateway';
    this.#opts = {
      cluster: options.cluster ?? DEFAULT_RESOURCE_OPTIONS.cluster,
      front: { ...DEFAULT_FRONT, ...options.front },
      grpcRouteConfigName: options.grpcRouteConfigName ?? DEFAULT_RESOURCE_OPTIONS.grpcRouteConfigName,
    };
    this.#translator = { ...TRANSLATOR, ...options.translator };
    this.#resolveEveryMs = options.resolveEveryMs ?? 30_000;
  }

  get port(): number {
    return this.#port;
  }

  /** The resource names and settings this server serves. */
  get resourceOptions(): ResourceOptions {
    return structuredClone(this.#opts);
  }

  async start(): Promise<this> {
    this.#server.addService(adsService(), {
      StreamAggregatedResources: (call: AdsCall) => this.#onStream(call),
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
        call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'only state-of-the-world ADS is served; use StreamAggregatedResources' });
      },
    });
    this.#port = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync(`${this.host}:${this.#port}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
        if (!err) return resolve(port);
        if (/EADDRINUSE|address already in use/i.test(err.message)) reject(new PortInUseError(this.host, this.#port, 'xDS server'));
        else reject(new XdsError('GW_ERR_XDS_BIND', `xDS server cannot listen on ${this.host}:${this.#port}: ${err.message}`, err));
      });
    });
    this.#registry.on('change', this.#onChange);
    await this.#resolveNames();
    this.#resolveTimer = setInterval(() => void this.#resolveNames(), this.#resolveEveryMs).unref();
    this.#log.info({ host: this.host, port: this.#port, cluster: this.#opts.cluster, registryVersion: this.#registry.version }, `xDS (ADS) server listening on ${this.host}:${this.#port}`);
    return this;
  }

  /** Per node id: kind, open streams, and per resource type the subscription, sent/ACKed version and last NACK. */
  versions(): NodeStatus[] {
    return [...this.#nodes.values()].map((n) => structuredClone(n));
  }

  /**
   * Resolves once every connected Envoy has ACKed (or NACKed) the last version sent of each type and
   * no push is pending: the front then routes by the registry as it is now. Bounded by `timeoutMs`.
   */
  async settled(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const caughtUp = () =>
      !this.#pushScheduled &&
      [...this.#nodes.values()]
        .filter((n) => n.kind === 'envoy' && n.streams > 0)
        .every((n) => Object.values(n.types).every((t) => !t?.sent || t.acked?.version === t.sent.version || t.nacked?.version === t.sent.version));
    while (!caughtUp()) {
      if (Date.now() > deadline) throw new TimeoutError('every Envoy ACKing the last xDS push', timeoutMs);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Every NACK received (most recent last, at most 100). */
  nacks(): XdsNackEvent[] {
    return this.#nackLog.map((n) => ({ ...n }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#resolveTimer);
    this.#registry.off('change', this.#onChange);
    for (const s of this.#streams) {
      s.closed = true;
      try {
        s.call.end();
      } catch {
        // already gone
      }
    }
    this.#streams.clear();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, 1_000);
      this.#server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    this.#log.info({ port: this.#port }, 'xDS server stopped');
  }

  // ---------------------------------------------------------------- streams

  #onStream(call: AdsCall): void {
    if (this.#closed) {
      call.end();
      return;
    }
    const stream: StreamState = { id: ++this.#streamSeq, call, peer: call.getPeer(), kind: 'unknown', types: new Map(), closed: false };
    this.#streams.add(stream);
    this.#log.debug({ stream: stream.id, peer: stream.peer }, 'ADS stream opened');
    call.on('data', (req: DiscoveryRequest) => {
      try {
        this.#onRequest(stream, req);
      } catch (err) {
        this.#log.error({ err, stream: stream.id, typeUrl: req.type_url }, 'failed to handle a discovery request');
      }
    });
    const done = (why: string, err?: unknown) => {
      if (stream.closed) return;
      stream.closed = true;
      this.#streams.delete(stream);
      if (stream.node) stream.node.streams = Math.max(0, stream.node.streams - 1);
      this.#log.info({ stream: stream.id, node: stream.node?.nodeId, why, err: err instanceof Error ? err.message : undefined }, 'ADS stream closed');
      if (why === 'end') {
        try {
          call.end();
        } catch {
          // ignore
        }
      }
    };
    call.on('end', () => done('end'));
    call.on('cancelled', () => done('cancelled'));
    call.on('error', (err) => done('error', err));
    call.on('close', () => done('close'));
  }

  #onRequest(stream: StreamState, req: DiscoveryRequest): void {
    if (!stream.node) this.#identify(stream, req.node);
    const node = stream.node!;
    const typeUrl = req.type_url ?? '';
    if (!isResourceTypeUrl(typeUrl)) {
      this.#log.warn({ node: node.nodeId, typeUrl }, 'request for a resource type this server does not serve; ignored');
      return;
    }
    const short = TYPE_SHORT[typeUrl];
    const names = req.resource_names ?? [];
    const nonce = req.response_nonce ?? '';
    let ts = stream.types.get(typeUrl);
    const first = ts === undefined;
    const status = (node.types[short] ??= { subscribed: [] });

    // ACK/NACK bookkeeping for any response sent on this stream, the last one or an older one: the
    // request's version_info is what the client runs now either way.
    const answered = nonce !== '' ? ts?.recent.get(nonce) : undefined;
    const stale = ts?.sent !== undefined && nonce !== '' && nonce !== ts.sent.nonce;
    if (answered) this.#recordReply(stream, node, typeUrl, status, req, nonce, answered, stale);
    else if (nonce === '' && req.version_info) {
      // A reconnecting client tells us what it still runs.
      status.acked ??= { version: req.version_info, nonce: '', at: Date.now() };
    }

    if (stale) {
      // Answers a response older than the last one we sent: the client will answer that one too,
      // with its current resource_names, so nothing else in this request is acted on.
      this.#log.debug({ node: node.nodeId, type: short, nonce, current: ts!.sent!.nonce }, 'stale nonce: no response for this request');
      return;
    }

    // Subscription (SotW): LDS/CDS are wildcard when first asked with no names (legacy) or with '*'.
    const wildcardCapable = typeUrl === TypeUrl.listener || typeUrl === TypeUrl.cluster;
    const wildcard = wildcardCapable && (names.includes('*') || (names.length === 0 && (first || ts!.wildcard)));
    const nameSet = new Set(names.filter((n) => n !== '*'));
    if (!ts) {
      ts = { wildcard, names: nameSet, recent: new Map() };
      stream.types.set(typeUrl, ts);
    } else {
      ts.wildcard = wildcard;
      ts.names = nameSet;
    }
    status.subscribed = wildcard ? '*' : [...nameSet].sort();

    if (stream.kind === 'unknown' && typeUrl === TypeUrl.listener) {
      // No user agent to go by: Envoy asks for every listener, gRPC for the ones its channels target.
      stream.kind = wildcard ? 'envoy' : 'grpc';
      if (node.kind === 'unknown') node.kind = stream.kind;
      this.#log.info({ node: node.nodeId, kind: stream.kind }, `node classified as ${stream.kind} by its LDS request`);
    }

    // Initial request on this stream → always answer; otherwise only when the content changed
    // (new subscription, new registry state). A NACKed content is never re-sent unchanged.
    this.#maybeSend(stream, typeUrl, first || !ts.sent);
  }

  #recordReply(
    stream: StreamState,
    node: NodeStatus,
    typeUrl: ResourceTypeUrl,
    status: TypeStatus,
    req: DiscoveryRequest,
    nonce: string,
    answered: { version: string; at: number },
    stale: boolean,
  ): void {
    const short = TYPE_SHORT[typeUrl];
    if (req.error_detail) {
      const nack: XdsNackEvent = {
        nodeId: node.nodeId,
        kind: stream.kind,
        typeUrl,
        type: short,
        version: answered.version,
        nonce,
        at: Date.now(),
        message: req.error_detail.message ?? '',
        code: req.error_detail.code ?? 0,
        inForce: req.version_info || status.acked?.version,
        stale,
      };
      status.nacked = { version: nack.version, nonce, at: nack.at, message: nack.message, code: nack.code, inForce: nack.inForce };
      this.#nackLog.push(nack);
      if (this.#nackLog.length > 100) this.#nackLog.shift();
      this.#log.warn(
        { node: node.nodeId, type: short, rejected: nack.version, inForce: nack.inForce, nonce, errorDetail: nack.message, code: nack.code },
        `xDS NACK: ${node.nodeId} rejected ${short} version ${nack.version}: ${nack.message}`,
      );
      this.emit('nack', nack);
    } else {
      const ack: XdsAckEvent = { nodeId: node.nodeId, kind: stream.kind, typeUrl, type: short, version: req.version_info ?? '', nonce, at: Date.now(), sentAt: answered.at, stale };
      status.acked = { version: ack.version, nonce, at: ack.at };
      // Only an ACK of the latest response clears a NACK (a late ACK of an older one does not).
      if (!stale && status.nacked && status.nacked.version !== ack.version) delete status.nacked;
      this.#log.debug({ node: node.nodeId, type: short, version: ack.version, ms: ack.at - answered.at, stale }, 'xDS ACK');
      this.emit('ack', ack);
    }
  }

  #identify(stream: StreamState, wire: WireNode | null | undefined): void {
    const nodeId = wire?.id || `anonymous-${stream.id}`;
    const kind = classifyNode(wire);
    stream.kind = kind;
    let node = this.#nodes.get(nodeId);
    if (!node) {
      node = { nodeId, cluster: wire?.cluster ?? '', kind, userAgent: wire?.user_agent_name ?? '', streams: 0, connectedAt: Date.now(), types: {} };
      this.#nodes.set(nodeId, node);
      // Disconnected nodes stay listed (useful after a NACK or a crash) but the table is bounded.
      if (this.#nodes.size > MAX_NODES) {
        for (const [id, n] of this.#nodes) {
          if (n.streams === 0) {
            this.#nodes.delete(id);
            break;
          }
        }
      }
    } else {
      node.kind = kind === 'unknown' ? node.kind : kind;
      node.userAgent = wire?.user_agent_name ?? node.userAgent;
      node.connectedAt = Date.now();
    }
    node.streams++;
    stream.node = node;
    if (!wire?.id) this.#log.warn({ stream: stream.id, peer: stream.peer }, 'first discovery request carries no node id');
    this.#log.info({ stream: stream.id, node: nodeId, cluster: node.cluster, userAgent: node.userAgent, kind, peer: stream.peer }, `xDS client connected: ${nodeId} (${kind})`);
  }

  // ---------------------------------------------------------------- snapshots

  #build(stream: StreamState, typeUrl: ResourceTypeUrl, ts: StreamTypeState): { name: string; resource: JsonObject }[] {
    const o = this.#opts;
    const t = this.#translator;
    const out: { name: string; resource: JsonObject }[] = [];
    switch (typeUrl) {
      case TypeUrl.listener: {
        if (stream.kind === 'envoy' || (stream.kind === 'unknown' && ts.wildcard)) {
          if (ts.wildcard || ts.names.has(o.front.listenerName)) out.push({ name: o.front.listenerName, resource: t.frontListener(o) });
          const tls = t.frontTlsListener(o);
          if (tls && (ts.wildcard || ts.names.has(o.front.tls!.listenerName))) out.push({ name: o.front.tls!.listenerName, resource: tls });
        } else {
          for (const name of [...ts.names].sort()) out.push({ name, resource: t.grpcApiListener(name, o) });
        }
        break;
      }
      case TypeUrl.route:
        for (const name of [...ts.names].sort()) {
          if (name === o.front.routeConfigName) out.push({ name, resource: t.frontRouteConfiguration(o) });
          else if (name === o.grpcRouteConfigName) out.push({ name, resource: t.grpcRouteConfiguration(o) });
        }
        break;
      case TypeUrl.cluster:
        if (ts.wildcard || ts.names.has(o.cluster)) out.push({ name: o.cluster, resource: t.cluster(o) });
        break;
      case TypeUrl.endpoint:
        if (ts.names.has(o.cluster)) out.push({ name: o.cluster, resource: t.clusterLoadAssignment(this.#endpointsByAddress(), o) });
        break;
    }
    return out;
  }

  #maybeSend(stream: StreamState, typeUrl: ResourceTypeUrl, force: boolean): void {
    if (stream.closed || !stream.node) return;
    const ts = stream.types.get(typeUrl);
    if (!ts) return;
    const node = stream.node;
    const short = TYPE_SHORT[typeUrl];
    const typeName = typeNameOf(typeUrl);
    let encoded: { name: string; value: Buffer }[];
    try {
      encoded = this.#build(stream, typeUrl, ts).map(({ name, resource }) => ({ name, value: Buffer.from(encodeResource(typeName, resource)) }));
    } catch (err) {
      // A resource that does not encode is a bug here, not the client's problem: keep what it has.
      this.#log.error({ err, node: node.nodeId, type: short }, `cannot encode ${short} resources; nothing sent`);
      return;
    }
    const h = createHash('sha256');
    for (const e of encoded) h.update(e.name).update('\0').update(e.value).update('\0');
    const hash = h.digest('hex');
    if (!force && ts.sent?.hash === hash) return;

    // Registry version the content was computed at + content hash: readable ("which registry state
    // is this node on?") and unique per content, so a rejected version is never confused with a good one.
    const version = `${this.#registry.version}-${hash.slice(0, 8)}`;
    const nonce = `${this.#nonceBase}-${++this.#nonceSeq}`;
    const response: DiscoveryResponse = {
      version_info: version,
      type_url: typeUrl,
      nonce,
      resources: encoded.map((e) => ({ type_url: typeUrl, value: e.value })),
      control_plane: { identifier: this.#identifier },
    };
    const sent = { version, nonce, at: Date.now(), resources: encoded.map((e) => e.name), hash };
    ts.sent = sent;
    ts.recent.set(nonce, { version, at: sent.at });
    if (ts.recent.size > 16) ts.recent.delete(ts.recent.keys().next().value!);
    const status = (node.types[short] ??= { subscribed: ts.wildcard ? '*' : [...ts.names].sort() });
    status.sent = { version, nonce, at: sent.at, resources: sent.resources };
    try {
      stream.call.write(response);
    } catch (err) {
      this.#log.warn({ err, node: node.nodeId, type: short }, 'write on a closing ADS stream failed');
      return;
    }
    this.#log.info(
      { node: node.nodeId, kind: stream.kind, type: short, version, nonce, resources: sent.resources, registryVersion: this.#registry.version },
      `xDS push ${short} ${version} → ${node.nodeId} (${sent.resources.length} resource${sent.resources.length === 1 ? '' : 's'})`,
    );
    this.emit('response', { nodeId: node.nodeId, kind: stream.kind, typeUrl, type: short, version, nonce, at: sent.at, resources: sent.resources, registryVersion: this.#registry.version } satisfies XdsResponseEvent);
  }

  #schedulePush(reason: string): void {
    if (this.#pushScheduled || this.#closed) return;
    this.#pushScheduled = true;
    // Coalesce bursts (drain + remove in one tick) into one push per stream and type.
    setImmediate(() => {
      this.#pushScheduled = false;
      if (this.#closed) return;
      this.#log.debug({ reason, registryVersion: this.#registry.version, streams: this.#streams.size }, 'recomputing xDS snapshots');
      for (const s of this.#streams) for (const t of PUSH_ORDER) this.#maybeSend(s, t, false);
    });
  }

  /** The registry's endpoints with host names replaced by the addresses they resolved to. */
  #endpointsByAddress(): Endpoint[] {
    return this.#registry.list().map((e) => (net.isIP(e.host) === 0 && this.#resolved.has(e.host) ? { ...e, host: this.#resolved.get(e.host)! } : e));
  }

  /** Look up every endpoint host name; push when an address appears, changes or goes away. */
  async #resolveNames(): Promise<void> {
    const names = [...new Set(unroutableEndpoints(this.#registry.list()).map((e) => e.host))];
    let changed = false;
    await Promise.all(
      names.map(async (name) => {
        let address: string | undefined;
        try {
          const all = await lookup(name, { all: true });
          // IPv4 first: backends listening on 0.0.0.0 are not reachable over ::1.
          address = (all.find((a) => a.family === 4) ?? all[0])?.address;
        } catch (err) {
          if (!this.#unresolvable.has(name)) {
            this.#unresolvable.add(name);
            this.#log.warn({ host: name, err: (err as Error).message }, 'endpoint host name does not resolve: left out of EDS until it does');
          }
        }
        if (address) this.#unresolvable.delete(name);
        if (address !== this.#resolved.get(name)) {
          changed = true;
          if (address) {
            this.#resolved.set(name, address);
            this.#log.info({ host: name, address }, 'endpoint host name resolved for EDS');
          } else this.#resolved.delete(name);
        }
      }),
    );
    for (const name of this.#resolved.keys()) if (!names.includes(name)) this.#resolved.delete(name);
    if (changed) this.#schedulePush('endpoint host names resolved');
  }
}

/** Start the ADS server; resolves once it listens. */
export async function startXdsServer(options: StartXdsServerOptions): Promise<XdsServer> {
  return new XdsServer(options).start();
}

export { RESOURCE_TYPE_URLS, TypeUrl };
