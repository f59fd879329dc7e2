import { GatewayError } from '../lib/errors.js';

// Errors the bench raises on purpose. Each has a stable code, like every GatewayError.

/** A bench option is wrong (unknown scenario, bad count, ...). */
export class BenchOptionError extends GatewayError {
  constructor(message: string) {
    super('GW_ERR_BENCH_OPTION', message);
  }
}

/** The load-generator process failed, exited, or did not answer in time. */
export class BenchWorkerError extends GatewayError {
  constructor(message: string, cause?: unknown) {
    super('GW_ERR_BENCH_WORKER', message, { cause });
  }
}

/** A result file given to --compare is not a bench result this version understands. */
export class BenchResultError extends GatewayError {
  constructor(file: string, message: string) {
    super('GW_ERR_BENCH_RESULT', `${file}: ${message}`);
  }
}
