import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

// The admin API's bearer token: ADMIN_TOKEN (config adminToken) when given, else one generated on
// first start into <stateDir>/admin-token (mode 600), which the CLI and the dashboard link read.

export function adminTokenFile(stateDir: string): string {
  return path.join(path.resolve(stateDir), 'admin-token');
}

export function ensureAdminToken(stateDir: string, given: string | undefined): string {
  if (given) return given;
  const file = adminTokenFile(stateDir);
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(path.dirname(file), { recursive: true });
  const token = randomBytes(24).toString('base64url');
  writeFileSync(file, token + '\n', { mode: 0o600 });
  return token;
}

/** For CLIs: the token a running gateway uses, or undefined with no way to find it. */
export function readAdminToken(stateDir: string, given: string | undefined): string | undefined {
  if (given) return given;
  const file = adminTokenFile(stateDir);
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}
