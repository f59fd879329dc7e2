import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withoutSecrets } from '../../../lib/config.js';

// `envoy --mode validate`: the authority on an Envoy config. Envoy parses the file, applies every
// proto constraint, builds the listeners and clusters (route → cluster references, certificate
// files, extension configs) and exits 0 or prints why not, without binding a port.

export interface EnvoyVerdict {
  ok: boolean;
  /** Envoy's output (stdout and stderr), as printed. */
  output: string;
}

/** Runs `<bin> --mode validate -c <file> [extraArgs]` (synchronously: it takes tens of milliseconds). */
export function envoyValidate(bin: string, file: string, extraArgs: readonly string[] = [], timeoutMs = 60_000): EnvoyVerdict {
  const r = spawnSync(bin, ['--mode', 'validate', '-c', path.resolve(file), '--log-level', 'warn', ...extraArgs], {
    env: withoutSecrets(process.env),
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 16 * 1024 * 1024,
  });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  if (r.error) return { ok: false, output: `could not run ${bin}: ${r.error.message}${output ? `\n${output}` : ''}` };
  return { ok: r.status === 0, output: output || `exit ${r.status ?? r.signal}` };
}

/**
 * Envoy's error without its log prefix, short enough to read: the first line (where Envoy names the
 * problem) and, when Envoy dumps the message in between, the last one (where a constraint says why).
 */
export function envoyError(output: string, width = 600): string[] {
  const lines = output
    .trim()
    .split('\n')
    .map((l) => l.replace(/^\[[^\]]*\]\[\d+\]\[(\w+)\]\[\w+\] \[[^\]]*\] /, '$1: '))
    // protobuf pads its status text with random runs of spaces; the config Envoy re-prints as JSON
    // after "Unable to parse JSON as proto (…): " is the file itself.
    .map((l) => l.replace(/ {2,}/g, ' ').replace(/^(.*Unable to parse JSON as proto \(.*\)): \{.*$/, '$1'))
    .map((l) => (l.length > width ? `${l.slice(0, width)}…` : l));
  return lines.length > 3 ? [lines[0]!, `… (${lines.length - 2} lines)`, lines.at(-1)!] : lines;
}

/** Every *.yaml / *.yml / *.json directly under `dir` (default: the repo's envoy/). */
export function envoyConfigFiles(dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../envoy')): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}
