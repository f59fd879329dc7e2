import type { Reporter, TestModule } from 'vitest/node';
import { FRONTS, frontTag } from './front-matrix.js';

// Prints, after every run, how many tests ran against each front (by the [front] tag in their
// names), so a run that silently skipped one half of the matrix shows it in one line.

export default class FrontCountReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const counts = new Map(FRONTS.map((f) => [f, { passed: 0, failed: 0, skipped: 0 }]));
    for (const m of testModules) {
      for (const t of m.children.allTests()) {
        const front = FRONTS.find((f) => t.fullName.includes(frontTag(f)));
        if (!front) continue;
        const state = t.result().state;
        const c = counts.get(front)!;
        if (state === 'passed') c.passed++;
        else if (state === 'failed') c.failed++;
        else c.skipped++;
      }
    }
    const line = [...counts].map(([f, c]) => `${f}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`).join(' · ');
    process.stdout.write(`\nfront matrix — ${line}\n`);
  }
}
