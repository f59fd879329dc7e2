export { H1Client, type H1ClientOptions } from './h1-client.js';
export { MuxClient, type MuxClientOptions } from './mux-client.js';
export type { ClientStats, OpenSessionOptions, WsClient, WsSession } from './types.js';
