// `npm run bench`: HTTP/2 multiplexed vs HTTP/1.1 Upgrade WebSockets, via the front and direct.
// See docs/bench.md. Component logs default to errors only here (set LOG_LEVEL to change it): the
// summary table owns stdout, the progress bar stderr. The level must be set before any module
// creates its logger, hence the dynamic import.
process.env.LOG_LEVEL ??= 'error';
const { cli } = await import('./cli.js');
await cli(process.argv.slice(2));
