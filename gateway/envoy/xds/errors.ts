import { GatewayError, type ErrorCode } from '../../../lib/errors.js';

/**
 * Something the xDS control plane could not do: load the Envoy protos (`GW_ERR_XDS_PROTOS`),
 * bind its port (`GW_ERR_XDS_BIND`), or encode a resource (`GW_ERR_XDS_RESOURCE`, with the path of
 * the offending field in the message).
 */
export class XdsError extends GatewayError {
  constructor(code: Extract<ErrorCode, `GW_ERR_XDS_${string}`>, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}
