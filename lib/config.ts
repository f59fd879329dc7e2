import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { ConfigError } from './errors.js';

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

/** Settings a backend process takes; the gateway passes its own values down to the backends it starts. */
const backendFields = {
  /** SETTINGS_MAX_CONCURRENT_STREAMS we advertise; 10,000 sessions must fit on one connection. */
  h2MaxConcurrentStreams: positiveInt.default(20_000),
  /** Node's per-session memory cap in MB; the 10 MB default caps one session at about 12k streams. */
  maxSessionMemoryMb: positiveInt.default(100),
  /** Largest WebSocket message accepted, in bytes (bigger → close 1009). */
  maxPayloadBytes: positiveInt.default(1024 * 1024),
  /** How long a SIGTERM'd process waits for sessions to close after sending 1001. */
  drainTimeoutMs: positiveInt.default(10_000),
  feedRateHz: positiveInt.default(10),
  /** Messages kept per room for recovery on reconnect (Redis Stream MAXLEN ~). */
  roomHistory: positiveInt.default(1000),
  /** HS256 secret for handshake JWTs; unset = no authentication (refused off loopback without --insecure). */
  jwtSecret: z.string().min(32, 'at least 32 characters').optional(),
  /** Browser Origins allowed to open sessions (comma-separated); empty = any. */
  allowedOrigins: stringList.default([]),
  /** Per-session message rate (messages/s, burst of twice that); above it → close 1008. */
  maxMessagesPerSecond: positiveInt.default(2_000),
  /** Concurrent sessions per client IP, over all its connections and every backend; above it → 429 at
   *  the handshake. Enforced by the HAProxy front itself, and by the backends together over Redis (the
   *  room bus's) from the one X-Forwarded-For entry the front writes (backend/ip-sessions.ts). */
  maxSessionsPerIp: positiveInt.default(20_000),
  /** Members per chat room; a join beyond it → close 1008. */
  maxRoomSize: positiveInt.default(10_000),
  /** Fragments one incoming message may arrive in; more → close 1008. Both transports. */
  maxFragments: positiveInt.default(WS_RECEIVE_DEFAULTS.maxFragments),
  /** Incoming chunks (TCP reads, HTTP/2 DATA frames) held while a frame is incomplete; more → close 1008. */
  maxBufferedChunks: positiveInt.default(WS_RECEIVE_DEFAULTS.maxBufferedChunks),
  /** Pongs owed to a peer that pings but does not read; more → the session is dropped. */
  maxPendingPongs: positiveInt.default(WS_RECEIVE_DEFAULTS.maxPendingPongs),
  /** A session whose unsent messages cost more than this is a slow consumer: their bytes plus the
   *  bookkeeping each queued message costs (backend/outbound-guard.ts), so the bound is on memory. */
  slowConsumerBytes: positiveInt.default(4 * 1024 * 1024),
  /** The same for all sessions on one HTTP/2 connection (many clients' sessions share one through a
   *  front with an HTTP/2 upstream); past it the open session holding most is closed with 1008. */
  maxConnectionUnsentBytes: positiveInt.default(64 * 1024 * 1024),
  /** A session with unsent messages none of which could be written for this long (a peer that keeps
   *  its HTTP/2 window or TCP window at zero) is dropped: RST_STREAM(CANCEL) or the socket closed. 0 = off. */
  writeStallTimeoutMs: nonNegativeInt.default(30_000),
  /** What to do with a slow consumer: close it with 1008, or drop messages until it catches up. */
  slowConsumerPolicy: z.enum(['close', 'drop']).default('close'),
  /** Server pings every session this often; no pong by the next ping → the session is dropped. 0 = off. */
  pingIntervalMs: nonNegativeInt.default(30_000),
  /** A client must finish its handshake (request headers) within this. */
  handshakeTimeoutMs: positiveInt.default(10_000),
};
export const BACKEND_FIELDS = Object.keys(backendFields) as Array<keyof typeof backendFields>;

export const gatewaySchema = z.object({
  /** The proxy in front: Envoy (fed over xDS, hot restart by epochs) or HAProxy (runtime API, master-worker reload). */
  front: z.enum(['envoy', 'haproxy']).default('envoy'),
  host: loopbackOrAny.default('127.0.0.1'),
  /** Front plaintext port: HTTP/1.1 Upgrade and h2c prior knowledge on one port. */
  frontPort: port.default(8080),
  /** Front TLS: ALPN h2 and http/1.1 (wss:// for browsers, h2 for MuxClient). 0 disables it. */
  frontTlsPort: port.default(8443),
  /** PEM files for the front; unset → a self-signed pair made on first start in <stateDir>/tls. */
  tlsCert: z.string().optional(),
  tlsKey: z.string().optional(),
  adminPort: port.default(9000),
  /** Admin API bearer token; unset → generated on first start into <stateDir>/admin-token. */
  adminToken: z.string().min(16, 'at least 16 characters').optional(),
  xdsPort: port.default(18000),
  envoyAdminPort: port.default(9901),
  haproxyStatsPort: port.default(8404),
  backendPorts: portList.default([9101, 9102, 9103]),
  /** Start the backends on backendPorts as child processes. false: they run elsewhere (docker compose:
   *  a container each) and the gateway only registers, health-checks and drains them. */
  manageBackends: flag.default(true),
  /** `--front envoy`: the control API of an Envoy restarter in another process or container (docker
   *  compose: http://127.0.0.1:9902). Unset: run a local `envoy` binary under an in-process restarter. */
  envoyRestarterUrl: z.url().optional(),
  /** Local Envoy: the control API port of the restarter process the gateway starts beside it. The
   *  restarter (and Envoy, its child) outlives a gateway crash or restart; the next gateway attaches. */
  envoyRestarterPort: port.default(9902),
  /** Address ranges the admin API may register endpoints in (names are resolved first); the
   *  gateway's own ports are refused anyway. "0.0.0.0/0,::/0" allows any address. */
  endpointCidrs: stringList
    .default(['127.0.0.0/8', '::1/128'])
    .refine((l) => l.every((c) => /^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(c)), 'comma-separated CIDRs, e.g. 127.0.0.0/8,10.0.0.0/8'),
  /** Working files: rendered HAProxy config, sockets, pid files. */
  stateDir: z.string().min(1).default('.gateway'),
  haproxyBin: z.string().min(1).default('haproxy'),
  /** Room bus for chat across backends. Unset: `npm start` runs a local redis-server on redisPort. */
  redisUrl: z.string().url().optional(),
  redisPort: port.default(6390),
  /** 'none' runs rooms per backend with no bus (what sticky-by-room balancing is for). */
  roomBus: z.enum(['redis', 'none']).default('redis'),
  /** Front balancing: per-stream round robin, or sticky-by-room (consistent hash of the path). */
  balance: z.enum(['roundrobin', 'room']).default('roundrobin'),
  /** HAProxy config template; '' = haproxy/haproxy.cfg.tmpl. Re-read at every reload. */
  haproxyTemplate: z.string().default(''),
  /** HAProxy global maxconn. Each H2 stream costs one upstream socket with HTTP/1.1 servers, so
   *  10,000 streams need ~20k fds; 9000 keeps HAProxy's computed ulimit under a 20,000 open-files limit. */
  haproxyMaxconn: positiveInt.default(9_000),
  /** HAProxy front: new sessions (HTTP/2 streams, HTTP/1.1 requests) one client IP may start per 10 s;
   *  beyond it an HTTP/2 connection is closed, an HTTP/1.1 request gets 429. HAProxy 2.6 serves a
   *  rapid-reset flood on, so this bounds how many of its streams reach the backends. Envoy closes
   *  such a connection itself (premature-reset rule, envoy/*.yaml). */
  haproxySessionOpensPer10sPerIp: positiveInt.default(20_000),
  /** How the front talks to the backends: HTTP/1.1 Upgrade (one upstream socket per session) or
   *  HTTP/2 extended CONNECT (many sessions per upstream connection). */
  upstreamProtocol: z.enum(['h1', 'h2']).default('h1'),
  /** After a hot restart the old generation is stopped this long after the new one is up, even if
   *  sessions remain (HAProxy `hard-stop-after`, Envoy `--parent-shutdown-time-s`). */
  hardStopAfterS: positiveInt.default(30),
  /** Active health checks of each endpoint's /healthz (the gateway's own, beside HAProxy's). */
  healthIntervalMs: positiveInt.default(2_000),
  healthTimeoutMs: positiveInt.default(1_000),
  healthFall: positiveInt.default(2),
  healthRise: positiveInt.default(1),
  /** A drained endpoint's sessions get this long before its backend closes them with 1001. */
  drainDeadlineMs: positiveInt.default(30_000),
  ...backendFields,
});
export type GatewayConfig = z.infer<typeof gatewaySchema>;

export const backendSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'letters, digits, "-" or "_", at most 32'),
  host: loopbackOrAny.default('127.0.0.1'),
  port: port.default(9101),
  /** PEM files; when both are set the port also accepts TLS (ALPN h2, http/1.1). */
  tlsCert: z.string().optional(),
  tlsKey: z.string().optional(),
  /** Room bus. Unset: rooms live in this process only. */
  redisUrl: z.string().url().optional(),
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
): { config: z.infer<S>; flags: Record<string, string | boolean | undefined> } {
  const keys = Object.keys(schema.shape);
  const options: Record<string, { type: 'string' | 'boolean' }> = { ...extraFlags };
  for (const key of keys) options[kebab(key)] = { type: 'string' };
  for (const key of keys.filter(isSecretField)) options[`${kebab(key)}-file`] = { type: 'string' };

  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
  } catch (err) {
    throw new ConfigError('argv', (err as Error).message);
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
  return { config: Object.freeze(result.data) as z.infer<S>, flags };
}

/** Defaults for library users (tests, bench) who do not read argv/env. */
export function defaults<S extends z.ZodObject>(schema: S, overrides: Partial<z.input<S>> = {}): z.infer<S> {
  const result = schema.safeParse(overrides);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(issue.path.join('.'), issue.message);
  }
  return result.data;
}
