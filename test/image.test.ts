import { spawn, spawnSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENVOY_VERSION } from '../gateway/envoy/binary.js';
import WebSocket from 'ws';
import { freePort } from '../lib/ports.js';
import { echo } from './helpers/stack.js';

// The Dockerfile, checked without Docker (none can run on our build machines): what it says is
// parsed and held against the repository, and what it does to the code — a production-only
// `npm ci` plus the directories it copies — is replayed in a temporary directory, where the
// services' entry points must load and a backend must serve.

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dockerfile = fs.readFileSync(path.join(repo, 'Dockerfile'), 'utf8');

interface Instruction {
  op: string;
  args: string;
  stage: string;
}

/** Instructions with `\` continuations joined and comments dropped, each tagged with its stage name. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = '';
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!pending && (line === '' || line.startsWith('#'))) continue;
    pending += (pending ? ' ' : '') + line.replace(/\\$/, '').trim();
    if (line.endsWith('\\')) continue;
    const [op, ...rest] = pending.split(/\s+/);
    const args = rest.join(' ');
    if (op!.toUpperCase() === 'FROM') stage = / AS (\S+)$/i.exec(args)?.[1] ?? '';
    out.push({ op: op!.toUpperCase(), args, stage });
    pending = '';
  }
  return out;
}

const all = instructions(dockerfile);
const inStage = (stage: string) => all.filter((i) => i.stage === stage);
const copies = all.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'));
/** Repository paths the image copies (every COPY source). */
const copied = copies.flatMap((i) => i.args.split(/\s+/).slice(0, -1));
const ignored = fs
  .readFileSync(path.join(repo, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

describe('Dockerfile (read, not built: no Docker here)', () => {
  it('pulls pinned images: node 20 slim, and an exact Envoy release', () => {
    const stages = new Set(all.map((i) => i.stage));
    const froms = all.filter((i) => i.op === 'FROM').map((i) => i.args.split(/\s+/)[0]!).filter((f) => !stages.has(f));
    expect(froms).toContain('node:20-bookworm-slim');
    expect(froms.find((f) => f.startsWith('envoyproxy/envoy:'))).toMatch(/^envoyproxy\/envoy:v\d+\.\d+\.\d+$/);
    // The same release as the PyPI wheel the tests run (envoy/VERSION).
    expect(froms.find((f) => f.startsWith('envoyproxy/envoy:'))).toBe(`envoyproxy/envoy:v${ENVOY_VERSION}`);
    for (const f of froms) expect(f, f).not.toMatch(/:latest$|-latest$|^[^:]+$/);
  });

  it('has the targets compose builds; the app runs as `node` with a health check, and envoy inherits both', () => {
    expect(all.filter((i) => i.op === 'FROM').map((i) => i.stage)).toEqual(['envoy-bin', 'app', 'envoy']);
    const app = inStage('app');
    const user = app.findIndex((i) => i.op === 'USER');
    expect(app[user]?.args).toBe('node');
    expect(user).toBeLessThan(app.findIndex((i) => i.op === 'CMD'));
    expect(app.some((i) => i.op === 'HEALTHCHECK' && i.args.includes('HEALTHCHECK_URL'))).toBe(true);
    expect(all.find((i) => i.op === 'FROM' && i.stage === 'envoy')!.args).toMatch(/^app AS envoy$/);
    expect(inStage('envoy').some((i) => i.op === 'USER' && i.args !== 'node')).toBe(false);
    expect(app.some((i) => i.op === 'RUN' && /npm ci --omit=dev/.test(i.args))).toBe(true);
    // Processes get signals themselves (drain on SIGTERM): node directly, never through npm.
    for (const i of all.filter((x) => x.op === 'CMD' || x.op === 'ENTRYPOINT')) expect(i.args, i.args).not.toMatch(/"npm"/);
  });

  it('copies only paths that exist and that .dockerignore does not drop', () => {
    expect(copied.length).toBeGreaterThan(5);
    for (const p of copied) {
      expect(fs.existsSync(path.join(repo, p)), p).toBe(true);
      expect(ignored, p).not.toContain(p);
    }
    // What the tests need but the image does not.
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'test', '.gateway']));
    expect(copied).not.toContain('test');
  });

  it('production dependencies cover every package the copied code imports', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    const used = new Map<string, string>();
    const walk = (dir: string) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (/\.(ts|mjs|js)$/.test(entry.name)) {
          const text = fs.readFileSync(file, 'utf8');
          for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+|'--import',\s*)'([^'./][^']*)'/g)) {
            const spec = m[1]!;
            const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
            if (!builtins.has(spec) && !builtins.has(name)) used.set(name, path.relative(repo, file));
          }
        }
      }
    };
    for (const p of copied) if (fs.statSync(path.join(repo, p)).isDirectory()) walk(path.join(repo, p));
    expect(used.size).toBeGreaterThan(5); // the scan found the imports (ws, pino, zod, tsx, ...)
    for (const [name, where] of used) expect(Object.keys(pkg.dependencies), `${name} (imported by ${where})`).toContain(name);
  });
});

describe('the image’s install, replayed in a temporary directory', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'image-replay-'));
  const env = { ...process.env, NODE_ENV: 'production', LOG_FORMAT: 'json', LOG_LEVEL: 'warn' };
  let installNote = '';

  beforeAll(() => {
    for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(repo, f), path.join(dir, f));
    const args = ['ci', '--omit=dev', '--no-audit', '--no-fund'];
    // The CI's own `npm ci` filled the npm cache; offline first, so this needs no network.
    let r = spawnSync('npm', [...args, '--offline'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) {
      installNote = `offline install failed (${r.stderr.trim().split('\n').at(-1)}); retried with --prefer-offline`;
      console.warn(`[image.test] ${installNote}`);
      r = spawnSync('npm', [...args, '--prefer-offline'], { cwd: dir, encoding: 'utf8', timeout: 180_000 });
    }
    expect(r.status, r.stderr).toBe(0);
    for (const p of copied) fs.cpSync(path.join(repo, p), path.join(dir, p), { recursive: true });
  }, 240_000);

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('installs none of the test and build tooling', () => {
    // (@types/node may still come in: protobufjs depends on it.)
    for (const dev of ['typescript', 'vitest', 'playwright-core']) expect(fs.existsSync(path.join(dir, 'node_modules', dev)), dev).toBe(false);
  });

  it('a backend started as compose starts it serves /healthz and echoes, and drains on SIGTERM (exit 0)', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', 'backend/main.ts', '--id', 'b1', '--port', String(port), '--host', '127.0.0.1'], { cwd: dir, env, stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const deadline = Date.now() + 20_000;
      let health: Response | undefined;
      while (!health?.ok && Date.now() < deadline) {
        health = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
        if (!health?.ok) await new Promise((r) => setTimeout(r, 100));
      }
      expect(health?.status).toBe(200);
      const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`);
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      expect(await echo(ws, 'from the image')).toBe('from the image');
      ws.close();
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 60_000);

  it.each([
    ['gateway/main.ts', ['--no-such-flag'], 2, /unknown flag --no-such-flag/],
    ['gateway/envoy/restarter-main.ts', ['--no-such-flag'], 2, /usage: node --import tsx gateway\/envoy\/restarter-main.ts/],
    ['bench/main.ts', ['--routes', 'nowhere'], 2, /unknown route "nowhere"/],
  ] as const)('%s loads with production dependencies only (a bad flag is refused by the code, not by a missing module)', (entry, args, code, message) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', entry, ...args], { cwd: dir, env, encoding: 'utf8', timeout: 30_000 });
    expect(r.stdout + r.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|Cannot find (module|package)/);
    expect(r.stdout + r.stderr).toMatch(message);
    expect(r.status).toBe(code);
  });
});
