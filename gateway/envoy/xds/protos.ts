// The Envoy v3 protos the xDS server needs, from the copies that ship inside @grpc/grpc-js-xds
// (deps/envoy-api, deps/xds, deps/protoc-gen-validate, deps/googleapis):
//
//   - the ADS service definition, through @grpc/proto-loader, for @grpc/grpc-js;
//   - a protobufjs Root with the resource messages (Listener, RouteConfiguration, Cluster,
//     ClusterLoadAssignment, HttpConnectionManager, Router), used by codec.ts to turn the
//     proto3-JSON resources built in resources.ts into the bytes of a google.protobuf.Any.
//
// Only the files the server emits (and their imports) are loaded, so start-up stays fast; both are
// loaded once per process.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { XdsError } from './errors.js';

export const TYPE_URL_PREFIX = 'type.googleapis.com/';

/** The four resource types of the state-of-the-world ADS stream, by their full type URL. */
export const TypeUrl = Object.freeze({
  listener: `${TYPE_URL_PREFIX}envoy.config.listener.v3.Listener`,
  route: `${TYPE_URL_PREFIX}envoy.config.route.v3.RouteConfiguration`,
  cluster: `${TYPE_URL_PREFIX}envoy.config.cluster.v3.Cluster`,
  endpoint: `${TYPE_URL_PREFIX}envoy.config.endpoint.v3.ClusterLoadAssignment`,
});
export type ResourceTypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];
export const RESOURCE_TYPE_URLS: readonly ResourceTypeUrl[] = [TypeUrl.listener, TypeUrl.route, TypeUrl.cluster, TypeUrl.endpoint];

/** Short names used in logs and in `versions()`. */
export const TYPE_SHORT: Record<ResourceTypeUrl, 'LDS' | 'RDS' | 'CDS' | 'EDS'> = {
  [TypeUrl.listener]: 'LDS',
  [TypeUrl.route]: 'RDS',
  [TypeUrl.cluster]: 'CDS',
  [TypeUrl.endpoint]: 'EDS',
};

export function isResourceTypeUrl(url: string): url is ResourceTypeUrl {
  return (RESOURCE_TYPE_URLS as readonly string[]).includes(url);
}

/** Files (relative to an include root) holding every message type the server puts on the wire. */
const RESOURCE_FILES = [
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
];

const ADS_FILE = 'envoy/service/discovery/v3/ads.proto';

let includeDirsCache: string[] | undefined;

/** deps/{envoy-api,xds,protoc-gen-validate,googleapis} of the installed @grpc/grpc-js-xds. */
function includeDirs(): string[] {
  if (includeDirsCache) return includeDirsCache;
  const require = createRequire(import.meta.url);
  let pkgJson: string;
  try {
    pkgJson = require.resolve('@grpc/grpc-js-xds/package.json');
  } catch (err) {
    throw new XdsError('GW_ERR_XDS_PROTOS', 'cannot find @grpc/grpc-js-xds, which ships the Envoy protos the xDS server needs; run npm ci', err);
  }
  const deps = path.join(path.dirname(pkgJson), 'deps');
  const dirs = ['envoy-api', 'xds', 'protoc-gen-validate', 'googleapis'].map((d) => path.join(deps, d));
  for (const d of dirs) {
    if (!fs.existsSync(d)) throw new XdsError('GW_ERR_XDS_PROTOS', `Envoy proto include root missing: ${d}`);
  }
  includeDirsCache = dirs;
  return dirs;
}

let resourceRootCache: protobuf.Root | undefined;

/** protobufjs Root holding the resource messages (field names kept in snake_case). */
export function resourceRoot(): protobuf.Root {
  if (resourceRootCache) return resourceRootCache;
  const dirs = includeDirs();
  const root = new protobuf.Root();
  const require = createRequire(import.meta.url);
  const descriptorProto = path.join(path.dirname(require.resolve('protobufjs/package.json')), 'google/protobuf/descriptor.proto');
  root.resolvePath = (_origin: string, target: string): string => {
    if (path.isAbsolute(target) && fs.existsSync(target)) return target;
    // Annotation files import descriptor.proto, which protobufjs ships as a file, not bundled JSON.
    if (target === 'google/protobuf/descriptor.proto') return descriptorProto;
    for (const d of dirs) {
      const p = path.join(d, target);
      if (fs.existsSync(p)) return p;
    }
    // google/protobuf/* are bundled with protobufjs: returning the bare name lets it use them.
    return target;
  };
  try {
    root.loadSync(RESOURCE_FILES, { keepCase: true });
    root.resolveAll();
  } catch (err) {
    throw new XdsError('GW_ERR_XDS_PROTOS', `cannot load the Envoy resource protos: ${(err as Error).message}`, err);
  }
  resourceRootCache = root;
  return root;
}

let adsCache: grpc.ServiceDefinition | undefined;

/** envoy.service.discovery.v3.AggregatedDiscoveryService, loaded with proto-loader. */
export function adsService(): grpc.ServiceDefinition {
  if (adsCache) return adsCache;
  let pkg: protoLoader.PackageDefinition;
  try {
    pkg = protoLoader.loadSync(ADS_FILE, {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
      includeDirs: includeDirs(),
    });
  } catch (err) {
    throw new XdsError('GW_ERR_XDS_PROTOS', `cannot load ${ADS_FILE}: ${(err as Error).message}`, err);
  }
  const def = pkg['envoy.service.discovery.v3.AggregatedDiscoveryService'];
  if (!def || !('StreamAggregatedResources' in def)) {
    throw new XdsError('GW_ERR_XDS_PROTOS', `${ADS_FILE} has no AggregatedDiscoveryService`);
  }
  adsCache = def as grpc.ServiceDefinition;
  return adsCache;
}
