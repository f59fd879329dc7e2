import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { HttpError } from '../admin/http-server.js';

// Which addresses the admin API may register as backends. Registering an endpoint sends client
// sessions to it, so by default only loopback is allowed (configurable CIDRs), names are resolved
// first (every address they resolve to must be allowed), and the gateway's own listeners (admin API,
// xDS, the front, Redis, ...) are refused outright: they would pass a health check or take sessions.

export interface EndpointPolicyOptions {
  /** Allowed ranges, e.g. ["127.0.0.0/8", "::1/128"]; "0.0.0.0/0" and "::/0" allow any. */
  cidrs: readonly string[];
  /** The gateway's own listeners on this machine, by port, with what each is. */
  reservedPorts: ReadonlyArray<{ port: number; what: string }>;
  /** Name resolution (replaceable in tests); default dns.lookup, every address. */
  resolve?: (host: string) => Promise<string[]>;
}

export type EndpointPolicy = (host: string, port: number) => Promise<void>;

function parseCidr(cidr: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const [address = '', bits] = cidr.split('/');
  const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : undefined;
  const prefix = Number(bits ?? (family === 'ipv4' ? 32 : 128));
  if (!family || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 'ipv4' ? 32 : 128)) {
    throw new Error(`"${cidr}" is not an IPv4 or IPv6 CIDR (e.g. 10.0.0.0/8)`);
  }
  return { address, prefix, family };
}

export function createEndpointPolicy(options: EndpointPolicyOptions): EndpointPolicy {
  const allowed = new net.BlockList();
  for (const c of options.cidrs) {
    const { address, prefix, family } = parseCidr(c);
    allowed.addSubnet(address, prefix, family);
  }
  const resolve = options.resolve ?? (async (host: string) => (await lookup(host, { all: true })).map((a) => a.address));
  const isLoopback = (a: string) => a.startsWith('127.') || a === '::1' || a === '::ffff:127.0.0.1';
  return async (given, port) => {
    const host = given.replace(/^\[(.*)\]$/, '$1');
    let addresses: string[];
    try {
      addresses = net.isIP(host) ? [host] : await resolve(host);
    } catch (err) {
      throw new HttpError(400, 'GW_ERR_ENDPOINT_REFUSED', `invalid field "address": ${host} does not resolve (${(err as Error).message})`);
    }
    for (const a of addresses) {
      const family = net.isIPv4(a) ? 'ipv4' : 'ipv6';
      if (!allowed.check(a, family)) {
        throw new HttpError(403, 'GW_ERR_ENDPOINT_REFUSED', `invalid field "address": ${host}${a === host ? '' : ` (${a})`} is outside the allowed ranges ${options.cidrs.join(', ')} (config endpointCidrs)`);
      }
      const own = isLoopback(a) ? options.reservedPorts.find((r) => r.port === port) : undefined;
      if (own) throw new HttpError(403, 'GW_ERR_ENDPOINT_REFUSED', `invalid field "address": ${host}:${port} is the gateway's own ${own.what}, not a backend`);
    }
  };
}
