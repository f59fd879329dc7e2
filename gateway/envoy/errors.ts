import { GatewayError } from '../../lib/errors.js';

/**
 * An Envoy config (bootstrap file or xDS resource) could not be checked or failed the check.
 * `problems` holds every problem found (YAML path + message), not only the first.
 */
export class EnvoyConfigError extends GatewayError {
  readonly problems: readonly string[];
  constructor(message: string, options: { problems?: readonly string[]; cause?: unknown } = {}) {
    super('GW_ERR_ENVOY_CONFIG', message, { cause: options.cause });
    this.problems = options.problems ?? [];
  }
}
