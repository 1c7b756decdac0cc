import {
  createRegistry,
  type DescExtension,
  type DescFile,
  type DescService,
  type Registry,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import * as v1 from "@quartet/proto/grpc/reflection/v1/reflection_pb";
import * as v1alpha from "@quartet/proto/grpc/reflection/v1alpha/reflection_pb";

/**
 * grpc.reflection.v1 and v1alpha ServerReflection over the files that define the served
 * services, so tools like `buf curl` and grpcurl can call a server without its .proto files.
 * Both versions share one wire shape, so one implementation answers both.
 */
export function registerReflection(router: ConnectRouter, services: DescService[]): void {
  const index = new DescriptorIndex(services);
  router.service(v1.ServerReflection, { serverReflectionInfo: (reqs) => index.answer(reqs) });
  router.service(v1alpha.ServerReflection, {
    // v1alpha messages have the same fields and numbers as v1.
    serverReflectionInfo: (reqs) =>
      index.answer(
        reqs as unknown as AsyncIterable<v1.ServerReflectionRequest>,
      ) as unknown as AsyncIterable<v1alpha.ServerReflectionResponse>,
  });
}

type ResponseInit = Omit<
  v1.ServerReflectionResponse,
  "$typeName" | "$unknown" | "validHost" | "originalRequest"
>["messageResponse"];

class DescriptorIndex {
  private readonly registry: Registry;
  private readonly filesByName: Map<string, DescFile>;
  private readonly serviceNames: string[];
  private readonly encoded = new Map<string, Uint8Array>();

  constructor(services: DescService[]) {
    this.filesByName = fileClosure(services);
    this.registry = createRegistry(...this.filesByName.values());
    this.serviceNames = [...new Set(services.map((s) => s.typeName))].sort();
  }

  async *answer(requests: AsyncIterable<v1.ServerReflectionRequest>) {
    for await (const request of requests) {
      yield {
        validHost: request.host,
        originalRequest: request,
        messageResponse: this.respond(request),
      } as v1.ServerReflectionResponse;
    }
  }

  private respond(request: v1.ServerReflectionRequest): ResponseInit {
    const req = request.messageRequest;
    switch (req.case) {
      case "listServices":
        return {
          case: "listServicesResponse",
          value: { service: this.serviceNames.map((name) => ({ name })) } as v1.ListServiceResponse,
        };
      case "fileByFilename":
        return this.files(this.filesByName.get(req.value), `file "${req.value}"`);
      case "fileContainingSymbol":
        return this.files(this.fileOfSymbol(req.value), `symbol "${req.value}"`);
      case "fileContainingExtension": {
        const extendee = this.registry.getMessage(req.value.containingType);
        const ext = extendee && this.registry.getExtensionFor(extendee, req.value.extensionNumber);
        return this.files(
          ext?.file,
          `extension ${req.value.extensionNumber} of "${req.value.containingType}"`,
        );
      }
      case "allExtensionNumbersOfType": {
        const message = this.registry.getMessage(req.value);
        if (!message) return notFound(`type "${req.value}"`);
        const numbers: number[] = [];
        for (const type of this.registry) {
          if (
            type.kind === "extension" &&
            (type as DescExtension).extendee.typeName === req.value
          ) {
            numbers.push((type as DescExtension).number);
          }
        }
        return {
          case: "allExtensionNumbersResponse",
          value: {
            baseTypeName: req.value,
            extensionNumber: numbers,
          } as v1.ExtensionNumberResponse,
        };
      }
      default:
        return {
          case: "errorResponse",
          value: {
            errorCode: 3,
            errorMessage: "empty reflection request: set one of message_request",
          } as v1.ErrorResponse,
        };
    }
  }

  /** Symbols are messages, enums, services, extensions, or methods and fields inside them. */
  private fileOfSymbol(symbol: string): DescFile | undefined {
    let name = symbol;
    while (name) {
      const found = this.registry.get(name);
      if (found) return found.file;
      name = name.slice(0, Math.max(0, name.lastIndexOf(".")));
    }
    return undefined;
  }

  /** The file and everything it imports: clients need the whole closure to resolve types. */
  private files(file: DescFile | undefined, what: string): ResponseInit {
    if (!file) return notFound(what);
    const closure: Uint8Array[] = [];
    const seen = new Set<string>();
    const visit = (f: DescFile) => {
      if (seen.has(f.name)) return;
      seen.add(f.name);
      closure.push(this.encode(f));
      for (const dep of f.dependencies) visit(dep);
    };
    visit(file);
    return {
      case: "fileDescriptorResponse",
      value: { fileDescriptorProto: closure } as v1.FileDescriptorResponse,
    };
  }

  private encode(file: DescFile): Uint8Array {
    let bytes = this.encoded.get(file.name);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.encoded.set(file.name, bytes);
    }
    return bytes;
  }
}

function notFound(what: string): ResponseInit {
  return {
    case: "errorResponse",
    value: { errorCode: 5, errorMessage: `${what} not found` } as v1.ErrorResponse,
  };
}

/** Every file the services are defined in, with everything those files import. */
function fileClosure(services: DescService[]): Map<string, DescFile> {
  const files = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (files.has(file.name)) return;
    for (const dep of file.dependencies) visit(dep);
    files.set(file.name, file);
  };
  for (const service of services) visit(service.file);
  return files;
}
