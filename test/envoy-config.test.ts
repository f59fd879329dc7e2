// Envoy configs (envoy/), the checker that proves them against Envoy's v3 API
// (gateway/envoy/validate.ts), and docker-compose.yml. No Envoy binary or Docker engine is needed;
// the steps that need one are skipped with a printed reason.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protojson from 'protobufjs/ext/protojson.js';
import { parse as parseYaml } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { backendSchema, defaults, gatewaySchema, loadConfig } from '../lib/config.js';
import { parseCommandLine } from '../lib/cli.js';
import { GatewayError } from '../lib/errors.js';
import { BENCH } from '../bench/cli.js';
import { EnvoyConfigError } from '../gateway/envoy/errors.js';
import { loadEnvoyApi } from '../gateway/envoy/proto-root.js';
import {
  assertValidEnvoyMessage,
  encodeEnvoyMessage,
  envoyConfigFiles,
  envoyMessageType,
  formatProblem,
  validateEnvoyFile,
  validateEnvoyMessage,
  validateEnvoyYaml,
  validateWithEnvoyBinary,
  type EnvoyValidationResult,
} from '../gateway/envoy/validate.js';
import { parseEnvoyYaml, toJson } from '../gateway/envoy/yaml-node.js';
import { envoyBin, envoySkipReason } from './helpers/envoy.js';
import { selfSignedCert } from './helpers/tls.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const envoyDir = path.join(repo, 'envoy');
const read = (f: string) => fs.readFileSync(path.join(repo, f), 'utf8');
const cfg = defaults(gatewaySchema);

const STATIC = 'envoy/envoy-static.yaml';
const STATIC_H2 = 'envoy/envoy-static-h2-upstream.yaml';
const ADS = 'envoy/envoy.yaml';
const HCM = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';
const CLUSTER = 'static_resources.clusters[0]';

/** Replace the one occurrence of `from` (fails the test if it is not there exactly once). */
function mutate(text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  expect(at, `"${from}" not found`).toBeGreaterThanOrEqual(0);
  expect(text.indexOf(from, at + 1), `"${from}" found twice`).toBe(-1);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});
const tmpDir = (prefix: string) => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
};

const show = (r: EnvoyValidationResult) => [...r.errors, ...r.warnings].map((p) => formatProblem(p)).join('\n');

/* eslint-disable @typescript-eslint/no-explicit-any */
const yamlJs = (f: string): any => parseYaml(read(f));
const hcmOf = (doc: any): any => doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;

describe('Envoy v3 API protos', () => {
  it('load from @grpc/grpc-js-xds once, with the udpa/validate/xds annotations, in reasonable time', () => {
    const api = loadEnvoyApi();
    expect(loadEnvoyApi()).toBe(api); // cached
    expect(api.loadedFiles.length).toBeGreaterThan(300);
    expect(api.loadMs).toBeLessThan(10_000);
    const h2 = envoyMessageType('envoy.config.core.v3.Http2ProtocolOptions');
    expect(h2.fields.max_concurrent_streams?.options).toMatchObject({ '(validate.rules).uint32.gte': 1 });
    expect(envoyMessageType('type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap').fullName).toBe('.envoy.config.bootstrap.v3.Bootstrap');
    // Files left out are only those whose imports the package does not ship, and they are named.
    for (const [file, missing] of api.excludedFiles) expect(missing, file).toMatch(/^(opencensus|opentelemetry|io\/prometheus)\//);
  });
});

describe('envoy/ configs', () => {
  const files = envoyConfigFiles(envoyDir).map((f) => path.relative(repo, f));

  it('include the three documented variants; every file has a header comment saying what it shows', () => {
    expect(files).toEqual(expect.arrayContaining([STATIC_H2, STATIC, ADS]));
    for (const f of files) {
      const head = read(f).split('\n').slice(0, 12).join('\n');
      expect(head, f).toMatch(/^# Envoy front for the h2 WebSocket gateway/);
      expect(head, f).toMatch(/What it shows:/);
    }
  });

  it.each(files)('%s passes the check against envoy.config.bootstrap.v3.Bootstrap, without warnings', (f) => {
    const r = validateEnvoyFile(path.join(repo, f));
    expect(show(r)).toBe('');
    expect(r.ok).toBe(true);
    expect(r.typesChecked.length).toBeGreaterThan(0); // typed_configs were resolved and checked, not skipped
  });

  it.each(files)('%s is also accepted by protobufjs’ own proto3 JSON parser and round-trips through the wire format', (f) => {
    const node = parseEnvoyYaml(read(f)).node;
    const bytes = encodeEnvoyMessage('envoy.config.bootstrap.v3.Bootstrap', node);
    expect(bytes.length).toBeGreaterThan(200);
    const T = envoyMessageType('envoy.config.bootstrap.v3.Bootstrap');
    const back = protojson.toJson(T, T.decode(bytes)) as Record<string, unknown>;
    expect(validateEnvoyMessage('envoy.config.bootstrap.v3.Bootstrap', back).errors).toEqual([]);
  });

  it.each([STATIC, STATIC_H2])('%s: front listener is codec AUTO, RFC 8441, ≥10,000 streams, websocket upgrades, route timeout 0s', (f) => {
    const doc = yamlJs(f);
    const listener = doc.static_resources.listeners[0];
    expect(listener.address.socket_address).toEqual({ address: '0.0.0.0', port_value: cfg.frontPort });
    const hcm = hcmOf(doc);
    expect(hcm['@type']).toBe('type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
    expect(hcm.codec_type).toBe('AUTO');
    expect(hcm.http2_protocol_options.allow_connect).toBe(true);
    expect(hcm.http2_protocol_options.max_concurrent_streams).toBeGreaterThanOrEqual(10_000);
    expect(hcm.http2_protocol_options.max_concurrent_streams).toBe(cfg.h2MaxConcurrentStreams);
    expect(hcm.upgrade_configs).toContainEqual({ upgrade_type: 'websocket' });
    const routes = hcm.route_config.virtual_hosts.flatMap((v: any) => v.routes);
    expect(routes.length).toBeGreaterThan(0);
    for (const r of routes) expect(r.route.timeout).toBe('0s');
    // Explicit idle timeouts, long enough for quiet WebSockets.
    expect(Number(String(hcm.stream_idle_timeout).replace(/s$/, ''))).toBeGreaterThanOrEqual(300);
    expect(hcm.common_http_protocol_options.idle_timeout).toMatch(/^\d+s$/);
    expect(hcm.http_filters.at(-1).typed_config['@type']).toBe('type.googleapis.com/envoy.extensions.filters.http.router.v3.Router');
    // Admin on 9901, loopback.
    expect(doc.admin.address.socket_address).toEqual({ address: '127.0.0.1', port_value: cfg.envoyAdminPort });
  });

  it.each([STATIC, STATIC_H2])('%s: backends 9101-9103, per-stream round robin, room for 10,000 sessions', (f) => {
    const cluster = yamlJs(f).static_resources.clusters[0];
    expect(cluster.lb_policy).toBe('ROUND_ROBIN');
    const endpoints = cluster.load_assignment.endpoints.flatMap((e: any) => e.lb_endpoints.map((l: any) => l.endpoint.address.socket_address));
    expect(endpoints).toEqual(cfg.backendPorts.map((p) => ({ address: '127.0.0.1', port_value: p })));
    const t = cluster.circuit_breakers.thresholds[0];
    for (const k of ['max_connections', 'max_pending_requests', 'max_requests']) expect(t[k], k).toBeGreaterThanOrEqual(10_000);
    expect(cluster.health_checks[0].http_health_check.path).toBe('/healthz');
  });

  it('upstream protocol: HTTP/1.1 in envoy-static.yaml, HTTP/2 with allow_connect in the h2 variant — and nothing else differs', () => {
    const key = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
    const h1 = yamlJs(STATIC);
    const h2 = yamlJs(STATIC_H2);
    const h1Opts = h1.static_resources.clusters[0].typed_extension_protocol_options[key];
    const h2Opts = h2.static_resources.clusters[0].typed_extension_protocol_options[key];
    expect(h1Opts['@type']).toBe(`type.googleapis.com/${key}`);
    expect(h1Opts.explicit_http_config).toEqual({ http_protocol_options: {} });
    expect(h2Opts['@type']).toBe(`type.googleapis.com/${key}`);
    expect(h2Opts.explicit_http_config.http2_protocol_options.allow_connect).toBe(true);
    delete h1.static_resources.clusters[0].typed_extension_protocol_options;
    delete h2.static_resources.clusters[0].typed_extension_protocol_options;
    expect(h2).toEqual(h1);
  });

  it('envoy.yaml: ADS over gRPC (API v3) to the xDS cluster on 18000, CDS and LDS via ADS, node id and cluster set', () => {
    const doc = yamlJs(ADS);
    expect(doc.node.id).toBeTruthy();
    expect(doc.node.cluster).toBeTruthy();
    const ads = doc.dynamic_resources.ads_config;
    expect(ads).toMatchObject({ api_type: 'GRPC', transport_api_version: 'V3' });
    expect(ads.grpc_services[0].envoy_grpc.cluster_name).toBe('xds_cluster');
    for (const k of ['cds_config', 'lds_config']) expect(doc.dynamic_resources[k]).toEqual({ resource_api_version: 'V3', ads: {}, initial_fetch_timeout: '0s' });
    const xds = doc.static_resources.clusters.find((c: any) => c.name === 'xds_cluster');
    expect(xds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value).toBe(cfg.xdsPort);
    expect(xds.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].explicit_http_config).toHaveProperty('http2_protocol_options');
    expect(doc.admin.address.socket_address.port_value).toBe(cfg.envoyAdminPort);
  });
});

describe('broken copies fail with the YAML path of the problem', () => {
  const base = read(STATIC);
  const cases: { name: string; from: string; to: string; path: string; kind: string; message: RegExp }[] = [
    {
      name: 'misspelt field',
      from: 'allow_connect: true',
      to: 'allow_conect: true',
      path: `${HCM}.http2_protocol_options.allow_conect`,
      kind: 'unknown_field',
      message: /unknown field .*did you mean "allow_connect"/,
    },
    {
      name: 'allow_connect under the wrong message',
      from: 'use_remote_address: true',
      to: 'allow_connect: true',
      path: `${HCM}.allow_connect`,
      kind: 'unknown_field',
      message: /unknown field \(not in envoy\.extensions\.filters\.network\.http_connection_manager\.v3\.HttpConnectionManager\).*envoy\.config\.core\.v3\.Http2ProtocolOptions/,
    },
    {
      name: 'wrong type: string for a bool',
      from: 'allow_connect: true',
      to: 'allow_connect: maybe',
      path: `${HCM}.http2_protocol_options.allow_connect`,
      kind: 'wrong_type',
      message: /expected a bool .*got string "maybe"/,
    },
    {
      name: 'wrong type: number for a bool',
      from: 'allow_connect: true',
      to: 'allow_connect: 1',
      path: `${HCM}.http2_protocol_options.allow_connect`,
      kind: 'wrong_type',
      message: /expected a bool .*got number 1/,
    },
    {
      name: 'wrong type: bool for an object',
      from: 'common_http_protocol_options:\n',
      to: 'common_http_protocol_options: true\n          old_common_http_protocol_options:\n',
      path: `${HCM}.common_http_protocol_options`,
      kind: 'wrong_type',
      message: /expected an object \(envoy\.config\.core\.v3\.HttpProtocolOptions\), got bool true/,
    },
    {
      name: 'wrong type: object where a list of strings goes',
      from: 'domains: ["*"]',
      to: 'domains: { all: "*" }',
      path: `${HCM}.route_config.virtual_hosts[0].domains`,
      kind: 'wrong_type',
      message: /expected a string, got an object/,
    },
    {
      name: 'wrong type: list for an object',
      from: 'route_config:\n',
      to: 'route_config:\n          - wrong\n          old_route_config:\n',
      path: `${HCM}.route_config`,
      kind: 'wrong_type',
      message: /expected an object \(envoy\.config\.route\.v3\.RouteConfiguration\), got a list/,
    },
    {
      name: 'wrong type: object for a string',
      from: 'stat_prefix: front',
      to: 'stat_prefix: { name: front }',
      path: `${HCM}.stat_prefix`,
      kind: 'wrong_type',
      message: /expected a string, got an object/,
    },
    {
      name: 'wrong type: number for a string',
      from: 'stat_prefix: front',
      to: 'stat_prefix: 8080',
      path: `${HCM}.stat_prefix`,
      kind: 'wrong_type',
      message: /expected a string, got number 8080 — quote it/,
    },
    {
      name: 'string where a number goes (port)',
      from: 'port_value: 9102',
      to: 'port_value: ninety-one-o-two',
      path: `${CLUSTER}.load_assignment.endpoints[0].lb_endpoints[1].endpoint.address.socket_address.port_value`,
      kind: 'wrong_type',
      message: /expected a number \(uint32\), got string "ninety-one-o-two"/,
    },
    {
      name: 'string where a number goes (UInt32Value wrapper)',
      from: 'max_concurrent_streams: 20000',
      to: 'max_concurrent_streams: lots',
      path: `${HCM}.http2_protocol_options.max_concurrent_streams`,
      kind: 'wrong_type',
      message: /expected a number \(uint32\)/,
    },
    {
      name: 'unknown @type',
      from: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
      to: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Routr',
      path: `${HCM}.http_filters[1].typed_config.@type`,
      kind: 'unknown_type',
      message: /unknown @type .*did you mean envoy\.extensions\.filters\.http\.router\.v3\.Router/,
    },
    {
      name: 'removed v2 @type',
      from: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
      to: 'type.googleapis.com/envoy.config.filter.http.router.v2.Router',
      path: `${HCM}.http_filters[1].typed_config.@type`,
      kind: 'unknown_type',
      message: /no such message in Envoy's v3 API/,
    },
    {
      name: 'bad field inside a typed_config resolved by @type',
      from: '"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
      to: '"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n              dynamic_stat: true',
      path: `${HCM}.http_filters[1].typed_config.dynamic_stat`,
      kind: 'unknown_field',
      message: /not in envoy\.extensions\.filters\.http\.router\.v3\.Router.*dynamic_stats/,
    },
    {
      name: 'misspelt enum',
      from: 'codec_type: AUTO',
      to: 'codec_type: AUTOMATIC',
      path: `${HCM}.codec_type`,
      kind: 'bad_enum',
      message: /bad enum value "AUTOMATIC" .*expected one of AUTO, HTTP1, HTTP2, HTTP3/,
    },
    {
      name: 'misspelt enum in a cluster',
      from: 'lb_policy: ROUND_ROBIN',
      to: 'lb_policy: ROUND_ROBBIN',
      path: `${CLUSTER}.lb_policy`,
      kind: 'bad_enum',
      message: /did you mean ROUND_ROBIN/,
    },
    {
      name: 'Duration as a bare number',
      from: 'timeout: 0s',
      to: 'timeout: 0',
      path: `${HCM}.route_config.virtual_hosts[0].routes[0].route.timeout`,
      kind: 'wrong_type',
      message: /expected a duration string .*"0s"/,
    },
    {
      name: 'PGV range rule',
      from: 'max_concurrent_streams: 20000',
      to: 'max_concurrent_streams: 0',
      path: `${HCM}.http2_protocol_options.max_concurrent_streams`,
      kind: 'constraint',
      message: /must be >= 1 .*Http2ProtocolOptions\.max_concurrent_streams/,
    },
    {
      name: 'PGV port range',
      from: 'port_value: 9103',
      to: 'port_value: 70000',
      path: `${CLUSTER}.load_assignment.endpoints[0].lb_endpoints[2].endpoint.address.socket_address.port_value`,
      kind: 'constraint',
      message: /must be <= 65535/,
    },
    {
      name: 'PGV required message',
      from: '      unhealthy_threshold: 2\n',
      to: '',
      path: `${CLUSTER}.health_checks[0].unhealthy_threshold`,
      kind: 'constraint',
      message: /required field missing/,
    },
    {
      name: 'PGV min_len on a field left out',
      from: '  - name: backends\n    type: STATIC',
      to: '  - type: STATIC',
      path: `${CLUSTER}.name`,
      kind: 'constraint',
      message: /must not be empty .*not set/,
    },
    {
      name: 'two members of one oneof',
      from: '                  cluster: backends\n',
      to: '                  cluster: backends\n                  cluster_header: x-cluster\n',
      path: `${HCM}.route_config.virtual_hosts[0].routes[0].route.cluster_header`,
      kind: 'oneof',
      message: /only one of oneof "cluster_specifier"/,
    },
    {
      name: 'route names a cluster that does not exist',
      from: '                  cluster: backends\n',
      to: '                  cluster: backend\n',
      path: `${HCM}.route_config.virtual_hosts[0].routes[0].route.cluster`,
      kind: 'reference',
      message: /unknown cluster "backend".*did you mean "backends"/,
    },
    {
      name: 'a oneof member given twice (snake_case and camelCase)',
      from: '                  cluster: backends\n',
      to: '                  cluster: backends\n                  clusterHeader: x\n                  cluster_header: y\n',
      path: `${HCM}.route_config.virtual_hosts[0].routes[0].route.cluster_header`,
      kind: 'duplicate_field',
      message: /given twice/,
    },
  ];

  it.each(cases)('$name → $kind at $path', ({ from, to, path: where, kind, message }) => {
    const r = validateEnvoyYaml(mutate(base, from, to));
    expect(r.ok).toBe(false);
    const hit = r.errors.find((p) => p.path === where && p.kind === kind);
    expect(hit, `no ${kind} at ${where}; got:\n${show(r)}`).toBeDefined();
    expect(hit!.message).toMatch(message);
    expect(hit!.pos?.line).toBeGreaterThan(0);
    expect(formatProblem(hit!, 'x.yaml')).toMatch(new RegExp(`^x\\.yaml:\\d+:\\d+: ${where.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
  });

  it('a route to a cluster from CDS is fine once validate_clusters is false', () => {
    let text = mutate(base, '                  cluster: backends\n', '                  cluster: from-cds\n');
    text = mutate(text, '            name: front\n', '            name: front\n            validate_clusters: false\n');
    expect(show(validateEnvoyYaml(text))).toBe('');
  });

  it('reports every problem, not only the first', () => {
    let text = base;
    text = mutate(text, 'allow_connect: true', 'allow_conect: true');
    text = mutate(text, 'codec_type: AUTO', 'codec_type: AUTOMATIC');
    text = mutate(text, 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router', 'type.googleapis.com/nope.Router');
    text = mutate(text, 'port_value: 9101', 'port_value: "x"');
    const r = validateEnvoyYaml(text);
    expect(r.errors.map((p) => p.kind).sort()).toEqual(['bad_enum', 'unknown_field', 'unknown_type', 'wrong_type']);
  });

  it('the user-facing line reads "path: unknown field"', () => {
    const r = validateEnvoyYaml(mutate(base, 'allow_connect: true', 'allow_conect: true'));
    expect(formatProblem(r.errors[0]!)).toMatch(
      /^line \d+: static_resources\.listeners\[0\]\.filter_chains\[0\]\.filters\[0\]\.typed_config\.http2_protocol_options\.allow_conect: unknown field/,
    );
  });

  it('protobufjs’ proto3 JSON parser agrees that the misspelt field is wrong', () => {
    const node = parseEnvoyYaml(mutate(base, 'allow_connect: true', 'allow_conect: true')).node;
    expect(() => encodeEnvoyMessage('envoy.config.bootstrap.v3.Bootstrap', node)).toThrow(/allow_conect/);
  });

  it('accepts what Envoy accepts: camelCase json names, lowercase enums, YAML 1.1 booleans; quoted numbers only warn', () => {
    expect(show(validateEnvoyYaml(mutate(base, 'allow_connect: true', 'allowConnect: true')))).toBe('');
    expect(show(validateEnvoyYaml(mutate(base, 'codec_type: AUTO', 'codec_type: auto')))).toBe('');
    expect(show(validateEnvoyYaml(mutate(base, 'allow_connect: true', 'allow_connect: yes')))).toBe('');
    const quoted = validateEnvoyYaml(mutate(base, 'max_concurrent_streams: 20000', 'max_concurrent_streams: "20000"'));
    expect(quoted.ok).toBe(true);
    expect(quoted.warnings.map((w) => w.kind)).toEqual(['quoted_number']);
  });

  it('shapes Envoy takes only through protobuf’s legacy JSON syntax are warnings, not errors', () => {
    const cases: [string, string, string][] = [
      ['allow_connect: true', 'allow_connect: "true"', `${HCM}.http2_protocol_options.allow_connect`],
      ['domains: ["*"]', 'domains: "*"', `${HCM}.route_config.virtual_hosts[0].domains`],
      ['max_concurrent_streams: 20000', 'max_concurrent_streams: { value: 20000 }', `${HCM}.http2_protocol_options.max_concurrent_streams`],
      ['timeout: 0s', 'timeout: { seconds: 0 }', `${HCM}.route_config.virtual_hosts[0].routes[0].route.timeout`],
      ['allow_connect: true', 'allow_connect: true\n            allowConnect: true', `${HCM}.http2_protocol_options.allowConnect`],
    ];
    for (const [from, to, where] of cases) {
      const r = validateEnvoyYaml(mutate(base, from, to));
      expect(r.errors, to).toEqual([]);
      expect(r.warnings.map((w) => w.path), to).toEqual([where]);
    }
    // ...and the values inside those shapes are still checked.
    const r = validateEnvoyYaml(mutate(base, 'max_concurrent_streams: 20000', 'max_concurrent_streams: { value: 0 }'));
    expect(r.errors).toMatchObject([{ kind: 'constraint', path: `${HCM}.http2_protocol_options.max_concurrent_streams` }]);
  });

  it('deprecated fields warn; YAML syntax errors and duplicate keys are reported with a line', () => {
    const dep = validateEnvoyYaml(mutate(base, 'lb_policy: ROUND_ROBIN', 'lb_policy: ROUND_ROBIN\n    http2_protocol_options: {}'));
    expect(dep.ok).toBe(true);
    expect(dep.warnings).toMatchObject([{ kind: 'deprecated', path: `${CLUSTER}.http2_protocol_options` }]);
    const syntax = validateEnvoyYaml(mutate(base, 'codec_type: AUTO', 'codec_type: [AUTO'));
    expect(syntax.ok).toBe(false);
    expect(syntax.errors[0]).toMatchObject({ kind: 'yaml' });
    expect(syntax.errors[0]!.pos?.line).toBeGreaterThan(0);
    const dup = validateEnvoyYaml(mutate(base, 'codec_type: AUTO', 'codec_type: HTTP1\n          codec_type: AUTO'));
    expect(dup.warnings).toMatchObject([{ kind: 'duplicate_key', path: `${HCM}.codec_type` }]);
  });
});

describe('validateEnvoyMessage: any message type, so xDS resources use the same check', () => {
  const doc = parseYaml(read(STATIC)) as any;
  const listener = doc.static_resources.listeners[0];
  const cluster = doc.static_resources.clusters[0];

  it('checks a Listener and a Cluster on their own', () => {
    expect(validateEnvoyMessage('envoy.config.listener.v3.Listener', listener).errors).toEqual([]);
    expect(validateEnvoyMessage('envoy.config.cluster.v3.Cluster', cluster).errors).toEqual([]);
  });

  it('resolves resources inside a DiscoveryResponse by @type, with paths into them', () => {
    const good = {
      version_info: '1',
      type_url: 'type.googleapis.com/envoy.config.listener.v3.Listener',
      resources: [{ '@type': 'type.googleapis.com/envoy.config.listener.v3.Listener', ...listener }],
    };
    expect(validateEnvoyMessage('envoy.service.discovery.v3.DiscoveryResponse', good).errors).toEqual([]);
    const bad = structuredClone(good);
    bad.resources[0].filter_chains[0].filters[0].typed_config.http2_protocol_options.max_concurent_streams = 5;
    const r = validateEnvoyMessage('envoy.service.discovery.v3.DiscoveryResponse', bad);
    expect(r.errors.map((p) => p.path)).toEqual(['resources[0].filter_chains[0].filters[0].typed_config.http2_protocol_options.max_concurent_streams']);
  });

  it('Struct / Value take any JSON; a Struct is still an object', () => {
    const withMeta = { ...cluster, metadata: { filter_metadata: { 'h2-ws-gateway': { tier: 'a', weights: [1, 2.5, { x: null }], on: true } } } };
    expect(validateEnvoyMessage('envoy.config.cluster.v3.Cluster', withMeta).errors).toEqual([]);
    const r = validateEnvoyMessage('envoy.config.cluster.v3.Cluster', { ...cluster, metadata: { filter_metadata: { x: [1, 2] } } });
    expect(r.errors).toMatchObject([{ kind: 'wrong_type', path: 'metadata.filter_metadata.x' }]);
  });

  it('maps: keys and values are checked (map<string, Any> by @type)', () => {
    const bad = structuredClone(cluster);
    bad.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].explicit_http_config.http_protocol_options = { bogus: 1 };
    const r = validateEnvoyMessage('envoy.config.cluster.v3.Cluster', bad);
    expect(r.errors.map((p) => p.path)).toEqual([
      'typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].explicit_http_config.http_protocol_options.bogus',
    ]);
  });

  it('TypedStruct: the value is checked as its type_url', () => {
    const hcm = structuredClone(hcmOf(doc));
    hcm.http_filters[1].typed_config = {
      '@type': 'type.googleapis.com/xds.type.v3.TypedStruct',
      type_url: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
      value: { suppress_envoy_headers: true, bogus: 1 },
    };
    const r = validateEnvoyMessage('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', hcm);
    expect(r.errors.map((p) => `${p.path} ${p.kind}`)).toEqual(['http_filters[1].typed_config.value.bogus unknown_field']);
    expect(r.typesChecked).toEqual([
      'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      // the route's retry_host_predicate
      'envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate',
      // the admin-cookie filter before the router
      'envoy.extensions.filters.http.lua.v3.Lua',
      'xds.type.v3.TypedStruct',
      'envoy.extensions.filters.http.router.v3.Router',
    ]);
  });

  it('a resource given in Any form must name the expected type', () => {
    const asAny = { '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', ...cluster };
    expect(validateEnvoyMessage('envoy.config.cluster.v3.Cluster', asAny).errors).toEqual([]);
    expect(validateEnvoyMessage('envoy.config.listener.v3.Listener', asAny).errors).toMatchObject([{ path: '@type', kind: 'unknown_type' }]);
  });

  it('assertValidEnvoyMessage throws a GatewayError with code GW_ERR_ENVOY_CONFIG listing every problem', () => {
    expect(() => assertValidEnvoyMessage('envoy.config.cluster.v3.Cluster', cluster)).not.toThrow();
    let caught: unknown;
    try {
      assertValidEnvoyMessage('envoy.config.cluster.v3.Cluster', { ...cluster, lb_policy: 'NOPE', connect_timeout: 5 });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(EnvoyConfigError);
    expect(caught).toBeInstanceOf(GatewayError);
    expect((caught as EnvoyConfigError).code).toBe('GW_ERR_ENVOY_CONFIG');
    expect((caught as EnvoyConfigError).problems).toHaveLength(2);
    expect(() => envoyMessageType('envoy.config.nope.v3.Nope')).toThrow(EnvoyConfigError);
  });
});

describe('envoy --mode validate (the real Envoy, when installed)', () => {
  const skip = envoySkipReason('envoy-config.test: envoy --mode validate');

  it('reports "skipped: no envoy binary on PATH" when there is none', async () => {
    const r = await validateWithEnvoyBinary(path.join(repo, STATIC), { env: { PATH: '', ENVOY_BIN: '/nonexistent/envoy' } });
    expect(r).toEqual({ status: 'skipped', detail: 'skipped: no envoy binary on PATH' });
  });

  it.skipIf(skip !== undefined)('accepts every file under envoy/ (the TLS variant with a generated certificate at the paths it names)', async () => {
    const { cert, key } = selfSignedCert();
    const dir = tmpDir('envoy-validate-');
    for (const f of envoyConfigFiles(envoyDir)) {
      // Envoy's validate mode loads the certificate files, so the TLS file is checked as deployed:
      // the same text with the mount paths pointing at a real pair.
      const text = read(path.relative(repo, f)).replaceAll('/etc/h2-ws-gateway/tls/cert.pem', cert).replaceAll('/etc/h2-ws-gateway/tls/key.pem', key);
      const file = path.join(dir, path.basename(f));
      fs.writeFileSync(file, text);
      const r = await validateWithEnvoyBinary(file);
      expect(r.status, `${f}: ${r.detail}`).toBe('ok');
    }
  });

  it.skipIf(skip !== undefined)('rejects a misspelt field', async () => {
    const tmp = path.join(tmpDir('envoy-check-'), 'bad.yaml');
    fs.writeFileSync(tmp, mutate(read(STATIC), 'allow_connect: true', 'allow_conect: true'));
    expect((await validateWithEnvoyBinary(tmp)).status).toBe('failed');
  });
});

describe('npm run envoy:check (gateway/envoy/check-cli.ts)', () => {
  const cli = (args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', path.join(repo, 'gateway/envoy/check-cli.ts'), ...args], {
      cwd: repo,
      encoding: 'utf8',
      env: { ...process.env, LOG_LEVEL: 'warn' },
      timeout: 60_000,
    });

  it('passes every file under envoy/ with one ok line per file', () => {
    const r = cli(['--no-binary']);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    for (const f of [STATIC, STATIC_H2, ADS]) expect(r.stdout).toMatch(new RegExp(`^ok +${f.replace(/\./g, '\\.')} \\(envoy\\.config\\.bootstrap\\.v3\\.Bootstrap;`, 'm'));
  });

  it('exits 1 and prints the YAML path for a broken file', () => {
    const dir = tmpDir('envoy-check-');
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, mutate(read(STATIC), 'codec_type: AUTO', 'codec_type: AUTOMATIC'));
    const r = cli([path.join(repo, STATIC), bad]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^ok +envoy\/envoy-static\.yaml/m);
    expect(r.stdout).toMatch(/^FAIL .*bad\.yaml: 1 problem\(s\)$/m);
    expect(r.stdout).toContain(`${HCM}.codec_type: bad enum value "AUTOMATIC"`);
    if (!envoyBin) expect(r.stdout).toContain('envoy --mode validate: skipped: no envoy binary on PATH');
  });
});

describe('docker-compose.yml', () => {
  const text = read('docker-compose.yml');
  const compose = parseYaml(text, { merge: true }) as any;
  const services = compose.services as Record<string, any>;
  const dockerfile = read('Dockerfile');
  const stages = [...dockerfile.matchAll(/^FROM\s+\S+\s+AS\s+(\S+)$/gim)].map((m) => m[1]);
  const argOf = (command: string[], flag: string) => (command.includes(flag) ? command[command.indexOf(flag) + 1] : undefined);

  it('has envoy, the gateway, three backends, redis, and a bench that only runs with --profile bench', () => {
    expect(Object.keys(services).sort()).toEqual(['backend-1', 'backend-2', 'backend-3', 'bench', 'envoy', 'gateway', 'redis']);
    for (const [name, svc] of Object.entries(services)) expect(svc.profiles, name).toEqual(name === 'bench' ? ['bench'] : undefined);
  });

  it('builds from the root Dockerfile (targets that exist) and pins every image it pulls', () => {
    for (const [name, svc] of Object.entries(services)) {
      if (svc.build) {
        expect(svc.build.context, name).toBe('.');
        expect(stages, `${name}: target ${svc.build.target}`).toContain(svc.build.target);
      } else {
        expect(svc.image, name).toMatch(/^[a-z0-9/-]+:\d+(\.\d+)*(-[a-z]+)?$/); // e.g. redis:7.2-bookworm, not :latest
      }
    }
    expect(services.envoy.build.target).toBe('envoy');
    for (const name of ['gateway', 'backend-1', 'backend-2', 'backend-3', 'bench']) expect(services[name].build.target, name).toBe('app');
  });

  it('publishes only the front, Envoy admin and the gateway admin, on 127.0.0.1, from the pod owner (envoy); everything else joins its network namespace', () => {
    expect([...services.envoy.ports].sort()).toEqual(
      [cfg.frontPort, cfg.envoyAdminPort, cfg.adminPort].map((p) => `127.0.0.1:${p}:${p}`).sort(),
    );
    for (const [name, svc] of Object.entries(services)) {
      if (name === 'envoy') continue;
      expect(svc.network_mode, name).toBe('service:envoy');
      expect(svc.ports, name).toBeUndefined();
    }
  });

  it('runs Envoy from envoy/ mounted read-only, envoy.yaml (xDS) by default, every ENVOY_CONFIG choice a file that exists, with the restart control API on', () => {
    const envoy = services.envoy;
    const mount = (envoy.volumes as string[]).find((v) => v.startsWith('./envoy:'))!;
    const [host, inContainer, mode] = mount.split(':');
    expect(fs.statSync(path.join(repo, host!)).isDirectory()).toBe(true);
    expect(mode).toBe('ro');
    const configArg = argOf(envoy.command, '--config')!;
    expect(configArg.startsWith(`${inContainer}/`)).toBe(true);
    const defaultFile = configArg.slice(inContainer!.length + 1).replace(/^\$\{ENVOY_CONFIG:-(.+)\}$/, '$1');
    expect(defaultFile).toBe('envoy.yaml');
    for (const choice of [defaultFile, ...[...text.matchAll(/ENVOY_CONFIG=(\S+)/g)].map((m) => m[1]!)]) {
      expect(fs.existsSync(path.join(envoyDir, choice)), choice).toBe(true);
    }
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "--import", "tsx", "gateway\/envoy\/restarter-main.ts"\]$/m);
    expect(argOf(envoy.command, '--admin-url')).toBe(`http://127.0.0.1:${cfg.envoyAdminPort}`);
    // The gateway's POST /hot-restart reaches the restarter here.
    expect(argOf(services.gateway.command, '--envoy-restarter-url')).toBe(`http://127.0.0.1:${argOf(envoy.command, '--control-port')}`);
  });

  it('the --config-yaml override is a valid Bootstrap fragment that only opens admin inside the container', () => {
    const envoy = services.envoy;
    const override = argOf(envoy.command, '--config-yaml')!;
    const r = validateEnvoyYaml(override);
    expect(show(r)).toBe('');
    expect(parseYaml(override)).toEqual({ admin: { address: { socket_address: { address: '0.0.0.0', port_value: cfg.envoyAdminPort } } } });
  });

  it('every command names an entry file that exists and only flags that file accepts', () => {
    const entries: Record<string, string> = {};
    for (const [name, svc] of Object.entries(services)) {
      if (!Array.isArray(svc.command) || svc.command[0] !== 'node') continue;
      expect(svc.command.slice(0, 3), name).toEqual(['node', '--import', 'tsx']);
      entries[name] = svc.command[3];
      expect(fs.existsSync(path.join(repo, svc.command[3])), `${name}: ${svc.command[3]}`).toBe(true);
    }
    expect(entries).toMatchObject({ gateway: 'gateway/main.ts', bench: 'bench/main.ts', 'backend-1': 'backend/main.ts' });
    // The gateway's flags are its config fields (--insecure among them): a typo would stop it at start-up.
    const gatewayFlags = services.gateway.command.slice(4) as string[];
    const { config } = loadConfig(gatewaySchema, gatewayFlags, {});
    expect(config).toMatchObject({ front: 'envoy', manageBackends: false, host: '0.0.0.0', frontTlsPort: 0, redisUrl: 'redis://127.0.0.1:6379', insecure: true });
    // The bench's flags are its own options and config fields: the external front is --front-url.
    const bench = parseCommandLine(BENCH, services.bench.command.slice(4) as string[], {});
    expect(bench).toMatchObject({ options: { quick: true, routes: 'direct', frontUrl: 'http://127.0.0.1:8080' }, config: { redisUrl: 'redis://127.0.0.1:6379' } });
  });

  it('backends b1..b3 listen on the ports the Envoy configs route to, share Redis, and each health check is its own', () => {
    const endpoints = yamlJs(STATIC).static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints.map((l: any) => l.endpoint.address.socket_address);
    cfg.backendPorts.forEach((port, i) => {
      const svc = services[`backend-${i + 1}`];
      const { config } = loadConfig(backendSchema, svc.command.slice(4), {});
      expect(config).toMatchObject({ id: `b${i + 1}`, port, host: '0.0.0.0', redisUrl: 'redis://127.0.0.1:6379' });
      expect(svc.environment.HEALTHCHECK_URL).toBe(`http://127.0.0.1:${port}/healthz`);
      expect(svc.depends_on.redis.condition).toBe('service_healthy');
      expect(endpoints[i]).toEqual({ address: '127.0.0.1', port_value: port });
    });
    // The gateway registers the same ports (its defaults) and health-checks them.
    expect(argOf(services.gateway.command, '--backend-ports')).toBeUndefined();
    expect(services.redis.command).toContain('6379');
  });

  const dockerCompose = spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0;
  if (!dockerCompose) console.warn('[envoy-config.test] docker-compose config: skipped: no docker-compose on PATH (apt-get install docker-compose)');

  it.skipIf(!dockerCompose)('`docker-compose config` accepts it and rejects an unknown key', () => {
    const ok = spawnSync('docker-compose', ['--project-directory', repo, '-f', path.join(repo, 'docker-compose.yml'), 'config', '-q'], { encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    const bad = path.join(tmpDir('compose-'), 'docker-compose.yml');
    fs.writeFileSync(bad, mutate(text, '    stop_grace_period: 40s      # longer', '    restart_polcy: always\n    stop_grace_period: 40s      # longer'));
    const rejected = spawnSync('docker-compose', ['--project-directory', repo, '-f', bad, 'config', '-q'], { encoding: 'utf8' });
    expect(rejected.status).not.toBe(0);
    expect(rejected.stderr).toMatch(/restart_polcy/);
  });
});

describe('the YAML reader follows Envoy (yaml-cpp → google.protobuf.Value)', () => {
  it('types plain scalars like yaml-cpp, keeps quoted ones strings, drops !ignore keys', () => {
    const node = parseEnvoyYaml('a: 010\nb: 0x1F\nc: "5"\nd: on\ne: 1.5\nf: ~\ng: 9999999999\n!ignore h: 1\n').node!;
    expect(toJson(node)).toEqual({ a: 8, b: 31, c: '5', d: true, e: '1.5', f: null, g: '9999999999' });
  });
});
