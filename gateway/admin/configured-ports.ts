import { defaults, gatewaySchema, type GatewayConfig } from '../../lib/config.js';

// The explainers (docs/explain/*.md) are written for the default ports, so they read right on
// GitHub. Served by a stack on other ports, their addresses, tshark filters and token path are
// rewritten to the ones this stack uses, so every command in them works as printed.

export type PortsInText = Pick<GatewayConfig, 'frontPort' | 'frontTlsPort' | 'adminPort' | 'backendPorts' | 'stateDir'>;

const DEFAULTS = defaults(gatewaySchema);

/** default port → this stack's, for each port that differs. */
function portMap(actual: PortsInText): Map<number, number> {
  const map = new Map<number, number>();
  const pair = (from: number, to: number | undefined) => {
    if (to !== undefined && to !== from) map.set(from, to);
  };
  pair(DEFAULTS.frontPort, actual.frontPort);
  pair(DEFAULTS.frontTlsPort, actual.frontTlsPort);
  pair(DEFAULTS.adminPort, actual.adminPort);
  const [d0, ...dRest] = DEFAULTS.backendPorts;
  const b = actual.backendPorts;
  // First and last map to first and last, so a range (9101-9103) still spans every backend.
  pair(d0!, b[0]);
  dRest.forEach((port, i) => pair(port, i === dRest.length - 1 ? b[b.length - 1] : b[i + 1]));
  // The examples' "another backend" (b4 on 9104): the port after this stack's last one.
  pair(Math.max(...DEFAULTS.backendPorts) + 1, Math.max(...b) + 1);
  return map;
}

/** `text` with the default ports (after `:`, `port `, `port==`, `portrange `) and token path replaced by this stack's. */
export function withConfiguredPorts(text: string, actual: PortsInText): string {
  const map = portMap(actual);
  let out = text;
  if (map.size > 0) {
    out = out.replace(/(:|\bport ?==|\bport |\bportrange )(\d{2,5})(?:-(\d{2,5}))?\b/g, (_m, lead: string, from: string, to: string | undefined) => {
      const swap = (p: string) => String(map.get(Number(p)) ?? p);
      return `${lead}${swap(from)}${to ? `-${swap(to)}` : ''}`;
    });
  }
  if (actual.stateDir !== DEFAULTS.stateDir) out = out.replaceAll(`${DEFAULTS.stateDir}/admin-token`, `${actual.stateDir}/admin-token`);
  return out;
}
