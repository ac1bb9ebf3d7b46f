import { makeGenericClientConstructor, type ChannelCredentials, type ClientOptions } from "@grpc/grpc-js";
import { ClientServiceService, type ClientServiceClient } from "../../proto/gen/vigil/v1/client.js";
import { RelayServiceService, type RelayServiceClient } from "../../proto/gen/vigil/v1/relay.js";
import { decodeFrame, encodeFrame } from "./codec.js";

const frameCodec = {
  requestSerialize: encodeFrame,
  requestDeserialize: decodeFrame,
  responseSerialize: encodeFrame,
  responseDeserialize: decodeFrame,
};

/** The generated service definitions, with the byte-carrying methods on the fast frame codec. */
export const RelayService = {
  ...RelayServiceService,
  tunnel: { ...RelayServiceService.tunnel, ...frameCodec },
} as const;
export const ClientService = {
  ...ClientServiceService,
  connect: { ...ClientServiceService.connect, ...frameCodec },
} as const;

type ClientConstructor<T> = new (
  address: string,
  credentials: ChannelCredentials,
  options?: Partial<ClientOptions>,
) => T;

export const RelayClient = makeGenericClientConstructor(
  RelayService,
  "vigil.v1.RelayService",
) as unknown as ClientConstructor<RelayServiceClient>;
export const ConnectClient = makeGenericClientConstructor(
  ClientService,
  "vigil.v1.ClientService",
) as unknown as ClientConstructor<ClientServiceClient>;
