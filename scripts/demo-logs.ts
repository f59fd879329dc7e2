// Imported first by scripts/demo.ts, before any module makes its logger: unless --verbose, every
// log line of the demo and of the stack it starts goes to <state dir>/demo.log (lib/log.ts reads
// LOG_FILE), so the terminal shows the progress and the result table. The state dir is read from
// the same flag and variable the config uses (--state-dir, STATE_DIR), before the config is parsed.
import path from 'node:path';

const argv = process.argv.slice(2);
if (!argv.includes('--verbose') && !process.env.LOG_FILE) {
  const flag = argv.findIndex((a) => a === '--state-dir' || a.startsWith('--state-dir='));
  const given = flag < 0 ? undefined : argv[flag]!.includes('=') ? argv[flag]!.split('=')[1] : argv[flag + 1];
  process.env.LOG_FILE = path.resolve(given ?? process.env.STATE_DIR ?? '.gateway', 'demo.log');
}
