// Hot restart, one interface for both engines. A restart starts a new generation that takes the
// listeners; the old generation stops accepting, tells HTTP/2 clients GOAWAY(NO_ERROR), and keeps
// serving the sessions it holds until they close or its deadline (HAProxy `hard-stop-after`, Envoy
// `--parent-shutdown-time-s`) passes.

export interface Generation {
  generation: number;
  pid: number;
  /** The generation taking new connections. */
  current: boolean;
  /** WebSocket sessions (streams) it still carries; null when it could not be asked. */
  sessions: number | null;
  /** Client TCP connections it still holds. */
  connections: number | null;
}

export interface RestartResult {
  engine: 'haproxy' | 'envoy';
  generation: number;
  oldPids: number[];
  newPids: number[];
  durationMs: number;
}

export interface HotRestartEngine {
  readonly engine: 'haproxy' | 'envoy';
  restart(): Promise<RestartResult>;
  generations(): Promise<Generation[]>;
}
