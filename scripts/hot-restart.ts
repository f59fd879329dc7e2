// `npm run hot-restart [-- --status]`: ask the running gateway for a hot restart of the front
// (POST /hot-restart), or show the live generations (GET /hot-restart). Finds the stack as every
// helper does (gateway/core/stack-file.ts): --admin URL, else --admin-port/--host, else stack.json.
import { z } from 'zod';
import { findAdmin } from '../gateway/harness.js';
import { commandLine, defineCommand } from '../lib/cli.js';
import { findStackSchema } from '../lib/config.js';

const HOT_RESTART = defineCommand({
  name: 'npm run hot-restart',
  about: [
    'Hot restart of the running front: a new Envoy epoch, or a HAProxy master-worker reload. Old',
    'generations keep their sessions until those close or --hard-stop-after-s passes.',
  ].join(' '),
  config: findStackSchema,
  options: z.object({
    status: z.boolean().default(false).describe('show the live generations instead of restarting'),
    admin: z.url().optional().describe('admin API URL; default: from --admin-port/--host, else <stateDir>/stack.json'),
  }),
});

const { config, options, given } = commandLine(HOT_RESTART);
const target = findAdmin(config, given, options.admin);
const auth: Record<string, string> = target.token ? { authorization: `Bearer ${target.token}` } : {};

let res: Response;
try {
  res = await fetch(`${target.url}/hot-restart`, { method: options.status ? 'GET' : 'POST', headers: auth });
} catch (err) {
  process.stderr.write(`cannot reach the gateway admin API at ${target.url} (found from ${target.from}; ${(err as Error).cause ?? (err as Error).message}); is \`npm start\` running?\n`);
  process.exit(1);
}
const body = (await res.json()) as any;
if (!res.ok) {
  process.stderr.write(`hot restart refused (${res.status}): ${body.error?.message}\n`);
  process.exit(1);
}
if (options.status) {
  process.stdout.write(`engine ${body.engine}\n`);
  for (const g of body.generations) {
    process.stdout.write(`  generation ${g.generation}  pid ${g.pid}  ${g.current ? 'current ' : 'draining'}  sessions ${g.sessions ?? '?'}  connections ${g.connections ?? '?'}\n`);
  }
} else {
  const more = process.argv.length > 2 ? ', with the same flags' : '';
  process.stdout.write(
    `hot restart done in ${body.durationMs} ms: ${body.engine} generation ${body.generation}, new pid(s) ${body.newPids.join(', ')}, ` +
      `old pid(s) ${body.oldPids.join(', ')} keep their sessions until they close (see: npm run hot-restart -- --status${more})\n`,
  );
}
