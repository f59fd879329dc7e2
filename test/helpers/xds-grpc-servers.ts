// Small real gRPC servers for the xDS tests: each answers `xdstest.Who/WhoAmI` with its own id, so a
// client sees which endpoint a call landed on. The service is defined from the .proto text below
// (protobufjs parse → @grpc/proto-loader fromJSON), no generated code.

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

const WHO_PROTO = `
syntax = "proto3";
package xdstest;
message WhoRequest {}
message WhoReply { string id = 1; }
service Who { rpc WhoAmI (WhoRequest) returns (WhoReply); }
`;

export interface WhoReply {
  id: string;
}
export interface WhoClient extends grpc.Client {
  whoAmI(req: object, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, reply?: WhoReply) => void): grpc.ClientUnaryCall;
}
type WhoClientCtor = new (target: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => WhoClient;

function whoPackage(): { service: grpc.ServiceDefinition; Client: WhoClientCtor } {
  const root = protobuf.parse(WHO_PROTO, { keepCase: true }).root;
  const def = protoLoader.fromJSON(root.toJSON(), { keepCase: true, defaults: true });
  const loaded = grpc.loadPackageDefinition(def) as unknown as { xdstest: { Who: WhoClientCtor & { service: grpc.ServiceDefinition } } };
  return { service: loaded.xdstest.Who.service, Client: loaded.xdstest.Who };
}

const who = whoPackage();
export const WhoClientCtor: WhoClientCtor = who.Client;

export interface WhoServer {
  id: string;
  host: string;
  port: number;
  /** Calls answered so far. */
  calls(): number;
  close(): Promise<void>;
}

export async function startWhoServer(id: string, host = '127.0.0.1'): Promise<WhoServer> {
  const server = new grpc.Server();
  let calls = 0;
  server.addService(who.service, {
    WhoAmI: (_call: grpc.ServerUnaryCall<object, WhoReply>, cb: grpc.sendUnaryData<WhoReply>) => {
      calls++;
      cb(null, { id });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    id,
    host,
    port,
    calls: () => calls,
    close: () =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 500);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      }),
  };
}

/** One unary call; resolves with the answering server's id (or the error). */
export function whoAmI(client: WhoClient, timeoutMs = 2_000): Promise<{ id?: string; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    client.whoAmI({}, { deadline: Date.now() + timeoutMs }, (err, reply) => resolve(err ? { error: err } : { id: reply?.id }));
  });
}
