import { describe } from 'vitest';
import { envoySkipReason } from './envoy.js';

// The front matrix: every front-agnostic suite runs once per front, under one name each, so the
// count reporter (front-count-reporter.ts) can say how many tests ran against each.

export type FrontName = 'haproxy' | 'envoy';
export const FRONTS: readonly FrontName[] = ['envoy', 'haproxy'];

/** The tag a test's full name carries for its front. */
export const frontTag = (front: FrontName) => `[${front}]`;

/**
 * `describe` once per front. Where no Envoy is installed the Envoy half is skipped and says why —
 * or, under REQUIRE_ENVOY=1 (CI), the file fails.
 */
export function describeEachFront(title: string, body: (front: FrontName) => void): void {
  for (const front of FRONTS) {
    const skip = front === 'envoy' ? envoySkipReason(title) : undefined;
    describe.skipIf(skip !== undefined)(`${frontTag(front)} ${title}`, () => body(front));
  }
}
