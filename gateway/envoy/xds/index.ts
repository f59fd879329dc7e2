// The Envoy driver: an xDS (ADS, state-of-the-world) control plane over the EndpointRegistry.
// See docs/xds.md.
export {
  startXdsServer,
  classifyNode,
  XdsServer,
  type StartXdsServerOptions,
  type NodeStatus,
  type NodeKind,
  type TypeStatus,
  type SentInfo,
  type AckInfo,
  type NackInfo,
  type XdsAckEvent,
  type XdsNackEvent,
  type XdsResponseEvent,
} from './server.js';
export { TypeUrl, RESOURCE_TYPE_URLS, TYPE_SHORT, type ResourceTypeUrl } from './protos.js';
export { encodeResource, decodeResource, typeNameOf, type Json, type JsonObject } from './codec.js';
export { XdsError } from './errors.js';
