// `npm run endpoints -- list | add <host:port> [--id ID] [--weight N] | drain <id> [--deadline-ms N]
//                      | remove <id> | weight <id> <n> | activate <id>`
// A thin CLI over the gateway admin API. It finds the running stack the way every helper does
// (gateway/core/stack-file.ts): --admin URL, else --admin-port/--host, else <stateDir>/stack.json.
import { z } from 'zod';
import { findAdmin } from '../gateway/harness.js';
import { commandLine, exitOnMistake, defineCommand } from '../lib/cli.js';
import { findStackSchema } from '../lib/config.js';
import { UsageError } from '../lib/errors.js';

const ENDPOINTS = defineCommand({
  name: 'npm run endpoints',
  synopsis: '<command> [arguments] [options]',
  about: 'Show and change the running stack\'s endpoints through its admin API.',
  config: findStackSchema,
  options: z.object({
    admin: z.url().optional().describe('admin API URL; default: from --admin-port/--host, else <stateDir>/stack.json'),
    id: z.string().optional().describe('add: the endpoint id (default: the next bN)'),
    weight: z.coerce.number().int().min(1).max(256).optional().describe('add: share of new streams, 1..256 (default 1)'),
    deadlineMs: z.coerce.number().int().positive().optional().describe("drain: how long its sessions get before 1001 (default: the gateway's --drain-deadline-ms)"),
  }),
  positionals: true,
  epilog: [
    'commands:',
    '  list                 endpoints with state, weight, health and sessions',
    '  add <host:port>      register a backend (it starts taking new streams)',
    '  drain <id>           no new streams; what is left gets 1001 at the deadline',
    '  remove <id>          drain, then remove',
    '  weight <id> <n>      set the share of new streams (1..256)',
    '  activate <id>        cancel a drain / put an endpoint back in rotation',
  ].join('\n'),
});

const { config, options: values, positionals, given } = commandLine(ENDPOINTS);
const [command, ...args] = positionals;
if (!command) exitOnMistake(ENDPOINTS, new UsageError('which command? list, add, drain, remove, weight or activate'));
const target = findAdmin(config, given, values.admin);
const admin = target.url;
const auth: Record<string, string> = target.token ? { authorization: `Bearer ${target.token}` } : {};

async function call(method: string, path: string, body?: unknown): Promise<any> {
  let res: Response;
  try {
    res = await fetch(`${admin}${path}`, {
      method,
      headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    process.stderr.write(`cannot reach the gateway admin API at ${admin} (found from ${target.from}; ${(err as Error).cause ?? (err as Error).message}); is \`npm start\` running?\n`);
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
  return value || exitOnMistake(ENDPOINTS, new UsageError(`${command} needs ${what}`));
}

switch (command) {
  case 'list': {
    const { version, endpoints } = await call('GET', '/endpoints');
    const rows = [['ID', 'ADDRESS', 'STATE', 'WEIGHT', 'HEALTH', 'BUS', 'SESSIONS', 'DRAIN DEADLINE']];
    for (const e of endpoints) {
      rows.push([
        e.id,
        e.address,
        e.state,
        String(e.weight),
        e.health ? (e.health.ok ? 'ok' : `fail: ${e.health.error}`) : '-',
        // The room bus the backend reports: redis ok/degraded, or local (its rooms are its own).
        e.health?.busKind ? `${e.health.busKind}${e.health.bus && e.health.bus !== 'ok' ? ` ${e.health.bus}` : ''}` : '-',
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
    if (values.weight !== undefined) body.weight = values.weight;
    const e = await call('POST', '/endpoints', body);
    process.stdout.write(`added ${e.id} at ${e.host}:${e.port} (weight ${e.weight})\n`);
    break;
  }
  case 'drain': {
    const id = need(args[0], '<id>');
    const body = values.deadlineMs !== undefined ? { deadlineMs: values.deadlineMs } : {};
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
    exitOnMistake(ENDPOINTS, new UsageError(`unknown command "${command}": list, add, drain, remove, weight or activate`));
}
