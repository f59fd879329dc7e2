import { ENVOY_INSTALL_HINT, findEnvoyBinary } from '../../gateway/envoy/binary.js';

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
