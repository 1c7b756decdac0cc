// The load generator's gRPC caller: unary calls over one node:http2 session, with messages
// encoded and read by a few lines of wire format. etcd's KV and Quartet's KVService give Put
// and Range the same field numbers, so both sides get the same bytes and only the path
// differs. It costs the load generator less than half of @grpc/grpc-js's CPU and garbage per
// call, and leaves more of the machine's two CPUs to the servers measured (BENCHMARKS.md, kv).
import { type ClientHttp2Session, connect } from "node:http2";
import { value } from "./load.ts";

/** The two unary methods the load generator calls, by their gRPC paths. */
export interface KvPaths {
  put: string;
  range: string;
}

export const etcdPaths: KvPaths = { put: "/etcdserverpb.KV/Put", range: "/etcdserverpb.KV/Range" };
export const quartetPaths: KvPaths = {
  put: "/quartet.consensus.v1.KVService/Put",
  range: "/quartet.consensus.v1.KVService/Range",
};

function varintLength(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n >>>= 7;
    bytes++;
  }
  return bytes;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[at++] = n;
  return at;
}

/**
 * A gRPC frame (the 5-byte prefix, then the message) of a message made of `fields`, each
 * a length-delimited field (`bytes`) given as [field number, bytes]: PutRequest {key = 1,
 * value = 2} and RangeRequest {key = 1} on both sides.
 */
function grpcFrame(fields: readonly [number, Uint8Array][]): Buffer {
  let size = 0;
  for (const [n, bytes] of fields)
    size += varintLength(n << 3) + varintLength(bytes.length) + bytes.length;
  const frame = Buffer.allocUnsafe(5 + size);
  frame[0] = 0;
  frame.writeUInt32BE(size, 1);
  let at = 5;
  for (const [n, bytes] of fields) {
    at = writeVarint(frame, at, (n << 3) | 2);
    at = writeVarint(frame, at, bytes.length);
    frame.set(bytes, at);
    at += bytes.length;
  }
  return frame;
}

/**
 * How many times length-delimited field `field` occurs at the top level of `message` (e.g.
 * the `kvs` of a RangeResponse, field 2 on both sides). Throws on a malformed message.
 */
function countField(message: Uint8Array, field: number): number {
  let count = 0;
  let at = 0;
  const varint = () => {
    let n = 0;
    let shift = 0;
    for (;;) {
      if (at >= message.length) throw new Error("malformed message: truncated varint");
      const b = message[at++]!;
      n += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return n;
      shift += 7;
    }
  };
  while (at < message.length) {
    const tag = varint();
    const wire = tag & 7;
    if (wire === 0) varint();
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const len = varint();
      at += len;
      if (tag >>> 3 === field) count++;
    } else throw new Error(`malformed message: wire type ${wire}`);
    if (at > message.length) throw new Error("malformed message: field past the end");
  }
  return count;
}

/** Unary calls over one h2c connection to `address` (host:port). */
function h2GrpcClient(address: string) {
  let session: ClientHttp2Session | undefined;
  const open = () => {
    if (session && !session.closed && !session.destroyed) return session;
    const s = connect(`http://${address}`);
    // A call's own stream reports what failed it; the session's error would otherwise crash.
    s.on("error", () => {});
    session = s;
    return s;
  };
  return {
    /** Calls `path` with one framed request; resolves with the answer's message bytes. */
    unary(path: string, frame: Buffer): Promise<Buffer> {
      return new Promise((resolve, reject) => {
        const stream = open().request({
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          te: "trailers",
        });
        const chunks: Buffer[] = [];
        let status: string | undefined;
        let message = "";
        stream.on("response", (h) => {
          // A trailers-only answer (an error) puts grpc-status in the headers.
          if (h["grpc-status"] !== undefined) {
            status = String(h["grpc-status"]);
            message = String(h["grpc-message"] ?? "");
          }
        });
        stream.on("trailers", (t) => {
          status = String(t["grpc-status"]);
          message = String(t["grpc-message"] ?? "");
        });
        stream.on("data", (b: Buffer) => chunks.push(b));
        stream.on("error", reject);
        stream.on("close", () => {
          if (status !== "0")
            return reject(new Error(`${path}: grpc-status ${status ?? "missing"} ${message}`));
          const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          if (body.length < 5 || body[0] !== 0)
            return reject(new Error(`${path}: no uncompressed message in the answer`));
          resolve(body.subarray(5, 5 + body.readUInt32BE(1)));
        });
        stream.end(frame);
      });
    },
    close: () => session?.close(),
  };
}

/** What the load generator calls on a side: a put of `value`, and a read of one key's versions. */
export interface KvCalls {
  put(key: Buffer): Promise<void>;
  /** How many key-values a Range of `key` returned. */
  count(key: Buffer): Promise<number>;
  close(): void;
}

/** Put and Range over one h2c connection to `address`, at `paths`. */
export function h2KvCalls(address: string, paths: KvPaths): KvCalls {
  const client = h2GrpcClient(address);
  return {
    async put(key) {
      await client.unary(
        paths.put,
        grpcFrame([
          [1, key],
          [2, value],
        ]),
      );
    },
    async count(key) {
      return countField(await client.unary(paths.range, grpcFrame([[1, key]])), 2);
    },
    close: client.close,
  };
}
