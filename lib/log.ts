import pino, { type Logger } from 'pino';

// One root logger per process; components get children so every line carries `component`.
// Human-readable output on a terminal, JSON lines otherwise (CI, pipes, log shippers).
// LOG_FORMAT=json|pretty forces either; LOG_LEVEL sets the level; LOG_FILE sends the JSON lines to
// that file instead (appended), for commands whose terminal belongs to their result (npm run demo).

function createRoot(): Logger {
  const level = process.env.LOG_LEVEL ?? 'info';
  if (process.env.LOG_FILE) return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: process.env.LOG_FILE, mkdir: true, sync: true }));
  const format = process.env.LOG_FORMAT ?? (process.stdout.isTTY ? 'pretty' : 'json');
  if (format === 'pretty') {
    return pino({
      level,
      transport: {
        target: 'pino-pretty',
        options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' },
      },
    });
  }
  return pino({ level, base: { pid: process.pid } });
}

let root: Logger | undefined;

export function logger(component: string, bindings: Record<string, unknown> = {}): Logger {
  root ??= createRoot();
  return root.child({ component, ...bindings });
}
