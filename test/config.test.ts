import { describe, expect, it } from 'vitest';
import { backendSchema, gatewaySchema, loadConfig } from '../lib/config.js';
import { ConfigError } from '../lib/errors.js';

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
  it('rejects unknown flags instead of ignoring a typo', () => {
    expect(() => loadConfig(gatewaySchema, ['--frontport', '1'], {})).toThrow(/argv/);
  });
});
