import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

// A local Envoy front for users with an `envoy` binary (and for the any-front tests wherever one
// exists): envoy/envoy-static.yaml or envoy/envoy.yaml (ADS), the same files, with the ports of this
// run patched in; the tests validate the rendered files against the protos like every other config.

const ENVOY_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'envoy');
const STATIC = path.join(ENVOY_DIR, 'envoy-static.yaml');
const ADS = path.join(ENVOY_DIR, 'envoy.yaml');
export interface LocalEnvoyPorts {
  host: string;
  frontPort: number;
  adminPort: number;
  backends: ReadonlyArray<{ host: string; port: number }>;
}

/** envoy-static.yaml with this run's ports; returns the path of the rendered file. */
export function renderStaticEnvoyConfig(ports: LocalEnvoyPorts, dir: string): string {
  const doc = parse(readFileSync(STATIC, 'utf8')) as any;
  doc.admin.address.socket_address = { address: ports.host, port_value: ports.adminPort };
  const listener = doc.static_resources.listeners.find((l: any) => l.name === 'front');
  listener.address.socket_address = { address: ports.host, port_value: ports.frontPort };
  const cluster = doc.static_resources.clusters.find((c: any) => c.name === 'backends');
  cluster.load_assignment.endpoints = [
    { lb_endpoints: ports.backends.map((b) => ({ endpoint: { address: { socket_address: { address: b.host, port_value: b.port } } } })) },
  ];
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'envoy-local.yaml');
  writeFileSync(file, `# Rendered from envoy/envoy-static.yaml with this run's ports.\n${stringify(doc)}`);
  return file;
}

export interface LocalAdsPorts {
  adminHost: string;
  adminPort: number;
  /** The gateway's xDS server. */
  xdsHost: string;
  xdsPort: number;
}

/** envoy.yaml (listeners and clusters over ADS) pointed at this run's xDS server; returns the rendered file. */
export function renderAdsEnvoyConfig(ports: LocalAdsPorts, dir: string): string {
  const doc = parse(readFileSync(ADS, 'utf8')) as any;
  doc.admin.address.socket_address = { address: ports.adminHost, port_value: ports.adminPort };
  const xds = doc.static_resources.clusters.find((c: any) => c.name === 'xds_cluster');
  xds.load_assignment.endpoints = [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: ports.xdsHost, port_value: ports.xdsPort } } } }] }];
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'envoy-local-ads.yaml');
  writeFileSync(file, `# Rendered from envoy/envoy.yaml with this run's ports.\n${stringify(doc)}`);
  return file;
}
