// Imported first by scripts/h2-upstream-stall.ts, before any module makes its logger: the terminal is
// for the report, so the front and the backend it starts log warnings and errors only, unless
// --verbose (or LOG_LEVEL) says otherwise.
if (!process.argv.slice(2).includes('--verbose')) process.env.LOG_LEVEL ??= 'warn';
