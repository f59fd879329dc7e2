// `npm run hot-restart [-- --status]`: ask the running gateway for a hot restart of the front
// (POST /hot-restart), or show the live generations (GET /hot-restart).
import { parseArgs } from 'node:util';
import { readAdminToken } from '../gateway/harness.js';
import { gatewaySchema, loadConfig } from '../lib/config.js';

const { values } = parseArgs({ options: { admin: { type: 'string' }, status: { type: 'boolean' } } });
const { config } = loadConfig(gatewaySchema, [], process.env);
const admin = values.admin ?? `http://${config.host}:${config.adminPort}`;
const token = readAdminToken(config.stateDir, config.adminToken);
const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};

let res: Response;
try {
  res = await fetch(`${admin}/hot-restart`, { method: values.status ? 'GET' : 'POST', headers: auth });
} catch (err) {
  process.stderr.write(`cannot reach the gateway admin API at ${admin} (${(err as Error).message}); is \`npm start\` running?\n`);
  process.exit(1);
}
const body = (await res.json()) as any;
if (!res.ok) {
  process.stderr.write(`hot restart refused (${res.status}): ${body.error?.message}\n`);
  process.exit(1);
}
if (values.status) {
  process.stdout.write(`engine ${body.engine}\n`);
  for (const g of body.generations) {
    process.stdout.write(`  generation ${g.generation}  pid ${g.pid}  ${g.current ? 'current ' : 'draining'}  sessions ${g.sessions ?? '?'}  connections ${g.connections ?? '?'}\n`);
  }
} else {
  process.stdout.write(
    `hot restart done in ${body.durationMs} ms: ${body.engine} generation ${body.generation}, new pid(s) ${body.newPids.join(', ')}, ` +
      `old pid(s) ${body.oldPids.join(', ')} keep their sessions until they close (see: npm run hot-restart -- --status)\n`,
  );
}
