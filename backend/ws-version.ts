// Which WebSocket protocol versions a backend speaks, checked the same way on both transports.
//
// RFC 6455 §4.2.2 (/version/) and §4.4: a server that does not speak the version a client asks for
// answers with an error status (426 Upgrade Required is the one the RFC names) and a
// Sec-WebSocket-Version header listing the versions it does speak. RFC 8441 §5 keeps that header on
// an extended CONNECT. These backends speak 13 only. Left to itself, `ws` also accepts 8 (hybi-08)
// on an HTTP/1.1 Upgrade, while the RFC 8441 path (lib/ws-h2-adapter.ts) accepts 13 only — so a
// version-8 client was refused over HTTP/2 and accepted over HTTP/1.1, and behind a front that turns
// one into the other it depended on the route. This check runs first on both paths.

/** The one version spoken here (RFC 6455). */
export const WS_VERSION = '13';

export interface VersionRefusal {
  status: 426;
  reason: string;
  /** To send with the refusal: the versions this server speaks. */
  headers: { 'sec-websocket-version': typeof WS_VERSION };
}

/** undefined when the client's Sec-WebSocket-Version is one spoken here; else what to answer. */
export function checkWsVersion(value: string | string[] | undefined): VersionRefusal | undefined {
  if (value === WS_VERSION) return undefined;
  const got = value === undefined ? 'none' : JSON.stringify([value].flat().join(', ').slice(0, 40));
  return { status: 426, reason: `Sec-WebSocket-Version must be ${WS_VERSION} (got ${got})`, headers: { 'sec-websocket-version': WS_VERSION } };
}
