import * as hdr from 'hdr-histogram-js';
import type { WsClient, WsSession } from '../client/types.js';

// Open N sessions on one client, then echo M messages on each (one outstanding per session) and
// record the round trips. Used by the demo table; the bench builds its scenarios from the same parts.

export interface EchoProbeOptions {
  sessions: number;
  messagesPerSession: number;
  payloadBytes?: number;
  path?: string;
  onProgress?: (done: number, total: number, phase: 'open' | 'echo') => void;
}

export interface EchoProbeResult {
  transport: 'h1' | 'h2';
  sessions: number;
  /** Client TCP connections that carried them. */
  tcpConnections: number;
  openMs: number;
  rttMs: { p50: number; p99: number; max: number };
  echoes: number;
  /** Replies that did not match what was sent (must be 0). */
  mismatches: number;
  spread: Record<string, number>;
}

function echoOnce(session: WsSession, payload: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onClose = (code: number) => reject(new Error(`session closed (${code}) during echo`));
    session.ws.once('close', onClose);
    session.ws.once('message', (data) => {
      session.ws.off('close', onClose);
      resolve(data.toString() === payload);
    });
    session.ws.send(payload);
  });
}

export async function runEchoProbe(client: WsClient, options: EchoProbeOptions): Promise<EchoProbeResult> {
  const { sessions: n, messagesPerSession: m, onProgress } = options;
  const path = options.path ?? '/echo';
  const filler = 'x'.repeat(Math.max(0, (options.payloadBytes ?? 32) - 12));

  let opened = 0;
  const t0 = performance.now();
  const sessions = await Promise.all(
    Array.from({ length: n }, async () => {
      const s = await client.open(path);
      onProgress?.(++opened, n, 'open');
      return s;
    }),
  );
  const openMs = performance.now() - t0;
  const tcpConnections = client.stats().connections;

  // Microsecond resolution, up to 60 s.
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let done = 0;
  let mismatches = 0;
  await Promise.all(
    sessions.map(async (s, i) => {
      for (let k = 0; k < m; k++) {
        const payload = `${i}:${k}:${filler}`;
        const start = performance.now();
        if (!(await echoOnce(s, payload))) mismatches++;
        histogram.recordValue(Math.round((performance.now() - start) * 1000));
        onProgress?.(++done, n * m, 'echo');
      }
    }),
  );

  const spread: Record<string, number> = {};
  for (const s of sessions) spread[s.backendId ?? '?'] = (spread[s.backendId ?? '?'] ?? 0) + 1;
  for (const s of sessions) s.ws.close(1000, 'probe done');
  const result: EchoProbeResult = {
    transport: client.transport,
    sessions: n,
    tcpConnections,
    openMs,
    rttMs: {
      p50: histogram.getValueAtPercentile(50) / 1000,
      p99: histogram.getValueAtPercentile(99) / 1000,
      max: histogram.maxValue / 1000,
    },
    echoes: done,
    mismatches,
    spread,
  };
  histogram.destroy();
  return result;
}
