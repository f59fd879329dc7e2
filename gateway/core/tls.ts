import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ConfigError, MissingToolError } from '../../lib/errors.js';

// The front's TLS certificate. A user-given cert/key pair wins; otherwise a self-signed one is made
// on first start (openssl CLI) into the state directory and reused afterwards, so clients can pin it
// with `--ca <stateDir>/tls/cert.pem` (MuxClient verifies certificates by default).

const run = promisify(execFile);

export interface FrontCertificate {
  cert: string;
  key: string;
  /** cert + key in one file, the form HAProxy's `crt` wants. */
  pem: string;
  selfSigned: boolean;
}

export async function ensureCertificate(stateDir: string, given: { cert?: string; key?: string }, hosts: string[]): Promise<FrontCertificate> {
  const dir = path.join(path.resolve(stateDir), 'tls');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pem = path.join(dir, 'front.pem');
  if (given.cert || given.key) {
    if (!given.cert || !given.key) throw new ConfigError('tlsCert/tlsKey', 'give both or neither');
    writeFileSync(pem, readFileSync(given.cert, 'utf8') + '\n' + readFileSync(given.key, 'utf8'), { mode: 0o600 });
    return { cert: given.cert, key: given.key, pem, selfSigned: false };
  }
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  if (!existsSync(cert) || !existsSync(key)) {
    const san = hosts.map((h) => (/^[\d.]+$/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
    try {
      await run('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '365',
        '-subj', '/CN=h2-ws-gateway local', '-addext', `subjectAltName=${san}`, '-keyout', key, '-out', cert,
      ]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new MissingToolError('openssl', 'sudo apt-get install -y openssl, or give --tls-cert and --tls-key');
      throw err;
    }
  }
  writeFileSync(pem, readFileSync(cert, 'utf8') + '\n' + readFileSync(key, 'utf8'), { mode: 0o600 });
  return { cert, key, pem, selfSigned: true };
}
