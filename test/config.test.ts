import { describe, expect, it } from 'vitest';
import { withConfiguredPorts } from '../gateway/admin/configured-ports.js';
import { renderHaproxyConfig, serverOptions } from '../gateway/haproxy/front.js';
import { backendSchema, defaults, gatewaySchema, loadConfig, nearestFlag, upstreamProtocolFor } from '../lib/config.js';
import { ConfigError, UsageError } from '../lib/errors.js';

describe('config', () => {
  it('has the documented defaults', () => {
    const { config } = loadConfig(gatewaySchema, [], {});
    expect(config).toMatchObject({ frontPort: 8080, adminPort: 9000, xdsPort: 18000, backendPorts: [9101, 9102, 9103], h2MaxConcurrentStreams: 20000 });
  });
  it('takes flags over env over defaults', () => {
    const { config } = loadConfig(gatewaySchema, ['--front-port', '8181'], { FRONT_PORT: '8282', ADMIN_PORT: '9999' });
    expect(config.frontPort).toBe(8181);
    expect(config.adminPort).toBe(9999);
  });
  it('parses port lists', () => {
    expect(loadConfig(gatewaySchema, [], { BACKEND_PORTS: '1,2, 3' }).config.backendPorts).toEqual([1, 2, 3]);
  });
  it('names the bad field and where it came from', () => {
    expect(() => loadConfig(gatewaySchema, ['--front-port', 'eighty'], {})).toThrow(/"frontPort".*--front-port="eighty"/);
    expect(() => loadConfig(gatewaySchema, [], { BACKEND_PORTS: '1,70000' })).toThrow(/backendPorts\.1.*env BACKEND_PORTS/);
    expect(() => loadConfig(backendSchema, ['--id', 'has space'], {})).toThrow(ConfigError);
    expect(() => loadConfig(backendSchema, [], {})).toThrow(/"id"/);
  });
  it('reads true/false switches as words, not as "any non-empty string is true"', () => {
    expect(loadConfig(gatewaySchema, ['--manage-backends', 'false'], {}).config.manageBackends).toBe(false);
    expect(loadConfig(gatewaySchema, [], { MANAGE_BACKENDS: 'no' }).config.manageBackends).toBe(false);
    expect(loadConfig(gatewaySchema, [], {}).config.manageBackends).toBe(true);
    expect(() => loadConfig(gatewaySchema, ['--manage-backends', 'nope'], {})).toThrow(/"manageBackends": must be true or false.*--manage-backends="nope"/);
    expect(() => loadConfig(gatewaySchema, [], { ENVOY_RESTARTER_URL: 'not a url' })).toThrow(/"envoyRestarterUrl".*env ENVOY_RESTARTER_URL/);
  });
  it('takes a true/false field bare, as a switch, and still as a word', () => {
    expect(loadConfig(gatewaySchema, ['--insecure'], {}).config.insecure).toBe(true);
    expect(loadConfig(gatewaySchema, ['--insecure', '--front', 'haproxy'], {}).config).toMatchObject({ insecure: true, front: 'haproxy' });
    expect(loadConfig(gatewaySchema, ['--insecure', 'false'], {}).config.insecure).toBe(false);
    expect(loadConfig(gatewaySchema, [], { INSECURE: '1' }).config.insecure).toBe(true);
  });
  it('rejects unknown flags instead of ignoring a typo, naming the flag and the nearest real one', () => {
    expect(() => loadConfig(gatewaySchema, ['--frontport', '1'], {})).toThrow(UsageError);
    expect(() => loadConfig(gatewaySchema, ['--frontport', '1'], {})).toThrow('unknown flag --frontport; did you mean --front-port?');
    expect(() => loadConfig(gatewaySchema, ['--admin-prot', '1'], {})).toThrow('did you mean --admin-port?');
    expect(() => loadConfig(gatewaySchema, ['--zzzzzz'], {})).toThrow(/^unknown flag --zzzzzz$/);
    expect(() => loadConfig(gatewaySchema, ['--front-port'], {})).toThrow('--front-port needs a value');
    expect(nearestFlag('--upstream-protcol', ['upstream-protocol', 'front'])).toBe('upstream-protocol');
  });
  it('freezes what defaults() returns, as loadConfig() does', () => {
    const config = defaults(gatewaySchema);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(loadConfig(gatewaySchema, [], {}).config)).toBe(true);
    expect(() => ((config as { frontPort: number }).frontPort = 1)).toThrow(TypeError);
  });
  it('describes every field (its line in --help)', () => {
    for (const schema of [gatewaySchema, backendSchema]) {
      for (const [key, field] of Object.entries(schema.shape)) expect(field.description, key).toMatch(/\S/);
    }
  });
});

describe('upstream protocol', () => {
  it('auto is HTTP/2 behind Envoy and HTTP/1.1 behind HAProxy; an explicit choice wins', () => {
    expect(defaults(gatewaySchema).upstreamProtocol).toBe('auto');
    expect(upstreamProtocolFor(defaults(gatewaySchema))).toBe('h2');
    expect(upstreamProtocolFor(defaults(gatewaySchema, { front: 'haproxy' }))).toBe('h1');
    expect(upstreamProtocolFor(defaults(gatewaySchema, { upstreamProtocol: 'h1' }))).toBe('h1');
    expect(upstreamProtocolFor(defaults(gatewaySchema, { front: 'haproxy', upstreamProtocol: 'h2' }))).toBe('h2');
    expect(() => loadConfig(gatewaySchema, ['--upstream-protocol', 'h3'], {})).toThrow(/upstreamProtocol|upstream-protocol/);
  });
});

describe('HAProxy health checks follow the config', () => {
  it('renders inter/fall/rise on every server line and the check timeout', () => {
    const settings = { ...defaults(gatewaySchema, { healthIntervalMs: 1500, healthFall: 3, healthRise: 2, healthTimeoutMs: 700 }), upstreamProtocol: 'h1' as const };
    const cfg = renderHaproxyConfig(settings, [{ id: 'b1', host: '127.0.0.1', port: 9101 }], '/tmp/unused.sock');
    expect(cfg).toMatch(/^ {4}server b1 127\.0\.0\.1:9101 weight 1 check inter 1500 fall 3 rise 2$/m);
    expect(cfg).toMatch(/^ {4}timeout check 700ms$/m);
    expect(cfg).not.toContain('inter 2s');
    // Servers added at run time (runtime API) carry the same options.
    expect(serverOptions(settings, 5)).toBe('weight 5 check inter 1500 fall 3 rise 2');
  });
});

describe('explainers served by a stack on other ports', () => {
  it('show that stack\'s ports and token path in place of the defaults', () => {
    const text = [
      'open http://127.0.0.1:9000/explain; the token is in `.gateway/admin-token`',
      "tshark -i lo -f 'tcp port 8080' -d tcp.port==8080,http",
      "tshark -f 'tcp portrange 9101-9103' -d tcp.port==9101-9103,http",
      'POST /endpoints {"address": "127.0.0.1:9104"}; 8080 is HTTP\'s port; at 12:00',
    ].join('\n');
    const ports = { frontPort: 28080, frontTlsPort: 0, adminPort: 29000, backendPorts: [29101, 29102], stateDir: 'other-state' };
    expect(withConfiguredPorts(text, ports).split('\n')).toEqual([
      'open http://127.0.0.1:29000/explain; the token is in `other-state/admin-token`',
      "tshark -i lo -f 'tcp port 28080' -d tcp.port==28080,http",
      "tshark -f 'tcp portrange 29101-29102' -d tcp.port==29101-29102,http",
      'POST /endpoints {"address": "127.0.0.1:29103"}; 8080 is HTTP\'s port; at 12:00',
    ]);
    expect(withConfiguredPorts(text, defaults(gatewaySchema))).toBe(text);
  });
});
