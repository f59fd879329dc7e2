import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { ConfigError, UsageError } from './errors.js';

// The one place for ports, hosts and limits. Every field can be set three ways, highest first:
//   CLI flag   --front-port 8081      (kebab-case of the field name)
//   env var    FRONT_PORT=8081        (SCREAMING_SNAKE_CASE of the field name)
//   default    below
// Values are validated once at start-up; a bad value throws ConfigError naming the field and its source.
// Secrets (SECRET_FIELDS) are the exception to the first way: environment or file only.

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const portList = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v),
  z.array(port).min(1),
);
const loopbackOrAny = z.string().min(1);
const flag = z.preprocess((v) => {
  if (typeof v !== 'string') return v;
  const known: Record<string, boolean> = { true: true, false: false, yes: true, no: false, '1': true, '0': false };
  return known[v.toLowerCase()] ?? v;
}, z.boolean({ error: 'must be true or false' }));

const nonNegativeInt = z.coerce.number().int().min(0);
const stringList = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v),
  z.array(z.string()),
);

/**
 * The receive bounds `ws` gives every HTTP/1.1 session by default (WebSocketServer and client
 * options). A WebSocket the adapter builds on an HTTP/2 stream gets none of them unless they are
 * passed, so both transports take them from here.
 */
export const WS_RECEIVE_DEFAULTS = Object.freeze({
  /** Fragments one message may arrive in (ws `maxFragments`); one more → close 1008. */
  maxFragments: 16_384,
  /** Received chunks held while a frame is incomplete (ws `maxBufferedChunks`); one more → close 1008. */
  maxBufferedChunks: 262_144,
  /** Pongs queued but not yet written (ws `maxPendingAutoPongs`); one more → the session is dropped. */
  maxPendingPongs: 60,
});

/** Settings a backend process takes; the gateway passes its own values down to the backends it starts.
 *  Each `.describe()` is the field's line in `--help` (lib/cli.ts), so help cannot drift from here. */
const backendFields = {
  // 10,000 sessions must fit on one connection (Node's and HAProxy's defaults are far lower).
  h2MaxConcurrentStreams: positiveInt.default(20_000).describe('SETTINGS_MAX_CONCURRENT_STREAMS advertised: streams per HTTP/2 connection'),
  // Node's 10 MB default caps one session at about 12k streams.
  maxSessionMemoryMb: positiveInt.default(100).describe("Node's per-HTTP/2-session memory cap, in MB"),
  maxPayloadBytes: positiveInt.default(1024 * 1024).describe('largest WebSocket message accepted, in bytes (bigger: close 1009)'),
  drainTimeoutMs: positiveInt.default(10_000).describe('on SIGTERM, how long sessions get to close after the 1001'),
  feedRateHz: positiveInt.default(10).describe('messages per second on /feed'),
  roomHistory: positiveInt.default(1000).describe('messages kept per room for recovery on reconnect (Redis Stream MAXLEN ~)'),
  jwtSecret: z.string().min(32, 'at least 32 characters').optional()
    .describe('HS256 secret for handshake JWTs; unset: no authentication (refused off loopback without --insecure)'),
  allowedOrigins: stringList.default([]).describe('browser Origins allowed to open sessions (comma-separated); empty: any'),
  maxMessagesPerSecond: positiveInt.default(2_000).describe('per-session message rate, burst of twice that (above: close 1008)'),
  // X-Forwarded-For from the front: the client's address, not the proxy's.
  maxSessionsPerIp: positiveInt.default(20_000).describe('concurrent sessions per client IP over every backend (above: 429 at the handshake); enforced by HAProxy itself and by the backends together over Redis'),
  maxRoomSize: positiveInt.default(10_000).describe('members per chat room (a join beyond it: close 1008)'),
  maxFragments: positiveInt.default(WS_RECEIVE_DEFAULTS.maxFragments).describe('fragments one incoming message may arrive in (more: close 1008), both transports'),
  maxBufferedChunks: positiveInt.default(WS_RECEIVE_DEFAULTS.maxBufferedChunks).describe('incoming chunks held while a frame is incomplete (more: close 1008)'),
  maxPendingPongs: positiveInt.default(WS_RECEIVE_DEFAULTS.maxPendingPongs).describe('pongs owed to a peer that pings but does not read (more: dropped)'),
  // Bytes plus the bookkeeping each queued message costs (backend/outbound-guard.ts): a bound on memory.
  slowConsumerBytes: positiveInt.default(4 * 1024 * 1024).describe('unsent bytes (plus per-message overhead) that make a session a slow consumer'),
  // Many clients' sessions share one HTTP/2 connection through a front with an HTTP/2 upstream.
  maxConnectionUnsentBytes: positiveInt.default(64 * 1024 * 1024).describe('unsent bytes over all sessions of one HTTP/2 connection (past it: the largest closed with 1008)'),
  writeStallTimeoutMs: nonNegativeInt.default(30_000).describe('a session none of whose unsent messages could be written for this long is dropped; 0: off'),
  slowConsumerPolicy: z.enum(['close', 'drop']).default('close').describe('a slow consumer is closed with 1008, or its messages dropped until it catches up'),
  // A session that misses a pong by the next ping is dropped.
  pingIntervalMs: nonNegativeInt.default(30_000).describe('server ping interval (no pong by the next ping: dropped); 0: off'),
  handshakeTimeoutMs: positiveInt.default(10_000).describe('a client must finish its handshake (request headers) within this'),
};
export const BACKEND_FIELDS = Object.keys(backendFields) as Array<keyof typeof backendFields>;

export const gatewaySchema = z.object({
  front: z.enum(['envoy', 'haproxy']).default('envoy')
    .describe('the proxy in front: Envoy (fed over xDS, hot restart by epochs) or HAProxy (runtime API, master-worker reload)'),
  host: loopbackOrAny.default('127.0.0.1').describe('address everything binds to; off loopback needs --jwt-secret or --insecure'),
  // Refusing an unauthenticated public bind is the default; this is the one way past it.
  insecure: flag.default(false).describe('serve a non-loopback host without handshake auth anyway'),
  frontPort: port.default(8080).describe('front plaintext port: HTTP/1.1 Upgrade and h2c prior knowledge on one port'),
  frontTlsPort: port.default(8443).describe('front TLS port: ALPN h2 and http/1.1 (wss:// for browsers); 0 disables it'),
  tlsCert: z.string().optional().describe('PEM certificate for the front; unset: a self-signed pair made in <stateDir>/tls'),
  tlsKey: z.string().optional().describe('PEM key for the front (with --tls-cert)'),
  adminPort: port.default(9000).describe('admin API, dashboard and explainers'),
  adminToken: z.string().min(16, 'at least 16 characters').optional()
    .describe('admin API bearer token; unset: generated on first start into <stateDir>/admin-token'),
  xdsPort: port.default(18000).describe('xDS (ADS) server Envoy follows'),
  envoyAdminPort: port.default(9901).describe("Envoy's admin"),
  haproxyStatsPort: port.default(8404).describe("HAProxy's stats page and Prometheus /metrics"),
  backendPorts: portList.default([9101, 9102, 9103]).describe('one backend (b1, b2, ...) per port'),
  // false: they run elsewhere (docker compose: a container each) and the gateway only registers,
  // health-checks and drains them.
  manageBackends: flag.default(true).describe('start the backends on --backend-ports as child processes'),
  // docker compose: http://127.0.0.1:9902. Unset: a local `envoy` binary under a restarter process.
  envoyRestarterUrl: z.url().optional().describe("control API of an Envoy restarter in another process or container"),
  // The restarter (and Envoy, its child) outlives a gateway crash or restart; the next gateway attaches.
  envoyRestarterPort: port.default(9902).describe("local Envoy: the control API port of the restarter process started beside it"),
  // Names are resolved first; the gateway's own ports are refused anyway.
  endpointCidrs: stringList
    .default(['127.0.0.0/8', '::1/128'])
    .refine((l) => l.every((c) => /^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(c)), 'comma-separated CIDRs, e.g. 127.0.0.0/8,10.0.0.0/8')
    .describe('address ranges the admin API may register endpoints in; 0.0.0.0/0,::/0 allows any'),
  stateDir: z.string().min(1).default('.gateway')
    .describe('working files: rendered configs, sockets, registry, cert, admin token, stack.json (how the other commands find this stack)'),
  haproxyBin: z.string().min(1).default('haproxy').describe('the haproxy binary'),
  redisUrl: z.string().url().optional().describe('room bus for chat across backends; unset: a local redis-server on --redis-port'),
  redisPort: port.default(6390).describe('port of the local redis-server'),
  // 'none' is what sticky-by-room balancing is for.
  roomBus: z.enum(['redis', 'none']).default('redis').describe('rooms across backends through Redis, or per backend with no bus'),
  balance: z.enum(['roundrobin', 'room']).default('roundrobin')
    .describe('front balancing: per-stream round robin, or sticky-by-room (consistent hash of the path)'),
  // Re-read at every reload: editing it and reloading is how an operator changes the front.
  haproxyTemplate: z.string().default('').describe("HAProxy config template; '' is haproxy/haproxy.cfg.tmpl"),
  // Each H2 stream costs one upstream socket with HTTP/1.1 servers, so 10,000 streams need ~20k fds;
  // 9000 keeps HAProxy's computed ulimit under a 20,000 open-files limit.
  haproxyMaxconn: positiveInt.default(9_000).describe('HAProxy global maxconn'),
  // HAProxy 2.6 serves a rapid-reset flood on, so this bounds how many of its streams reach the backends;
  // Envoy closes such a connection itself (premature-reset rule, envoy/*.yaml).
  haproxySessionOpensPer10sPerIp: positiveInt.default(20_000).describe('HAProxy front: new sessions one client IP may start per 10 s (beyond: HTTP/2 connection closed, HTTP/1.1 429)'),
  // 'auto' is HTTP/2 for Envoy (its upstream holds every test and the 16 KiB bursts) and HTTP/1.1 for
  // HAProxy (2.6's `proto h2` upstream stalls under bursts: docs/explain/flow-control.md).
  upstreamProtocol: z.enum(['auto', 'h1', 'h2']).default('auto')
    .describe('front to backends: h1 (Upgrade, one upstream socket per session), h2 (extended CONNECT, shared connections), auto (h2 for Envoy, h1 for HAProxy)'),
  // HAProxy `hard-stop-after`, Envoy `--parent-shutdown-time-s`.
  hardStopAfterS: positiveInt.default(30).describe('after a hot restart, how long the old generation may keep sessions'),
  // The gateway's own checks and the front's (HAProxy `check inter/fall/rise`) use the same values.
  healthIntervalMs: positiveInt.default(2_000).describe("interval of the active health checks of each endpoint's /healthz"),
  healthTimeoutMs: positiveInt.default(1_000).describe('a health check fails after this long'),
  healthFall: positiveInt.default(2).describe('failed checks in a row that mark an endpoint down'),
  healthRise: positiveInt.default(1).describe('passed checks in a row that mark it up again'),
  drainDeadlineMs: positiveInt.default(30_000).describe("a drained endpoint's sessions get this long before their backend sends 1001"),
  ...backendFields,
});
export type GatewayConfig = z.infer<typeof gatewaySchema>;

export type UpstreamProtocol = 'h1' | 'h2';

/** The protocol the front speaks to the backends, `auto` resolved for the configured front. */
export function upstreamProtocolFor(config: Pick<GatewayConfig, 'front' | 'upstreamProtocol'>): UpstreamProtocol {
  if (config.upstreamProtocol !== 'auto') return config.upstreamProtocol;
  return config.front === 'envoy' ? 'h2' : 'h1';
}

/** What a helper command (endpoints, hot-restart) takes to find a running stack: the same flags and
 *  env vars as `npm start`, so `--state-dir` (and `--admin-port`) carry over. */
export const findStackSchema = gatewaySchema.pick({ host: true, adminPort: true, adminToken: true, stateDir: true });

export const backendSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'letters, digits, "-" or "_", at most 32').describe('backend id, sent as x-backend-id'),
  host: loopbackOrAny.default('127.0.0.1').describe('address to listen on'),
  port: port.default(9101).describe('HTTP/1.1 Upgrade, h2c and (with --tls-cert) TLS on one port'),
  tlsCert: z.string().optional().describe('PEM certificate; with --tls-key the port also accepts TLS (ALPN h2, http/1.1)'),
  tlsKey: z.string().optional().describe('PEM key (with --tls-cert)'),
  redisUrl: z.string().url().optional().describe('room bus; unset: the bus of the stack in --state-dir, if any, else rooms in this process only'),
  // A backend started by hand (`npm run backend`) beside `npm start` must share its rooms, or chat
  // splits silently; the ones the gateway starts are told their bus and pass false here.
  joinStackBus: flag.default(true).describe("with no --redis-url: join the room bus of the stack running in --state-dir (its stack.json)"),
  stateDir: z.string().min(1).default('.gateway').describe('where a running stack wrote stack.json'),
  ...backendFields,
});
export type BackendConfig = z.infer<typeof backendSchema>;

/** `frontPort` → `front-port`: the CLI flag of a config field. */
export const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
/** `frontPort` → `FRONT_PORT`: the env var of a config field. */
export const envName = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();

/** A Redis URL is a secret when it carries a password (in the userinfo, or ioredis's `?password=`);
 *  one that does not even parse is treated as one, since nothing then says it carries none. */
function urlCarriesPassword(value: string): boolean {
  try {
    const url = new URL(value);
    return url.password !== '' || url.searchParams.has('password');
  } catch {
    return true;
  }
}

/**
 * Fields whose value is a secret, with what makes a given value one. A secret is never taken from a
 * command-line flag: any local user reads every process's argv (`ps`, /proc/<pid>/cmdline), while
 * /proc/<pid>/environ is readable by the same user and root only. So a secret comes from the
 * environment (`JWT_SECRET=…`) or from a file only its owner reads (`--jwt-secret-file PATH` or
 * `JWT_SECRET_FILE=PATH`; one trailing newline dropped). The flag itself is refused, not warned
 * about: by the time a warning is read the secret has been on the command line, and the process
 * exits at once this way. The gateway hands secrets to the backends it starts through their
 * environment (gateway/core/backend-process.ts).
 */
export const SECRET_FIELDS: Readonly<Record<string, (value: string) => boolean>> = Object.freeze({
  jwtSecret: () => true,
  adminToken: () => true,
  redisUrl: urlCarriesPassword,
});
const isSecretField = (key: string) => Object.hasOwn(SECRET_FIELDS, key);

/** The env vars that carry a secret or name a secret's file (JWT_SECRET, JWT_SECRET_FILE, …). */
export const SECRET_ENV_NAMES: readonly string[] = Object.keys(SECRET_FIELDS).flatMap((key) => [envName(key), `${envName(key)}_FILE`]);

/**
 * `env` without any secret: what a child that needs none of them (HAProxy, Envoy, Redis, the
 * restarter, bench workers) gets, so a secret given to the gateway goes no further than needed.
 */
export function withoutSecrets(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const name of SECRET_ENV_NAMES) delete out[name];
  return out;
}

function readSecretFile(key: string, file: string, origin: string): string {
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new ConfigError(key, `could not read the file given by ${origin} (${file}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Edit distance (insertions, deletions, substitutions): how far a typed flag is from a real one. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/** The known flag nearest to `typed`, if one is near enough to be what was meant. */
export function nearestFlag(typed: string, known: readonly string[]): string | undefined {
  const t = typed.replace(/^-+/, '').toLowerCase();
  let best: { flag: string; d: number } | undefined;
  for (const flag of known) {
    // `--frontport` for `--front-port`: dashes are the usual slip, so they cost nothing here.
    const d = Math.min(editDistance(t, flag), editDistance(t.replace(/-/g, ''), flag.replace(/-/g, '')));
    if (!best || d < best.d) best = { flag, d };
  }
  return best && best.d <= Math.max(2, Math.floor(t.length / 4)) ? best.flag : undefined;
}

/**
 * What `util.parseArgs` threw, said for a person: which flag, and the nearest real one. Its own
 * messages suggest quoting the flag as a positional argument, which is never what was meant here.
 */
export function flagError(err: unknown, known: readonly string[]): UsageError {
  const { code, message } = err as { code?: string; message: string };
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const typed = /'(-[^']*)'/.exec(message)?.[1] ?? message;
    const near = nearestFlag(typed, known);
    return new UsageError(`unknown flag ${typed}${near ? `; did you mean --${near}?` : ''}`);
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const flag = /'(-[^' ]*)/.exec(message)?.[1];
    if (flag && /argument missing/.test(message)) return new UsageError(`${flag} needs a value`);
    if (flag && /does not take an argument/.test(message)) return new UsageError(`${flag} is a switch: it takes no value`);
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const arg = /'([^']*)'/.exec(message)?.[1];
    return new UsageError(`unexpected argument ${JSON.stringify(arg ?? message)} (flags are --name value)`);
  }
  return new UsageError(message);
}

/** A field's schema under its default/optional wrappers, and the output side of a preprocess. */
export function innerSchema(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (;;) {
    const def = (s as unknown as { _zod: { def: { type: string; innerType?: z.ZodType; out?: z.ZodType } } })._zod.def;
    if (def.innerType && ['default', 'optional', 'prefault', 'nullable', 'readonly'].includes(def.type)) s = def.innerType;
    else if (def.type === 'pipe' && def.out) s = def.out;
    else return s;
  }
}

/** The zod type name of a field (`number`, `enum`, `boolean`, ...), wrappers removed. */
export const fieldType = (schema: z.ZodType): string => (innerSchema(schema) as unknown as { _zod: { def: { type: string } } })._zod.def.type;

/** `--insecure` alone (last, or before another flag) means `--insecure true`: a true/false field works as a switch too. */
function withSwitchValues(argv: readonly string[], schema: z.ZodObject): string[] {
  const switches = new Set(Object.entries(schema.shape).filter(([, s]) => fieldType(s as z.ZodType) === 'boolean').map(([k]) => `--${kebab(k)}`));
  const end = argv.indexOf('--');
  const bare = (i: number) => argv[i + 1] === undefined || argv[i + 1]!.startsWith('-');
  return argv.flatMap((arg, i) => (switches.has(arg) && (end < 0 || i < end) && bare(i) ? [arg, 'true'] : [arg]));
}

type Source = { value: string; origin: string };

/**
 * Validate `schema` from argv flags and env vars. Unknown flags are errors (a typo must not be
 * silently ignored); positional arguments are not allowed.
 */
export function loadConfig<S extends z.ZodObject>(
  schema: S,
  argv: readonly string[] = process.argv.slice(2),
  env: NodeJS.ProcessEnv = process.env,
  extraFlags: Record<string, { type: 'boolean' | 'string' }> = {},
): {
  config: Readonly<z.infer<S>>;
  flags: Record<string, string | boolean | undefined>;
  /** The fields set by a flag or an env var (the rest are defaults). */
  given: ReadonlySet<string>;
} {
  const keys = Object.keys(schema.shape);
  const options: Record<string, { type: 'string' | 'boolean' }> = { ...extraFlags };
  for (const key of keys) options[kebab(key)] = { type: 'string' };
  for (const key of keys.filter(isSecretField)) options[`${kebab(key)}-file`] = { type: 'string' };

  let parsed;
  try {
    parsed = parseArgs({ args: withSwitchValues(argv, schema), options, strict: true, allowPositionals: false });
  } catch (err) {
    throw flagError(err, Object.keys(options));
  }

  const raw: Record<string, unknown> = {};
  const sources: Record<string, Source> = {};
  const given = (v: string | undefined): v is string => v !== undefined && v !== '';
  for (const key of keys) {
    const flag = parsed.values[kebab(key)];
    const variable = envName(key);
    const fileFlag = parsed.values[`${kebab(key)}-file`];
    const fileVariable = `${variable}_FILE`;
    if (typeof flag === 'string') {
      if (isSecretField(key) && SECRET_FIELDS[key]!(flag)) {
        throw new ConfigError(
          key,
          `--${kebab(key)} would put a secret on the command line, where every local user can read it (ps, /proc/<pid>/cmdline); ` +
            `set ${variable} in the environment, or pass --${kebab(key)}-file PATH (a file only you can read)`,
        );
      }
      raw[key] = flag;
      sources[key] = { value: flag, origin: `--${kebab(key)}` };
    } else if (typeof fileFlag === 'string') {
      raw[key] = readSecretFile(key, fileFlag, `--${kebab(key)}-file`);
      sources[key] = { value: String(raw[key]), origin: `the file of --${kebab(key)}-file` };
    } else if (given(env[variable])) {
      raw[key] = env[variable];
      sources[key] = { value: env[variable]!, origin: `env ${variable}` };
    } else if (isSecretField(key) && given(env[fileVariable])) {
      raw[key] = readSecretFile(key, env[fileVariable]!, `env ${fileVariable}`);
      sources[key] = { value: String(raw[key]), origin: `the file of env ${fileVariable}` };
    }
  }

  const result = schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = String(issue.path[0] ?? 'config');
    const src = sources[key];
    // A secret's value is never repeated, even a wrong one: the message goes to the log.
    const where = src ? ` (from ${src.origin}${isSecretField(key) ? '' : `=${JSON.stringify(src.value)}`})` : '';
    throw new ConfigError(issue.path.join('.') || key, `${issue.message}${where}`);
  }

  const flags: Record<string, string | boolean | undefined> = {};
  for (const name of Object.keys(extraFlags)) flags[name] = parsed.values[name] as string | boolean | undefined;
  return { config: Object.freeze(result.data) as z.infer<S>, flags, given: new Set(Object.keys(sources)) };
}

/** Defaults for library users (tests, bench) who do not read argv/env; frozen like loadConfig's. */
export function defaults<S extends z.ZodObject>(schema: S, overrides: Partial<z.input<S>> = {}): Readonly<z.infer<S>> {
  const result = schema.safeParse(overrides);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(issue.path.join('.'), issue.message);
  }
  return Object.freeze(result.data);
}
