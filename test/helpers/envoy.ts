import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ENVOY_INSTALL_HINT, findEnvoyBinary } from '../../gateway/envoy/binary.js';
import { envoyValidate, type EnvoyVerdict } from '../../gateway/envoy/check/run-envoy.js';

// One rule for every test that needs the real Envoy: where none is installed the test is skipped
// and says why — except under REQUIRE_ENVOY=1 (set by .ci/run), where a missing Envoy fails the
// run, so CI can never pass with the Envoy half skipped.

export const envoyBin: string | undefined = findEnvoyBinary();

/** undefined when Envoy can run here; otherwise the reason (printed), or a thrown error under REQUIRE_ENVOY=1. */
export function envoySkipReason(suite: string): string | undefined {
  if (envoyBin) return undefined;
  const reason = ENVOY_INSTALL_HINT;
  if (process.env.REQUIRE_ENVOY === '1') throw new Error(`[${suite}] REQUIRE_ENVOY=1 but ${reason}`);
  console.warn(`[${suite}] SKIPPING the Envoy tests: ${reason}`);
  return reason;
}

/** `envoy --mode validate` on `text` (written to a temporary file); needs `envoyBin`. */
export function envoyValidateText(text: string, extraArgs: readonly string[] = []): EnvoyVerdict {
  if (!envoyBin) throw new Error('envoyValidateText needs an Envoy binary (guard the test with envoySkipReason)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'envoy-validate-'));
  try {
    const file = path.join(dir, 'envoy.yaml');
    fs.writeFileSync(file, text);
    return envoyValidate(envoyBin, file, extraArgs);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
