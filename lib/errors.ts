// Every error this project raises on purpose is a GatewayError with a stable `code`, and every code
// is listed once, here, with what it means: `ERROR_CODES` is the registry; `GatewayError` takes only
// a code from it (an unlisted code fails typecheck) and is abstract, so each error is a class that
// says what went wrong. The classes live next to the module that raises them; their codes come from
// here. test/errors.test.ts checks the registry against the source and the README table.
//
// WebSocket close codes are the second table: `CLOSE_CODES` (code, meaning, who sends it, whether
// SessionKeeper reopens after it). The backend closes with `CloseCode.*`; the client decides to
// reopen with `reopensAfter()`.
//
// Messages end up in logs, so GatewayError redacts query values and URL passwords from every one
// (lib/redact.ts): a client's `?token=` never reaches a log through an error.

import { redactSecrets } from './redact.js';

export const ERROR_CODES = {
  // Clients, adapter, process start-up (classes below)
  GW_ERR_CONFIG: 'a config field, environment variable or CLI flag failed validation at start-up; the message names it',
  GW_ERR_USAGE: 'a command line a command cannot take (unknown flag, with the nearest real one; a missing value; a stray argument): exit code 2',
  GW_ERR_NO_EXTENDED_CONNECT: 'the HTTP/2 peer did not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL, so it cannot carry WebSockets (RFC 8441)',
  GW_ERR_HANDSHAKE_REJECTED: 'the WebSocket handshake was answered with another status than 200 (HTTP/2) or 101 (HTTP/1.1); carries `status`',
  GW_ERR_SUBPROTOCOL: 'the server picked a subprotocol the client never offered',
  GW_ERR_STREAM_RESET: 'the HTTP/2 stream was reset before the handshake finished; carries `rstCode`',
  GW_ERR_CONNECTION: 'the connection could not be made (refused, TLS verification) or died before the stream opened',
  GW_ERR_TIMEOUT: 'a bounded wait (handshake, SETTINGS, drain, HAProxy CLI, xDS ACK) ran out',
  GW_ERR_WS_INTERNALS: 'the installed `ws` changed an internal lib/ws-h2-adapter.ts relies on',
  GW_ERR_MISSING_TOOL: 'a required program (haproxy, envoy, redis-server) is not installed; the message says how to install it',
  GW_ERR_CHILD_PROCESS: 'a child process (HAProxy, a backend) failed to start or exited unexpectedly',
  GW_ERR_PORT_IN_USE: 'a port to listen on is taken (HAProxy would share it silently through SO_REUSEPORT)',
  GW_ERR_BAD_REQUEST_TARGET: 'a request target that is not a path we can route: answered 400',
  // Admin API and pages (HttpError, gateway/admin/)
  GW_ERR_BAD_REQUEST: 'an admin request with a body too large (413), cut short (408), not JSON or with an invalid field (400), or a bad Host (400)',
  GW_ERR_UNAUTHORIZED: 'an admin API call without the admin token: 401',
  GW_ERR_ORIGIN: 'an admin API write from a foreign Origin: 403',
  GW_ERR_CONTENT_TYPE: 'an admin API body that is not application/json: 415',
  GW_ERR_NOT_FOUND: 'no such route, page, asset or bench report (admin server, restarter control API): 404',
  GW_ERR_METHOD: 'a method the route does not take: 405',
  GW_ERR_INTERNAL: 'an unexpected error (not a GatewayError) in an admin or restarter control handler: 500',
  GW_ERR_LOAD_BUSY: 'the dashboard load generator already runs: 409',
  GW_ERR_LOAD_NOT_LOCAL: 'the load button was pressed from, or aimed at, a non-loopback address: 403',
  // Endpoint registry (gateway/core/)
  GW_ERR_ENDPOINT_NOT_FOUND: 'no endpoint with that id: 404',
  GW_ERR_ENDPOINT_CONFLICT: 'an endpoint with that id or address already exists: 409',
  GW_ERR_ENDPOINT_REFUSED: 'an endpoint address that does not resolve (400), is outside endpointCidrs or is the gateway\'s own port (403)',
  GW_ERR_STATE_FILE: 'the registry state file is not valid; move it away to start from config',
  // HAProxy (gateway/haproxy/)
  GW_ERR_TEMPLATE: 'haproxy.cfg.tmpl and the values rendered into it disagree (a placeholder without a value, or a value without a placeholder)',
  GW_ERR_HAPROXY_CONFIG: '`haproxy -c` rejected the rendered config; nothing was changed',
  GW_ERR_HAPROXY_RUNTIME: 'HAProxy\'s runtime API refused a command, or its answer lacked what was asked for',
  // Envoy, its restarter and xDS (gateway/envoy/)
  GW_ERR_ENVOY_CONFIG_REJECTED: '`envoy --mode validate` rejected the config; no epoch was started and the running one keeps serving (409)',
  GW_ERR_ENVOY_HOT_RESTART_VERSION: 'the Envoy binary on disk reports another --hot-restart-version than the running epochs: hot restart refused (409)',
  GW_ERR_ENVOY_EPOCH_DRAINING: 'a hot restart while the previous epoch still drains: refused, Envoy would cut its sessions (409)',
  GW_ERR_ENVOY_EPOCH_EXITED: 'an Envoy epoch exited before it was ready',
  GW_ERR_ENVOY_ADMIN: 'Envoy\'s admin API answered an error status',
  GW_ERR_ENVOY_REMOTE: 'stop or start asked of an Envoy that a restarter in another container runs',
  GW_ERR_RESTARTER_START: 'the local Envoy restarter process did not start, or its first epoch was not ready in time',
  GW_ERR_RESTARTER_USAGE: 'the Envoy restarter was given arguments it cannot work with',
  GW_ERR_RESTARTER_STOPPED: 'the Envoy restarter is stopping and starts nothing more',
  GW_ERR_RESTARTER_UNREACHABLE: 'the Envoy restarter\'s control API did not answer: 502',
  GW_ERR_RESTARTER: 'the Envoy restarter\'s control API answered an error without a code this version knows',
  GW_ERR_XDS_PROTOS: 'the Envoy protos the xDS server needs could not be found or loaded',
  GW_ERR_XDS_BIND: 'the xDS server could not listen on its port (other than the port being taken)',
  GW_ERR_XDS_RESOURCE: 'an xDS resource does not encode; the message has the path of the bad field',
  // Bench (bench/)
  GW_ERR_BENCH_OPTION: 'a bench option is wrong (unknown scenario, bad count, ...)',
  GW_ERR_BENCH_WORKER: 'the bench load-generator process failed, exited or did not answer in time',
  GW_ERR_BENCH_RESULT: 'a file given to the bench\'s --compare is not a result this version understands',
} as const satisfies Record<`GW_ERR_${string}`, string>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** One row per close code this project sends, receives or reports (RFC 6455 §7.4.1). */
export interface CloseCodeInfo {
  readonly code: number;
  readonly name: string;
  readonly meaning: string;
  readonly sentBy: string;
  /** false: only ever reported locally (RFC 6455 forbids putting it in a close frame). */
  readonly onWire: boolean;
  /** Whether SessionKeeper opens the session again after it: a close the server may recover from. */
  readonly reopen: boolean;
}

export const CLOSE_CODES = [
  { code: 1000, name: 'NORMAL', meaning: 'done; the session is over', sentBy: 'either side when it is done (the backend echoes a client\'s close)', onWire: true, reopen: false },
  { code: 1001, name: 'GOING_AWAY', meaning: 'backend shutting down, or a drained endpoint\'s deadline reached: come back elsewhere', sentBy: 'backend (backend/server.ts)', onWire: true, reopen: true },
  { code: 1002, name: 'PROTOCOL_ERROR', meaning: 'a frame that breaks RFC 6455 (unmasked, reserved bits or opcodes, bad close code, ...)', sentBy: '`ws`, either side', onWire: true, reopen: false },
  { code: 1003, name: 'UNSUPPORTED_DATA', meaning: 'a binary frame on chat, which takes JSON text only', sentBy: 'backend (backend/routes.ts)', onWire: true, reopen: false },
  { code: 1005, name: 'NO_STATUS', meaning: 'the close frame carried no code', sentBy: 'never on the wire: a local report', onWire: false, reopen: true },
  { code: 1006, name: 'ABNORMAL', meaning: 'the connection was lost without a close frame (crash, cut, hard-stop-after; a session the backend dropped for pongs owed or writes stalled)', sentBy: 'never on the wire: a local report', onWire: false, reopen: true },
  { code: 1007, name: 'INVALID_PAYLOAD', meaning: 'invalid UTF-8 in a text message or close reason', sentBy: '`ws`, either side', onWire: true, reopen: false },
  { code: 1008, name: 'POLICY_VIOLATION', meaning: 'message rate, room full, slow consumer, unsent bytes of one HTTP/2 connection, too many fragments or buffered chunks, bad feed rate', sentBy: 'backend (backend/routes.ts, backend/outbound-guard.ts; `ws` for fragments and chunks)', onWire: true, reopen: false },
  { code: 1009, name: 'MESSAGE_TOO_BIG', meaning: 'a message above maxPayloadBytes', sentBy: '`ws` on the backend', onWire: true, reopen: false },
  { code: 1011, name: 'INTERNAL_ERROR', meaning: 'the backend failed serving the session (a room bus error)', sentBy: 'backend (backend/routes.ts)', onWire: true, reopen: true },
  { code: 1012, name: 'SERVICE_RESTART', meaning: 'the server restarts', sentBy: 'not sent here; other servers may', onWire: true, reopen: true },
  { code: 1013, name: 'TRY_AGAIN_LATER', meaning: 'the server is overloaded for now', sentBy: 'not sent here; other servers may', onWire: true, reopen: true },
  { code: 1015, name: 'TLS_HANDSHAKE', meaning: 'the TLS handshake failed', sentBy: 'never on the wire: a local report', onWire: false, reopen: false },
] as const satisfies readonly CloseCodeInfo[];

type CloseCodeRow = (typeof CLOSE_CODES)[number];

/** `CloseCode.GOING_AWAY` === 1001: the names of the CLOSE_CODES rows, for the places that close. */
export const CloseCode = Object.freeze(Object.fromEntries(CLOSE_CODES.map((r) => [r.name, r.code]))) as {
  readonly [R in CloseCodeRow as R['name']]: R['code'];
};

/**
 * Whether a session closed with `code` should be opened again. Codes not in the table (4000-4999
 * application codes included) mean stop: the server said something we have no rule for.
 */
export function reopensAfter(code: number): boolean {
  return CLOSE_CODES.find((r) => r.code === code)?.reopen ?? false;
}

export abstract class GatewayError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(redactSecrets(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }
}

/** A config field failed validation at start-up; `field` is the dotted path of the bad field. */
export class ConfigError extends GatewayError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('GW_ERR_CONFIG', `invalid config field "${field}": ${message}`);
    this.field = field;
  }
}

/** A command line a command cannot take (unknown flag, missing value, stray argument): exit code 2. */
export class UsageError extends GatewayError {
  constructor(message: string) {
    super('GW_ERR_USAGE', message);
  }
}

/** The peer's SETTINGS frame did not carry SETTINGS_ENABLE_CONNECT_PROTOCOL=1 (RFC 8441 §3). */
export class ExtendedConnectUnsupportedError extends GatewayError {
  constructor(origin: string) {
    super(
      'GW_ERR_NO_EXTENDED_CONNECT',
      `${origin} did not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL; it cannot carry WebSockets over HTTP/2 (RFC 8441)`,
    );
  }
}

/** The server answered the WebSocket handshake with something other than 200 (h2) or 101 (h1). */
export class HandshakeRejectedError extends GatewayError {
  readonly status: number;
  constructor(status: number, path: string) {
    super('GW_ERR_HANDSHAKE_REJECTED', `WebSocket handshake for ${path} rejected with HTTP status ${status}`);
    this.status = status;
  }
}

/** The server picked a subprotocol the client never offered, or none when one was required. */
export class SubprotocolError extends GatewayError {
  constructor(message: string) {
    super('GW_ERR_SUBPROTOCOL', message);
  }
}

/** The HTTP/2 stream carrying a WebSocket was reset before the handshake finished. */
export class StreamResetError extends GatewayError {
  readonly rstCode: number | undefined;
  constructor(rstCode: number | undefined, detail: string) {
    super('GW_ERR_STREAM_RESET', `HTTP/2 stream reset (RST_STREAM code ${rstCode ?? 'unknown'}): ${detail}`);
    this.rstCode = rstCode;
  }
}

/** The HTTP/2 connection could not be established or died before the stream opened. */
export class ConnectionError extends GatewayError {
  constructor(message: string, cause?: unknown) {
    super('GW_ERR_CONNECTION', message, { cause });
  }
}

/** A bounded wait (handshake, SETTINGS, drain) ran out. */
export class TimeoutError extends GatewayError {
  constructor(what: string, ms: number) {
    super('GW_ERR_TIMEOUT', `${what} did not complete within ${ms} ms`);
  }
}

/** The installed `ws` no longer has the internals lib/ws-h2-adapter.ts relies on. */
export class WsInternalsChangedError extends GatewayError {
  constructor(detail: string) {
    super(
      'GW_ERR_WS_INTERNALS',
      `the installed "ws" package changed an internal that lib/ws-h2-adapter.ts depends on: ${detail}. ` +
        'Pin ws to a tested version or update the adapter.',
    );
  }
}

/** A required external program (haproxy, redis-server, ...) is not installed. */
export class MissingToolError extends GatewayError {
  constructor(tool: string, installHint: string) {
    super('GW_ERR_MISSING_TOOL', `"${tool}" was not found on PATH. Install it: ${installHint}`);
  }
}

/** A child process (HAProxy, a backend) failed to start or exited unexpectedly. */
export class ChildProcessError extends GatewayError {
  constructor(name: string, message: string) {
    super('GW_ERR_CHILD_PROCESS', `${name}: ${message}`);
  }
}

/** A port we were told to listen on is taken (HAProxy would silently share it via SO_REUSEPORT). */
export class PortInUseError extends GatewayError {
  constructor(host: string, port: number, who: string) {
    super('GW_ERR_PORT_IN_USE', `${host}:${port} (${who}) is already in use; stop whatever holds it or choose another port`);
  }
}

/** A request target (HTTP/1.1 request line, HTTP/2 `:path`) that is not a path we can route: answered 400. */
export class BadRequestTargetError extends GatewayError {
  /** The target, query values redacted. */
  readonly target: string;
  constructor(target: string, reason: string) {
    super('GW_ERR_BAD_REQUEST_TARGET', `bad request target ${JSON.stringify(target.slice(0, 200))}: ${reason}`);
    this.target = redactSecrets(target);
  }
}
