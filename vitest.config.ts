import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real HAProxy and backend processes; they share 2 cores.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    pool: 'forks',
    // default + one line saying how many tests ran against each front (test/helpers/front-matrix.ts).
    reporters: ['default', './test/helpers/front-count-reporter.ts'],
    // Child processes (backends) log at warn and above during tests.
    env: { LOG_LEVEL: 'warn', LOG_FORMAT: 'json' },
  },
});
