import client from 'prom-client';

export type Transport = 'h1' | 'h2';

/** One transport's message tallies, in plain fields: the per-message path pays an increment. */
export interface Traffic {
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
}

const noTraffic = (): Traffic => ({ messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 });

/** Prometheus metrics of one backend; a private registry so several backends can share a process (tests). */
export class BackendMetrics {
  readonly registry = new client.Registry();
  readonly sessions: client.Gauge<'transport' | 'route'>;
  readonly handshakes: client.Counter<'transport' | 'route' | 'result'>;
  readonly messages: client.Counter<'direction' | 'transport'>;
  readonly bytes: client.Counter<'direction' | 'transport'>;
  readonly closes: client.Counter<'code'>;
  readonly limitHits: client.Counter<'limit'>;
  readonly handlerErrors: client.Counter<'handler'>;
  /**
   * What ws_messages_total and ws_bytes_total export, read on scrape: a labelled prom-client
   * inc() per message (four per echo) cost the backend about a quarter of its echo rate next to a
   * bare `ws` server; a field increment costs next to nothing.
   */
  readonly traffic: Record<Transport, Traffic> = { h1: noTraffic(), h2: noTraffic() };

  constructor(backendId: string) {
    this.registry.setDefaultLabels({ backend: backendId });
    client.collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.sessions = new client.Gauge({ name: 'ws_sessions', help: 'Open WebSocket sessions', labelNames: ['transport', 'route'], registers });
    this.handshakes = new client.Counter({
      name: 'ws_handshakes_total',
      help: 'WebSocket handshakes by outcome (ok, or the HTTP status sent)',
      labelNames: ['transport', 'route', 'result'],
      registers,
    });
    const traffic = this.traffic;
    const exportTraffic = (counter: client.Counter<'direction' | 'transport'>, inField: keyof Traffic, outField: keyof Traffic) => {
      counter.reset();
      for (const transport of ['h1', 'h2'] as const) {
        counter.inc({ direction: 'in', transport }, traffic[transport][inField]);
        counter.inc({ direction: 'out', transport }, traffic[transport][outField]);
      }
    };
    this.messages = new client.Counter({
      name: 'ws_messages_total',
      help: 'WebSocket messages',
      labelNames: ['direction', 'transport'],
      registers,
      collect() {
        exportTraffic(this, 'messagesIn', 'messagesOut');
      },
    });
    this.bytes = new client.Counter({
      name: 'ws_bytes_total',
      help: 'WebSocket payload bytes',
      labelNames: ['direction', 'transport'],
      registers,
      collect() {
        exportTraffic(this, 'bytesIn', 'bytesOut');
      },
    });
    this.closes = new client.Counter({ name: 'ws_closes_total', help: 'WebSocket sessions closed, by close code', labelNames: ['code'], registers });
    this.limitHits = new client.Counter({
      name: 'ws_limit_hits_total',
      help: 'Sessions refused or closed by a limit (auth, origin, per_ip, rate, slow_consumer, connection_unsent, write_stall, buffered_parts, room_size, heartbeat, handshake_timeout)',
      labelNames: ['limit'],
      registers,
    });
    this.handlerErrors = new client.Counter({
      name: 'backend_handler_errors_total',
      help: 'Exceptions that escaped a request, upgrade or stream handler (answered 500 or reset; a bug to look into)',
      labelNames: ['handler'],
      registers,
    });
  }
}
