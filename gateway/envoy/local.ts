import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

// A local Envoy front for users with an `envoy` binary (and for the any-front tests wherever one
// exists): envoy/envoy.yaml (ADS), the same file, with the ports of this run patched in; the tests
// validate the rendered file against the protos like every other config.

const ENVOY_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'envoy');
const ADS = path.join(ENVOY_DIR, 'envoy.yaml');

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
