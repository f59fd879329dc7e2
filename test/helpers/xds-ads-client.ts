// A bare ADS client for tests: speaks StreamAggregatedResources with @grpc/grpc-js + the same
// Envoy protos as the server, writes exactly the DiscoveryRequests a test asks for, and records
// every DiscoveryResponse. `syncLikeEnvoy()` plays Envoy's start-up sequence (wildcard CDS + LDS,
// then EDS/RDS for the names they reference, ACKing each), which is how the tests get the resources
// an Envoy node receives without an Envoy binary.

import * as grpc from '@grpc/grpc-js';
import { decodeResource, typeNameOf, type JsonObject } from '../../gateway/envoy/xds/codec.js';
import { adsService, TypeUrl } from '../../gateway/envoy/xds/protos.js';

export interface WireResponse {
  version_info: string;
  nonce: string;
  type_url: string;
  resources: { type_url: string; value: Buffer }[];
  control_plane?: { identifier: string } | null;
}

export interface NodeInfo {
  id: string;
  cluster?: string;
  user_agent_name?: string;
}

export interface RequestFields {
  names?: string[];
  nonce?: string;
  version?: string;
  error?: string;
}

type AdsStub = grpc.Client & {
  StreamAggregatedResources(): grpc.ClientDuplexStream<object, WireResponse>;
};

export class AdsTestClient {
  readonly responses: WireResponse[] = [];
  readonly #client: AdsStub;
  readonly #call: grpc.ClientDuplexStream<object, WireResponse>;
  readonly #node: NodeInfo;
  #sentNode = false;
  #waiters: { typeUrl: string; resolve: (r: WireResponse) => void; seen: number }[] = [];
  ended: grpc.StatusObject | undefined;

  constructor(port: number, node: NodeInfo, host = '127.0.0.1') {
    const Ctor = grpc.makeClientConstructor(adsService(), 'AggregatedDiscoveryService') as unknown as new (
      address: string,
      creds: grpc.ChannelCredentials,
    ) => AdsStub;
    this.#client = new Ctor(`${host}:${port}`, grpc.credentials.createInsecure());
    this.#node = node;
    this.#call = this.#client.StreamAggregatedResources();
    this.#call.on('data', (r: WireResponse) => {
      this.responses.push(r);
      this.#wake();
    });
    this.#call.on('status', (s) => {
      this.ended = s;
    });
    this.#call.on('error', () => {});
  }

  request(typeUrl: string, f: RequestFields = {}): void {
    this.#call.write({
      node: this.#sentNode ? undefined : this.#node,
      type_url: typeUrl,
      resource_names: f.names ?? [],
      response_nonce: f.nonce ?? '',
      version_info: f.version ?? '',
      error_detail: f.error ? { code: grpc.status.INVALID_ARGUMENT, message: f.error } : undefined,
    });
    this.#sentNode = true;
  }

  ack(r: WireResponse, names: string[]): void {
    this.request(r.type_url, { names, nonce: r.nonce, version: r.version_info });
  }

  nack(r: WireResponse, names: string[], lastGoodVersion: string, error: string): void {
    this.request(r.type_url, { names, nonce: r.nonce, version: lastGoodVersion, error });
  }

  /** Responses of one type received so far. */
  of(typeUrl: string): WireResponse[] {
    return this.responses.filter((r) => r.type_url === typeUrl);
  }

  /** Wait for the (after+1)-th response of `typeUrl` (default: one more than seen so far). */
  next(typeUrl: string, timeoutMs = 3_000, after = this.of(typeUrl).length): Promise<WireResponse> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${typeUrl} response #${after + 1} within ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.push({
        typeUrl,
        seen: after,
        resolve: (r) => {
          clearTimeout(t);
          resolve(r);
        },
      });
      this.#wake();
    });
  }

  /** Resolves true if a response of `typeUrl` arrives within `ms`, false otherwise. */
  async expectNone(typeUrl: string, ms: number): Promise<boolean> {
    try {
      await this.next(typeUrl, ms);
      return false;
    } catch {
      return true;
    }
  }

  #wake(): void {
    this.#waiters = this.#waiters.filter((w) => {
      const list = this.of(w.typeUrl);
      const r = list[w.seen];
      if (r) {
        w.resolve(r);
        return false;
      }
      return true;
    });
  }

  close(): void {
    this.#call.cancel();
    this.#client.close();
  }
}

/** Decoded resources of a response, as proto3 JSON (Anys expanded). */
export function decodeResponse(r: WireResponse): JsonObject[] {
  return r.resources.map((a) => decodeResource(typeNameOf(a.type_url), a.value));
}

export interface EnvoySync {
  listeners: JsonObject[];
  routes: JsonObject[];
  clusters: JsonObject[];
  endpoints: JsonObject[];
  responses: WireResponse[];
}

function rdsNames(listeners: JsonObject[]): string[] {
  const names = new Set<string>();
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const rds = o.rds as { route_config_name?: string } | undefined;
      if (rds?.route_config_name) names.add(rds.route_config_name);
      Object.values(o).forEach(visit);
    }
  };
  visit(listeners);
  return [...names].sort();
}

/**
 * Envoy's start-up over ADS: wildcard CDS and LDS, then EDS for each EDS cluster and RDS for each
 * route_config_name, ACKing every response. Resolves with the decoded resources.
 */
export async function syncLikeEnvoy(c: AdsTestClient): Promise<EnvoySync> {
  const cds = c.next(TypeUrl.cluster);
  const lds = c.next(TypeUrl.listener);
  c.request(TypeUrl.cluster);
  c.request(TypeUrl.listener);
  const [cdsR, ldsR] = await Promise.all([cds, lds]);
  const clusters = decodeResponse(cdsR);
  const listeners = decodeResponse(ldsR);
  c.ack(cdsR, []);
  c.ack(ldsR, []);
  const edsNames = clusters.filter((x) => x.type === 'EDS').map((x) => String(x.name));
  const routeNames = rdsNames(listeners);
  const eds = c.next(TypeUrl.endpoint);
  const rds = c.next(TypeUrl.route);
  c.request(TypeUrl.endpoint, { names: edsNames });
  c.request(TypeUrl.route, { names: routeNames });
  const [edsR, rdsR] = await Promise.all([eds, rds]);
  c.ack(edsR, edsNames);
  c.ack(rdsR, routeNames);
  return { listeners, clusters, endpoints: decodeResponse(edsR), routes: decodeResponse(rdsR), responses: [cdsR, ldsR, edsR, rdsR] };
}
