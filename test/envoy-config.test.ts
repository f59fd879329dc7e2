// Envoy configs (envoy/), proven by the real Envoy (`envoy --mode validate`); the partial offline
// check `npm run envoy:check` falls back to without one (gateway/envoy/check/offline.ts); and
// docker-compose.yml. The Envoy steps follow test/helpers/envoy.ts: skipped with a printed reason
// where no Envoy is installed, a failure under REQUIRE_ENVOY=1.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { backendSchema, defaults, gatewaySchema, loadConfig } from '../lib/config.js';
import { parseCommandLine } from '../lib/cli.js';
import { BENCH } from '../bench/cli.js';
import { checkEnvoyYamlOffline, formatOfflineProblem } from '../gateway/envoy/check/offline.js';
import { envoyConfigFiles } from '../gateway/envoy/check/run-envoy.js';
import { envoySkipReason, envoyValidateText } from './helpers/envoy.js';
import { selfSignedCert } from './helpers/tls.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const envoyDir = path.join(repo, 'envoy');
const read = (f: string) => fs.readFileSync(path.join(repo, f), 'utf8');
const cfg = defaults(gatewaySchema);
const envoySkip = envoySkipReason('envoy-config.test: envoy --mode validate');

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

const offline = (text: string) => checkEnvoyYamlOffline(text).problems.map((p) => formatOfflineProblem(p, 'x.yaml'));

/* eslint-disable @typescript-eslint/no-explicit-any */
const yamlJs = (f: string): any => parseYaml(read(f));
const hcmOf = (doc: any): any => doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;

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

  it.skipIf(envoySkip !== undefined).each(files)('%s is accepted by envoy --mode validate (the TLS variant with a generated certificate at the paths it names)', (f) => {
    // Envoy's validate mode loads the certificate files, so the TLS file is checked as deployed:
    // the same text with the mount paths pointing at a real pair.
    const { cert, key } = selfSignedCert();
    const text = read(f).replaceAll('/etc/h2-ws-gateway/tls/cert.pem', cert).replaceAll('/etc/h2-ws-gateway/tls/key.pem', key);
    const r = envoyValidateText(text);
    expect(r.ok, `${f}: ${r.output}`).toBe(true);
  });

  it.each(files)('%s passes the partial offline check', (f) => {
    expect(offline(read(f))).toEqual([]);
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


describe('a broken copy is rejected by envoy --mode validate with Envoy’s own message; the offline check names the line and path where it can', () => {
  const base = read(STATIC);
  // `offline`: what the partial check says (YAML path, message); undefined where it cannot see the
  // mistake (value ranges, references between resources): those need the binary.
  const cases: { name: string; from: string; to: string; envoy: RegExp; offline?: [string, RegExp] }[] = [
    {
      name: 'misspelt field',
      from: 'allow_connect: true',
      to: 'allow_conect: true',
      envoy: /http2_protocol_options: message envoy\.config\.core\.v3\.Http2ProtocolOptions.*no such field: 'allow_conect'/,
      offline: [`${HCM}.http2_protocol_options.allow_conect`, /unknown field "allow_conect" \(not in envoy\.config\.core\.v3\.Http2ProtocolOptions\)/],
    },
    {
      name: 'misspelt enum',
      from: 'codec_type: AUTO',
      to: 'codec_type: AUTOMATIC',
      envoy: /unknown enum value: 'AUTOMATIC'/,
      offline: [`${HCM}.codec_type`, /unknown enum value "AUTOMATIC" .*one of AUTO, HTTP1, HTTP2, HTTP3/],
    },
    {
      name: 'string where a number goes',
      from: 'port_value: 9102',
      to: 'port_value: ninety-one-o-two',
      envoy: /lb_endpoints\[1\]\.endpoint\.address\.socket_address\.port_value: uint32.*invalid number/,
      offline: [`${CLUSTER}.load_assignment.endpoints[0].lb_endpoints[1].endpoint.address.socket_address.port_value`, /expected an integer \(uint32\), got string "ninety-one-o-two"/],
    },
    {
      name: 'number where a string goes',
      from: 'stat_prefix: front',
      to: 'stat_prefix: 8080',
      envoy: /typed_config\.<any>\.stat_prefix: string/,
      offline: [`${HCM}.stat_prefix`, /expected a string, got number 8080 \(quote it\)/],
    },
    {
      name: 'object where a list of strings goes',
      from: 'domains: ["*"]',
      to: 'domains: { all: "*" }',
      envoy: /virtual_hosts\[0\]\.domains: string/,
      offline: [`${HCM}.route_config.virtual_hosts[0].domains`, /expected a string, got an object/],
    },
    {
      name: 'Duration as a bare number',
      from: 'timeout: 0s',
      to: 'timeout: 0',
      envoy: /routes\[0\]\.route\.timeout: message google\.protobuf\.Duration/,
      offline: [`${HCM}.route_config.virtual_hosts[0].routes[0].route.timeout`, /expected a duration string/],
    },
    {
      name: 'unknown @type',
      from: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
      to: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Routr',
      envoy: /could not find @type 'type\.googleapis\.com\/envoy\.extensions\.filters\.http\.router\.v3\.Routr'/,
      offline: [`${HCM}.http_filters[1].typed_config.@type`, /unknown @type .*no such message in Envoy's v3 API/],
    },
    {
      name: 'YAML syntax error',
      from: 'codec_type: AUTO',
      to: 'codec_type: [AUTO',
      envoy: /yaml-cpp: error at line \d+/,
      offline: ['', /^YAML: /],
    },
    {
      name: 'route names a cluster that does not exist',
      from: '                  cluster: backends\n',
      to: '                  cluster: backend\n',
      envoy: /route: unknown cluster 'backend'/,
    },
    {
      name: 'value out of range (a protoc-gen-validate rule)',
      from: 'max_concurrent_streams: 20000',
      to: 'max_concurrent_streams: 0',
      envoy: /Http2ProtocolOptionsValidationError\.MaxConcurrentStreams: value must be inside range \[1, 2147483647\]/,
    },
    {
      name: 'required field missing (a protoc-gen-validate rule)',
      from: '      unhealthy_threshold: 2\n',
      to: '',
      envoy: /HealthCheckValidationError\.UnhealthyThreshold: value is required/,
    },
  ];

  it.skipIf(envoySkip !== undefined).each(cases)('Envoy rejects: $name', ({ from, to, envoy }) => {
    const r = envoyValidateText(mutate(base, from, to));
    expect(r.ok).toBe(false);
    // protobuf pads its status text with random runs of spaces.
    expect(r.output.replace(/ +/g, ' ')).toMatch(envoy);
  });

  it.each(cases)('offline check: $name', ({ from, to, offline: expected }) => {
    const { problems } = checkEnvoyYamlOffline(mutate(base, from, to));
    if (!expected) {
      expect(problems, 'the offline check does not see this one: only Envoy does').toEqual([]);
      return;
    }
    const [where, message] = expected;
    const hit = problems.find((p) => p.path === where && message.test(p.message));
    expect(hit, `no ${message} at "${where}"; got:\n${problems.map((p) => formatOfflineProblem(p, 'x.yaml')).join('\n')}`).toBeDefined();
    expect(hit!.line).toBeGreaterThan(0);
    expect(formatOfflineProblem(hit!, 'x.yaml')).toMatch(/^x\.yaml:\d+:\d+: /);
  });

  it('the offline check reports every problem, not only the first', () => {
    let text = base;
    text = mutate(text, 'allow_connect: true', 'allow_conect: true');
    text = mutate(text, 'codec_type: AUTO', 'codec_type: AUTOMATIC');
    text = mutate(text, 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router', 'type.googleapis.com/nope.Router');
    text = mutate(text, 'port_value: 9101', 'port_value: "x"');
    expect(checkEnvoyYamlOffline(text).problems).toHaveLength(4);
  });

  // What Envoy accepts the offline check must accept too: it is partial, never stricter.
  const accepted: [string, (text: string) => string][] = [
    ['camelCase json name', (t) => mutate(t, 'allow_connect: true', 'allowConnect: true')],
    ['lowercase enum', (t) => mutate(t, 'codec_type: AUTO', 'codec_type: auto')],
    ['YAML 1.1 boolean', (t) => mutate(t, 'allow_connect: true', 'allow_connect: yes')],
    ['quoted number', (t) => mutate(t, 'max_concurrent_streams: 20000', 'max_concurrent_streams: "20000"')],
    ['wrapper in its object form', (t) => mutate(t, 'max_concurrent_streams: 20000', 'max_concurrent_streams: { value: 20000 }')],
    ['a single value where a list goes', (t) => mutate(t, 'domains: ["*"]', 'domains: "*"')],
    [
      'a route to a cluster from CDS once validate_clusters is false',
      (t) => mutate(mutate(t, '                  cluster: backends\n', '                  cluster: from-cds\n'), '            name: front\n', '            name: front\n            validate_clusters: false\n'),
    ],
  ];
  it.each(accepted)('both accept: %s', (_name, edit) => {
    const text = edit(base);
    expect(offline(text)).toEqual([]);
    if (envoySkip === undefined) {
      const r = envoyValidateText(text);
      expect(r.ok, r.output).toBe(true);
    }
  });
});

describe('npm run envoy:check (gateway/envoy/check/cli.ts)', () => {
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, ['--import', 'tsx', path.join(repo, 'gateway/envoy/check/cli.ts'), ...args], {
      cwd: repo,
      encoding: 'utf8',
      env: { ...process.env, LOG_LEVEL: 'warn', ...env },
      timeout: 60_000,
    });
  const broken = () => {
    const bad = path.join(tmpDir('envoy-check-'), 'bad.yaml');
    fs.writeFileSync(bad, mutate(read(STATIC), 'codec_type: AUTO', 'codec_type: AUTOMATIC'));
    return bad;
  };

  it.skipIf(envoySkip !== undefined)('with Envoy: every file under envoy/ passes envoy --mode validate, one ok line per file', () => {
    const r = cli([]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^envoy --mode validate \(.+\):$/m);
    for (const f of envoyConfigFiles(envoyDir)) expect(r.stdout).toMatch(new RegExp(`^ok +${path.relative(repo, f).replace(/\./g, '\\.')}`, 'm'));
    expect(r.stdout).not.toContain('partial');
  });

  it.skipIf(envoySkip !== undefined)('with Envoy: exits 1 and prints Envoy’s error for a broken file', () => {
    const bad = broken();
    const r = cli([path.join(repo, STATIC), bad]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^ok +envoy\/envoy-static\.yaml$/m);
    expect(r.stdout).toMatch(/^FAIL .*bad\.yaml$/m);
    expect(r.stdout).toMatch(/^ {2}critical: error initializing configuration '.*bad\.yaml': .*unknown enum value: 'AUTOMATIC'/m);
  });

  it('without Envoy: says the check is partial and how to get the binary; exits 1 with line and path for a broken file', () => {
    const noEnvoy = { ENVOY_BIN: '/nonexistent/envoy' }; // a set ENVOY_BIN that is not a binary hides every other
    const good = cli([], noEnvoy);
    expect(good.status, good.stdout + good.stderr).toBe(0);
    expect(good.stdout).toMatch(/^No Envoy binary found: only a partial offline check runs\. For the real one \(envoy --mode validate\), run scripts\/install-deps/m);
    for (const f of [STATIC, STATIC_H2, ADS]) expect(good.stdout).toMatch(new RegExp(`^ok +${f.replace(/\./g, '\\.')} \\(partial check\\)$`, 'm'));
    const r = cli([path.join(repo, STATIC), broken()], noEnvoy);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^FAIL .*bad\.yaml: 1 problem\(s\)$/m);
    expect(r.stdout).toMatch(new RegExp(`bad\\.yaml:\\d+:\\d+: ${HCM.replace(/[.[\]]/g, '\\$&')}\\.codec_type: unknown enum value "AUTOMATIC"`));
  });

  it('--offline runs the partial check even where Envoy is installed', () => {
    const r = cli(['--offline', path.join(repo, STATIC)]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Partial offline check \(--offline\): not `envoy --mode validate`\.$/m);
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
    expect(parseYaml(override)).toEqual({ admin: { address: { socket_address: { address: '0.0.0.0', port_value: cfg.envoyAdminPort } } } });
    expect(offline(override)).toEqual([]);
    if (envoySkip === undefined) {
      const r = envoyValidateText(read(ADS), ['--config-yaml', override]);
      expect(r.ok, r.output).toBe(true);
    }
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
