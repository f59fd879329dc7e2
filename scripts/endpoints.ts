// `npm run endpoints -- list | add <host:port> [--id ID] [--weight N] | drain <id> [--deadline-ms N]
//                      | remove <id> | weight <id> <n> | activate <id>`
// A thin CLI over the gateway admin API (default http://127.0.0.1:9000, or --admin URL / ADMIN_PORT).
import { parseArgs } from 'node:util';
import { readAdminToken } from '../gateway/harness.js';
import { gatewaySchema, loadConfig } from '../lib/config.js';

const USAGE = `usage: npm run endpoints -- <command> [options]
  list                                   show endpoints, state, weight, health, sessions
  add <host:port> [--id ID] [--weight N] register a backend (it starts taking new streams)
  drain <id> [--deadline-ms N]           stop new streams; close what is left with 1001 at the deadline
  remove <id>                            drain, then remove
  weight <id> <n>                        set the share of new streams (1..256)
  activate <id>                          cancel a drain / put an endpoint back in rotation
options: --admin URL (default http://<host>:<adminPort> from config)`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { admin: { type: 'string' }, id: { type: 'string' }, weight: { type: 'string' }, 'deadline-ms': { type: 'string' }, help: { type: 'boolean' } },
});
const [command, ...args] = positionals;
if (values.help || !command) {
  process.stdout.write(USAGE + '\n');
  process.exit(command || values.help ? 0 : 2);
}
const { config } = loadConfig(gatewaySchema, [], process.env);
const admin = values.admin ?? `http://${config.host}:${config.adminPort}`;
const token = readAdminToken(config.stateDir, config.adminToken);
const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};

async function call(method: string, path: string, body?: unknown): Promise<any> {
  let res: Response;
  try {
    res = await fetch(`${admin}${path}`, {
      method,
      headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    process.stderr.write(`cannot reach the gateway admin API at ${admin} (${(err as Error).cause ?? (err as Error).message}); is \`npm start\` running?\n`);
    process.exit(1);
  }
  const json = await res.json();
  if (!res.ok) {
    process.stderr.write(`error ${res.status}: ${json.error?.message ?? JSON.stringify(json)}\n`);
    process.exit(1);
  }
  return json;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
}

function need(value: string | undefined, what: string): string {
  if (!value) {
    process.stderr.write(`missing ${what}\n${USAGE}\n`);
    process.exit(2);
  }
  return value;
}

switch (command) {
  case 'list': {
    const { version, endpoints } = await call('GET', '/endpoints');
    const rows = [['ID', 'ADDRESS', 'STATE', 'WEIGHT', 'HEALTH', 'SESSIONS', 'DRAIN DEADLINE']];
    for (const e of endpoints) {
      rows.push([
        e.id,
        e.address,
        e.state,
        String(e.weight),
        e.health ? (e.health.ok ? 'ok' : `fail: ${e.health.error}`) : '-',
        e.health?.sessions === undefined ? '-' : String(e.health.sessions),
        e.drainDeadline ? `${Math.max(0, Math.round((e.drainDeadline - Date.now()) / 1000))}s${e.removeAfterDrain ? ' then remove' : ''}` : '',
      ]);
    }
    process.stdout.write(`registry version ${version}\n${table(rows)}\n`);
    break;
  }
  case 'add': {
    const body: Record<string, unknown> = { address: need(args[0], '<host:port>') };
    if (values.id) body.id = values.id;
    if (values.weight) body.weight = Number(values.weight);
    const e = await call('POST', '/endpoints', body);
    process.stdout.write(`added ${e.id} at ${e.host}:${e.port} (weight ${e.weight})\n`);
    break;
  }
  case 'drain': {
    const id = need(args[0], '<id>');
    const body = values['deadline-ms'] ? { deadlineMs: Number(values['deadline-ms']) } : {};
    const e = await call('POST', `/endpoints/${id}/drain`, body);
    process.stdout.write(`draining ${id}: no new streams; open sessions get until ${new Date(e.drainDeadline).toISOString()}\n`);
    break;
  }
  case 'remove': {
    const id = need(args[0], '<id>');
    await call('DELETE', `/endpoints/${id}`);
    process.stdout.write(`removing ${id}: draining first, removed once its sessions are gone\n`);
    break;
  }
  case 'weight': {
    const id = need(args[0], '<id>');
    const e = await call('PATCH', `/endpoints/${id}`, { weight: Number(need(args[1], '<n>')) });
    process.stdout.write(`${id} weight ${e.weight}\n`);
    break;
  }
  case 'activate': {
    const id = need(args[0], '<id>');
    await call('PATCH', `/endpoints/${id}`, { state: 'active' });
    process.stdout.write(`${id} active\n`);
    break;
  }
  default:
    process.stderr.write(`unknown command "${command}"\n${USAGE}\n`);
    process.exit(2);
}
