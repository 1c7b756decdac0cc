// A unary gRPC caller built on @grpc/grpc-js (the library the etcd3 client uses for the etcd
// side) for a Protobuf-ES service: the load generator then makes the same kind of call on both
// sides, so its own CPU per call does not differ between them.
import {
  create,
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { Client, credentials, Metadata } from "@grpc/grpc-js";

export type UnaryCaller<I extends DescMessage, O extends DescMessage> = (
  request: MessageInitShape<I>,
) => Promise<MessageShape<O>>;

/** One h2c connection to `address` (host:port) with `headers` on every call. */
export function grpcJsClient(address: string, headers: Record<string, string> = {}) {
  const client = new Client(address, credentials.createInsecure());
  const metadata = new Metadata();
  for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
  return {
    unary<S extends DescService, I extends DescMessage, O extends DescMessage>(
      service: S,
      method: { name: string; input: I; output: O },
    ): UnaryCaller<I, O> {
      const path = `/${service.typeName}/${method.name}`;
      const serialize = (m: MessageShape<I>) => Buffer.from(toBinary(method.input, m));
      const deserialize = (b: Buffer) => fromBinary(method.output, b);
      return (request) =>
        new Promise((resolve, reject) => {
          client.makeUnaryRequest(
            path,
            serialize,
            deserialize,
            create(method.input, request),
            metadata,
            (err, res) => (err ? reject(err) : resolve(res!)),
          );
        });
    },
    close: () => client.close(),
  };
}
