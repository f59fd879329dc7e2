import http2 from 'node:http2';

/** SETTINGS a route's server sent, as seen by a plain node:http2 client. */
export interface PeerSettings {
  maxConcurrentStreams: number | null;
  initialWindowSize: number | null;
  maxFrameSize: number | null;
  enableConnectProtocol: boolean;
  /** Connection-level receive window the peer granted us after the preface (bytes). */
  connectionWindow: number | null;
}

/** The SETTINGS (and connection window) a route's server sends to a fresh HTTP/2 client. */
export async function probePeerSettings(url: string, timeoutMs = 5_000): Promise<PeerSettings | undefined> {
  const session = http2.connect(url);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
      session.once('remoteSettings', () => {
        clearTimeout(timer);
        resolve();
      });
      session.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    // Let a connection-level WINDOW_UPDATE that follows SETTINGS arrive.
    await new Promise((r) => setTimeout(r, 50));
    const s = session.remoteSettings;
    return {
      maxConcurrentStreams: s.maxConcurrentStreams ?? null,
      initialWindowSize: s.initialWindowSize ?? null,
      maxFrameSize: s.maxFrameSize ?? null,
      enableConnectProtocol: Boolean(s.enableConnectProtocol),
      connectionWindow: session.state.remoteWindowSize ?? null,
    };
  } catch {
    return undefined;
  } finally {
    session.destroy();
  }
}
