import pino, { type Logger, type LoggerOptions } from 'pino';
import { redactSecrets } from './redact.js';

// One root logger per process; components get children so every line carries `component`.
// Human-readable output on a terminal, JSON lines otherwise (CI, pipes, log shippers).
// LOG_FORMAT=json|pretty forces either; LOG_LEVEL sets the level; LOG_FILE sends the JSON lines to
// that file instead (appended), for commands whose terminal belongs to their result (npm run demo).

/**
 * The fields that carry a request target, a URL or a child's raw line (HAProxy traffic, a backend's
 * JSON output) — and `err`, below: their query values and URL passwords are redacted at every level
 * (lib/redact.ts), so `log.debug({ path })` cannot write a client's `?token=`. Messages themselves
 * are not rewritten: a path goes in one of these fields, never into the message text.
 */
const REDACTED_FIELDS = ['path', 'url', 'target', 'traffic', 'child'];

const redact: LoggerOptions['redact'] = {
  paths: REDACTED_FIELDS,
  // Non-strings pass unchanged: an Error under `err` goes through the serializer below instead.
  censor: (value: unknown) => (typeof value === 'string' ? redactSecrets(value) : value),
};

/** `err`: a string (most call sites log `err.message`) redacted; an Error through pino's own
 *  serializer, then every string it produced redacted — the message, the stack, and own properties
 *  such as the `input` URL that Node's ERR_INVALID_URL carries. */
function redactedError(err: unknown): unknown {
  if (typeof err === 'string') return redactSecrets(err);
  const serialized: unknown = pino.stdSerializers.err(err as Error);
  if (typeof serialized !== 'object' || serialized === null) return serialized;
  const out: Record<string, unknown> = { ...serialized };
  for (const [key, value] of Object.entries(out)) if (typeof value === 'string') out[key] = redactSecrets(value);
  return out;
}
const serializers = { err: redactedError };

function createRoot(): Logger {
  const level = process.env.LOG_LEVEL ?? 'info';
  if (process.env.LOG_FILE) return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: process.env.LOG_FILE, mkdir: true, sync: true }));
  const format = process.env.LOG_FORMAT ?? (process.stdout.isTTY ? 'pretty' : 'json');
  if (format === 'pretty') {
    return pino({
      level,
      redact,
      serializers,
      transport: {
        target: 'pino-pretty',
        options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' },
      },
    });
  }
  return pino({ level, redact, serializers, base: { pid: process.pid } });
}

let root: Logger | undefined;

export function logger(component: string, bindings: Record<string, unknown> = {}): Logger {
  root ??= createRoot();
  return root.child({ component, ...bindings });
}
