import {
  create,
  createFileRegistry,
  type DescFile,
  type FileRegistry,
  fromBinary,
} from "@bufbuild/protobuf";
import * as wkt from "@bufbuild/protobuf/wkt";
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
  const asked = new Set<string>();
  let pending: ServerReflectionRequest["messageRequest"][] = [
    { case: "fileContainingSymbol", value: symbol },
  ];
  while (pending.length > 0) {
    const requests = pending.map((messageRequest) => ({ host: "", messageRequest }));
    for (const p of pending) if (p.case === "fileByFilename") asked.add(p.value);
    pending = [];
    for await (const res of client.serverReflectionInfo(toAsync(requests))) {
      const answer = res.messageResponse;
      // A file the server cannot give by name is dealt with by withImportsResolved.
      if (
        answer.case === "errorResponse" &&
        res.originalRequest?.messageRequest.case === "fileByFilename"
      )
        continue;
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
        if (!files.has(dep) && !asked.has(dep) && !pending.some((p) => p.value === dep))
          pending.push({ case: "fileByFilename", value: dep });
      }
    }
  }
  return createFileRegistry(create(FileDescriptorSetSchema, { file: withImportsResolved(files) }));
}

const wellKnown = Object.entries(wkt)
  .filter(([name]) => name.startsWith("file_google_protobuf_"))
  .map(([, file]) => file as DescFile);

async function* toAsync<T>(items: T[]): AsyncIterable<T> {
  yield* items;
}

/**
 * Imports the server did not send: the well-known types come from @bufbuild/protobuf; any
 * other (e.g. google/api/annotations.proto, which only adds options) is dropped from the
 * import list, since options do not change how a message is encoded.
 */
function withImportsResolved(files: Map<string, FileDescriptorProto>): FileDescriptorProto[] {
  const all = new Map(files);
  for (const file of files.values()) {
    for (const dep of file.dependency) {
      if (all.has(dep)) continue;
      const known = wellKnown.find((f) => f.proto.name === dep);
      if (known) all.set(dep, known.proto);
    }
  }
  for (const file of all.values()) file.dependency = file.dependency.filter((d) => all.has(d));
  // createFileRegistry wants every file after the files it imports.
  const ordered: FileDescriptorProto[] = [];
  const placed = new Set<string>();
  const place = (file: FileDescriptorProto) => {
    if (placed.has(file.name)) return;
    placed.add(file.name);
    for (const dep of file.dependency) place(all.get(dep) as FileDescriptorProto);
    ordered.push(file);
  };
  for (const file of all.values()) place(file);
  return ordered;
}
