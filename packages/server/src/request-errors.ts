import type { DescEnum, DescMessage, JsonReadOptions } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Compression, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { endedCallReason } from "./node-http.ts";

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
 * The request body as the handler should read it: for gRPC, gRPC-Web and Connect streaming
 * requests, envelopes with response-only flags make the read fail with InvalidArgument.
 * Unary Connect requests carry no envelope and pass untouched. A body already read in full
 * (`read`) is checked here at once and, when it is fine, handed on without a wrapper.
 */
export function checkEnvelopeFlagsOf(
  req: UniversalServerRequest,
  read: readonly Uint8Array[] | undefined,
): AsyncIterable<Uint8Array> {
  const body = req.body as AsyncIterable<Uint8Array>;
  if (!envelopedContentType.test(req.header.get("content-type") ?? "")) return body;
  if (read !== undefined) {
    const flags = new EnvelopeFlags();
    if (read.every((chunk) => flags.pass(chunk))) return body;
  }
  return checkEnvelopeFlags(body);
}

/** Reads each envelope's 5-byte prefix as the bytes go by, and finds bad flags. */
class EnvelopeFlags {
  /** Bytes until the next envelope prefix starts. */
  #skip = 0;
  /** The prefix, as it arrives. */
  readonly #prefix = new Uint8Array(5);
  #have = 0;
  /** The flags of the first bad envelope seen. */
  bad: number | undefined;

  /** False once an envelope with flags other than 0x01 has been seen. */
  pass(chunk: Uint8Array): boolean {
    let at = 0;
    while (at < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - at);
        this.#skip -= n;
        at += n;
        continue;
      }
      this.#prefix[this.#have++] = chunk[at++]!;
      if (this.#have < 5) continue;
      this.#have = 0;
      const flags = this.#prefix[0]!;
      if ((flags & ~allowedRequestFlags) !== 0) {
        this.bad = flags;
        return false;
      }
      this.#skip = new DataView(this.#prefix.buffer).getUint32(1);
    }
    return true;
  }
}

/** Passes the bytes through, reading each envelope's 5-byte prefix on the way. */
async function* checkEnvelopeFlags(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  const flags = new EnvelopeFlags();
  for await (const chunk of body) {
    if (!flags.pass(chunk)) {
      throw new ConnectError(
        `request message envelope has flags 0x${flags.bad!.toString(16).padStart(2, "0")}: a request may set only 0x01 (compressed); 0x02 (end of stream) and 0x80 (trailers) are for responses`,
        Code.InvalidArgument,
      );
    }
    yield chunk;
  }
}

/** Services as the decode-error gate needs them: the request type of each method. */
export type ServedServices = readonly { methods: readonly { input: DescMessage }[] }[];

/**
 * A request gate that makes request decoding errors the client's: connect-node raises a
 * malformed binary message ("parse binary: ...") as Internal, and reports an unknown JSON
 * enum name without the field or the accepted values. connect aborts the call's context with
 * the error before it answers; the gate wraps that `abort` so it can correct the error in
 * place. The same wrapper gives a call that ends normally one shared AbortError as its
 * signal's reason: connect aborts it without one, which builds a DOMException (a stack
 * trace) per call. `inner` is the gate it wraps. `learn` is given the served services once
 * the routes are registered.
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
      // connect's handler context has abort(); HandlerContext does not declare it.
      const controller = ctx as HandlerContext & { abort?: (reason?: unknown) => void };
      const abort = controller.abort;
      if (typeof abort === "function") {
        controller.abort = (reason?: unknown) => {
          if (reason instanceof ConnectError) correct(reason, enums);
          abort(reason ?? endedCallReason);
        };
      } else {
        ctx.signal.addEventListener("abort", onAbort, { once: true });
      }
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
