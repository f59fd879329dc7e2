import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// The independent RFC 8441 client (test/peers/rfc8441_client.py: Debian's python3-h2 + python3-wsproto).

export const PYTHON = '/usr/bin/python3';
const PEER = fileURLToPath(new URL('../peers/rfc8441_client.py', import.meta.url));

/** Why the Python peer cannot run here, or undefined if it can. Never skip silently. */
export function pythonPeerUnavailable(): string | undefined {
  const probe = spawnSync(PYTHON, ['-c', 'import h2, wsproto'], { encoding: 'utf8', env: pythonEnv() });
  if (probe.error) return `${PYTHON} is not runnable (${probe.error.message})`;
  if (probe.status !== 0) return `${PYTHON} cannot import h2/wsproto: ${probe.stderr.trim().split('\n').pop()}`;
  return undefined;
}

/** A pyenv/virtualenv on the developer's PATH must not leak into Debian's interpreter. */
function pythonEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.PYTHONPATH;
  delete env.PYTHONHOME;
  delete env.VIRTUAL_ENV;
  return env;
}

/** Computed once; prints why when the peer cannot run, so a skip is never silent. */
export const peerSkipReason = pythonPeerUnavailable();
if (peerSkipReason) {
  console.warn(
    `[interop] SKIPPING the RFC 8441 Python peer tests: ${peerSkipReason}. ` +
      'Install the Debian packages: apt-get install -y python3-h2 python3-wsproto',
  );
}

export interface PeerReport {
  streams_opened: number;
  echoes_ok: number;
  echoes_expected: number;
  backends: Record<string, number>;
  protocol: string;
  close_codes: Record<string, number>;
  tcp_connections: number;
  errors: string[];
  stream_endings: Record<string, number>;
}

export interface PeerRun {
  exitCode: number;
  stderr: string;
  report: PeerReport;
}

/** Run the Python peer. Asynchronous on purpose: the backend lives in this process's event loop. */
export function runPeer(args: string[]): Promise<PeerRun> {
  return new Promise((resolve, reject) => {
    execFile(
      PYTHON,
      [PEER, ...args],
      // The peer bounds itself with --timeout; this is only a backstop should it hang anyway.
      { env: pythonEnv(), timeout: 55_000, maxBuffer: 4 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const exitCode = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        const line = stdout.trim().split('\n').pop() ?? '';
        try {
          resolve({ exitCode, stderr, report: JSON.parse(line) as PeerReport });
        } catch {
          reject(new Error(`peer printed no JSON (exit ${exitCode}, ${err?.message ?? ''}):\n${stdout}\n${stderr}`));
        }
      },
    );
  });
}

