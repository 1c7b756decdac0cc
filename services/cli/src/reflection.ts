import { create, createFileRegistry, type FileRegistry, fromBinary } from "@bufbuild/protobuf";
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  ServerReflection,
  type ServerReflectionRequest,
} from "@quartet/proto/grpc/reflection/v1/reflection_pb";

/**
 * Fetches, over one grpc.reflection.v1 stream, the file defining `symbol` and every file it
 * imports, and builds a registry from them. Reflection servers usually send the imports with
 * the first answer; any still missing are asked for by name.
 */
export async function fetchRegistry(transport: Transport, symbol: string): Promise<FileRegistry> {
  const client = createClient(ServerReflection, transport);
  const files = new Map<string, FileDescriptorProto>();
  let pending: ServerReflectionRequest["messageRequest"][] = [
    { case: "fileContainingSymbol", value: symbol },
  ];
  while (pending.length > 0) {
    const requests = pending.map((messageRequest) => ({ host: "", messageRequest }));
    pending = [];
    for await (const res of client.serverReflectionInfo(toAsync(requests))) {
      const answer = res.messageResponse;
      if (answer.case === "errorResponse") {
        throw new ConnectError(
          `${answer.value.errorMessage || "not found"}: ${symbol}`,
          answer.value.errorCode === Code.NotFound
            ? Code.NotFound
            : (answer.value.errorCode as Code),
        );
      }
      if (answer.case !== "fileDescriptorResponse") continue;
      for (const bytes of answer.value.fileDescriptorProto) {
        const file = fromBinary(FileDescriptorProtoSchema, bytes);
        files.set(file.name, file);
      }
    }
    for (const file of files.values()) {
      for (const dep of file.dependency) {
        if (!files.has(dep) && !pending.some((p) => p.value === dep))
          pending.push({ case: "fileByFilename", value: dep });
      }
    }
  }
  return createFileRegistry(create(FileDescriptorSetSchema, { file: [...files.values()] }));
}

async function* toAsync<T>(items: T[]): AsyncIterable<T> {
  yield* items;
}
