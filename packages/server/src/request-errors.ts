import type { DescEnum, DescMessage, JsonReadOptions } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";

/**
 * JSON requests are read strictly: an unknown field or an unknown enum name is
 * InvalidArgument instead of being dropped (a typo such as `"failCode": "UNAVAILABLE"` for
 * `CODE_UNAVAILABLE` made the call succeed without what it asked for). Binary stays
 * forward-compatible: unknown fields are kept, as protobuf requires.
 */
export const strictJson: Partial<JsonReadOptions> = { ignoreUnknownFields: false };

/**
 * gzip and br as connect-node has them, but a body that does not decompress is the
 * client's fault: InvalidArgument saying so (connect-node answers Internal for a truncated
 * or otherwise corrupt body, Z_BUF_ERROR and the like).
 */
export const requestCompressions: Compression[] = [compressionGzip, compressionBrotli].map(
  (compression) => ({
    name: compression.name,
    compress: (bytes) => compression.compress(bytes),
    decompress: (bytes, readMaxBytes) =>
      compression.decompress(bytes, readMaxBytes).catch((e: unknown) => {
        const error = ConnectError.from(e);
        if (error.code === Code.ResourceExhausted) throw error;
        throw new ConnectError(
          `request body is not valid ${compression.name}: ${causeOf(error)}; send it ${compression.name}-compressed whole, or without Content-Encoding`,
          Code.InvalidArgument,
        );
      }),
  }),
);

function causeOf(error: ConnectError): string {
  return error.cause instanceof Error ? error.cause.message : error.rawMessage;
}

/**
 * Request envelopes (gRPC, gRPC-Web, Connect streaming) may set only 0x01 (compressed).
 * 0x02 (Connect end-stream) and 0x80 (gRPC-Web trailers) belong to responses: connect-node
 * skipped such a request envelope or parsed it as a message.
 */
const allowedRequestFlags = 0x01;
const envelopedContentType = /^application\/(grpc|connect\+)/i;

/**
 * Wraps the router's handlers (call it at the end of the routes callback) so that request
 * envelopes with response-only flags are refused with InvalidArgument. Unary Connect
 * requests carry no envelope and pass untouched.
 */
export function refuseResponseFlags(router: ConnectRouter): void {
  const handlers = router.handlers;
  for (let i = 0; i < handlers.length; i++) {
    const handler = handlers[i]!;
    handlers[i] = Object.assign(
      (req: Parameters<typeof handler>[0]) => {
        const type = req.header.get("content-type") ?? "";
        if (!envelopedContentType.test(type) || !isByteStream(req.body)) return handler(req);
        return handler({ ...req, body: checkEnvelopeFlags(req.body) });
      },
      { ...handler },
    ) as typeof handler;
  }
}

function isByteStream(body: unknown): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

/** Passes the bytes through, reading each envelope's 5-byte prefix on the way. */
async function* checkEnvelopeFlags(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  // Bytes until the next envelope prefix starts; the prefix itself as it arrives.
  let skip = 0;
  const prefix = new Uint8Array(5);
  let have = 0;
  for await (const chunk of body) {
    let at = 0;
    while (at < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - at);
        skip -= n;
        at += n;
        continue;
      }
      prefix[have++] = chunk[at++]!;
      if (have < 5) continue;
      have = 0;
      const flags = prefix[0]!;
      if ((flags & ~allowedRequestFlags) !== 0) {
        throw new ConnectError(
          `request message envelope has flags 0x${flags.toString(16).padStart(2, "0")}: a request may set only 0x01 (compressed); 0x02 (end of stream) and 0x80 (trailers) are for responses`,
          Code.InvalidArgument,
        );
      }
      skip = new DataView(prefix.buffer).getUint32(1);
    }
    yield chunk;
  }
}

/** Services as the decode-error gate needs them: the request type of each method. */
export type ServedServices = readonly { methods: readonly { input: DescMessage }[] }[];

/**
 * A request gate that makes request decoding errors the client's: connect-node raises a
 * malformed binary message ("parse binary: ...") as Internal, and reports an unknown JSON
 * enum name without the field or the accepted values. The gate registers one shared
 * listener on the call's signal; connect aborts that signal with the error before it
 * answers, so the listener can correct the error in place. `inner` is the gate it wraps.
 * `learn` is given the served services once the routes are registered.
 */
export function createDecodeErrorGate(inner?: (ctx: HandlerContext) => void): {
  gate: (ctx: HandlerContext) => void;
  learn: (services: ServedServices) => void;
} {
  const enums = new Map<string, EnumUse>();
  const onAbort = function (this: AbortSignal) {
    const reason: unknown = this.reason;
    if (reason instanceof ConnectError) correct(reason, enums);
  };
  return {
    gate(ctx) {
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      inner?.(ctx);
    },
    learn(services) {
      for (const [name, use] of enumFieldsOf(services)) enums.set(name, use);
    },
  };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function correct(error: ConnectError, enums: Map<string, EnumUse>): void {
  const mutable = error as Mutable<ConnectError>;
  if (error.code === Code.Internal && error.rawMessage.startsWith("parse binary: ")) {
    mutable.code = Code.InvalidArgument;
    mutable.rawMessage = `request is not a valid binary protobuf message (${error.rawMessage.slice(14)}); check that the body is the method's request type, serialized whole`;
  } else if (error.code === Code.InvalidArgument) {
    const m = /^cannot decode enum ([\w.]+) from JSON: (.*)$/.exec(error.rawMessage);
    const use = m ? enums.get(m[1]!) : undefined;
    if (!m || !use) return;
    mutable.rawMessage = `${use.fields.join(" or ")}: ${m[2]} is not a ${use.desc.typeName} value; accepted: ${use.desc.values.map((v) => v.name).join(", ")}`;
  } else {
    return;
  }
  mutable.message = `[${codeToString(mutable.code)}] ${mutable.rawMessage}`;
}

interface EnumUse {
  desc: DescEnum;
  /** JSON paths of the request fields of this enum type, e.g. `fault.failCode`. */
  fields: string[];
}

/** Every enum a served request can carry, with the fields that carry it. */
function enumFieldsOf(services: ServedServices): Map<string, EnumUse> {
  const uses = new Map<string, EnumUse>();
  const visit = (message: DescMessage, path: string, seen: Set<string>) => {
    if (seen.has(message.typeName)) return;
    seen.add(message.typeName);
    for (const field of message.fields) {
      const at = path ? `${path}.${field.jsonName}` : field.jsonName;
      const desc = field.enum;
      if (desc) {
        const use = uses.get(desc.typeName) ?? { desc, fields: [] };
        if (!use.fields.includes(at)) use.fields.push(at);
        uses.set(desc.typeName, use);
      }
      if (field.message) visit(field.message, at, new Set(seen));
    }
  };
  for (const service of services)
    for (const method of service.methods) visit(method.input, "", new Set());
  return uses;
}
