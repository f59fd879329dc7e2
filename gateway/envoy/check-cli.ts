// `npm run envoy:check [-- FILE…]`: checks Envoy configs against Envoy's v3 API protos.
//
// With no FILE, every *.yaml / *.yml / *.json directly under envoy/ is checked as a bootstrap.
// One line per file (ok / FAIL with the number of problems), then one indented line per problem
// with file:line:col and the YAML path. When an `envoy` binary is on PATH (or ENVOY_BIN is set),
// each file also goes through `envoy --mode validate`; otherwise that step says it was skipped.
//
// Options: CHECK below (`npm run envoy:check -- --help`).
// Exit code: 0 all good, 1 any problem (or envoy --mode validate failed), 2 bad usage.

import path from 'node:path';
import { z } from 'zod';
import { commandLine, defineCommand } from '../../lib/cli.js';
import { GatewayError } from '../../lib/errors.js';
import { loadEnvoyApi } from './proto-root.js';
import {
  BOOTSTRAP_TYPE,
  encodeEnvoyMessage,
  envoyConfigFiles,
  formatProblem,
  validateEnvoyFile,
  validateWithEnvoyBinary,
} from './validate.js';
import { findEnvoyBinary } from './binary.js';

const out = (line = '') => process.stdout.write(`${line}\n`);

const CHECK = defineCommand({
  name: 'npm run envoy:check',
  synopsis: '[options] [FILE…]',
  about: [
    "Checks Envoy configs against Envoy's v3 API protos (and with `envoy --mode validate` when an",
    'envoy binary is found: ENVOY_BIN, or PATH). With no FILE, every *.yaml, *.yml and *.json',
    'directly under envoy/ is checked as a bootstrap. Exit code 0 all good, 1 any problem.',
  ].join(' '),
  options: z.object({
    type: z.string().optional().describe('check the files as another message type (e.g. envoy.config.listener.v3.Listener)'),
    strict: z.boolean().default(false).describe('warnings (deprecated fields, quoted numbers, …) also fail'),
    verbose: z.boolean().default(false).describe('list the @types resolved and the PGV rules met but not enforced'),
    noBinary: z.boolean().default(false).describe('do not run `envoy --mode validate` even if envoy is found'),
  }),
  positionals: true,
});

async function main(): Promise<number> {
  const { options: values, positionals } = commandLine(CHECK);
  const typeName = values.type ?? BOOTSTRAP_TYPE;
  const files = positionals.length > 0 ? positionals.map((f) => path.resolve(f)) : envoyConfigFiles();
  if (files.length === 0) {
    process.stderr.write('envoy:check: no Envoy config files found\n');
    return 2;
  }

  const api = loadEnvoyApi();
  out(
    `Envoy v3 API from @grpc/grpc-js-xds ${api.packageVersion}: ${api.loadedFiles.length} proto files loaded in ${api.loadMs} ms` +
      (api.excludedFiles.size ? `, ${api.excludedFiles.size} left out (they import protos the package does not ship)` : ''),
  );

  // `envoy --mode validate` reads bootstraps only.
  const bootstrap = typeName.replace(/^.*\//, '') === BOOTSTRAP_TYPE;
  const binary = values.noBinary || !bootstrap ? undefined : findEnvoyBinary();
  let failed = false;
  for (const file of files) {
    const rel = path.relative(process.cwd(), file);
    const shown = rel && !rel.startsWith('..') ? rel : file;
    let result;
    try {
      result = validateEnvoyFile(file, { typeName });
    } catch (err) {
      out(`FAIL ${shown}: ${(err as Error).message}`);
      failed = true;
      continue;
    }
    // Second opinion: protobufjs' strict proto3 JSON parser must accept what the walk accepted and
    // serialise it. Skipped when the walk already found legacy-syntax shapes (it would reject those).
    let wire = '';
    if (result.errors.length === 0 && !result.warnings.some((w) => w.kind === 'legacy_json')) {
      try {
        wire = `, ${encodeEnvoyMessage(typeName, result.json).length} bytes as wire format`;
      } catch (err) {
        result.warnings.push({ severity: 'warning', kind: 'proto3_json', path: '', message: (err as Error).message });
      }
    }
    const bad = result.errors.length > 0 || (values.strict && result.warnings.length > 0);
    failed ||= bad;
    const warnings = result.warnings.length ? `; ${result.warnings.length} warning(s)` : '';
    if (result.errors.length === 0) {
      out(`${bad ? 'FAIL' : 'ok  '} ${shown} (${result.type}; ${result.typesChecked.length} typed_config/Any checked${warnings}${wire})`);
    } else {
      out(`FAIL ${shown}: ${result.errors.length} problem(s)${warnings.replace(';', ',')}`);
    }
    for (const p of [...result.errors, ...result.warnings]) out(`  ${formatProblem(p, shown)}`);
    if (values.verbose) {
      for (const t of result.typesChecked) out(`  @type ${t}`);
      for (const r of result.unenforcedRules) out(`  not enforced: ${r}`);
    }
    if (binary) {
      const b = await validateWithEnvoyBinary(file);
      out(`  envoy --mode validate (${b.binary}): ${b.status}${b.status === 'ok' ? '' : `\n    ${b.detail.split('\n').slice(-15).join('\n    ')}`}`);
      if (b.status === 'failed') failed = true;
    }
  }
  if (!binary) {
    out(
      values.noBinary
        ? 'envoy --mode validate: skipped (--no-binary)'
        : !bootstrap
          ? `envoy --mode validate: skipped (it reads bootstraps, not ${typeName})`
          : 'envoy --mode validate: skipped: no envoy binary on PATH (set ENVOY_BIN or install Envoy to run it)',
    );
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const msg = err instanceof GatewayError ? `${err.code}: ${err.message}` : String((err as Error)?.stack ?? err);
    process.stderr.write(`envoy:check: ${msg}\n`);
    process.exitCode = 1;
  },
);
