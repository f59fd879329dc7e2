// Every error this project raises on purpose is a GatewayError with a stable `code`.
// WebSocket-facing errors also carry the RFC 6455 close code they map to, so the
// place that closes a session never has to guess.

export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
});

export class GatewayError extends Error {
  readonly code: string;
  readonly closeCode: number;

  constructor(code: string, message: string, options: { closeCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.closeCode = options.closeCode ?? CloseCode.INTERNAL_ERROR;
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
    super('GW_ERR_SUBPROTOCOL', message, { closeCode: CloseCode.PROTOCOL_ERROR });
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
  readonly target: string;
  constructor(target: string, reason: string) {
    super('GW_ERR_BAD_REQUEST_TARGET', `bad request target ${JSON.stringify(target.slice(0, 200))}: ${reason}`);
    this.target = target;
  }
}

export const ERROR_CODES = [
  'GW_ERR_CONFIG',
  'GW_ERR_USAGE',
  'GW_ERR_NO_EXTENDED_CONNECT',
  'GW_ERR_HANDSHAKE_REJECTED',
  'GW_ERR_SUBPROTOCOL',
  'GW_ERR_STREAM_RESET',
  'GW_ERR_CONNECTION',
  'GW_ERR_TIMEOUT',
  'GW_ERR_WS_INTERNALS',
  'GW_ERR_MISSING_TOOL',
  'GW_ERR_CHILD_PROCESS',
  'GW_ERR_PORT_IN_USE',
  'GW_ERR_BAD_REQUEST_TARGET',
] as const;
