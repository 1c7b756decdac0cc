// The load generator's gRPC caller: unary calls over one node:http2 session, with messages
// written and read field by field (protobuf-es's wire writer and reader, no reflection).
// etcd's KV and Quartet's KVService give Put and Range the same field numbers, so both sides
// get the same bytes and only the path differs. It costs the load generator less than half of @grpc/grpc-js's CPU and garbage per
// call, and leaves more of the machine's two CPUs to the servers measured (BENCHMARKS.md, kv).
import { type ClientHttp2Session, connect } from "node:http2";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
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

/** A gRPC request frame of PutRequest {key = 1, value = 2} or RangeRequest {key = 1}. */
function grpcFrame(key: Uint8Array, putValue?: Uint8Array): Uint8Array {
  const w = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(key);
  if (putValue !== undefined) w.tag(2, WireType.LengthDelimited).bytes(putValue);
  return encodeEnvelope(0, w.finish());
}

/** How many times field `field` occurs at the top level of `message` (a RangeResponse's kvs). */
function countField(message: Uint8Array, field: number): number {
  const r = new BinaryReader(message);
  let count = 0;
  while (r.pos < r.len) {
    const [no, wireType] = r.tag();
    r.skip(wireType, no);
    if (no === field) count++;
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
    unary(path: string, frame: Uint8Array): Promise<Buffer> {
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
      await client.unary(paths.put, grpcFrame(key, value));
    },
    async count(key) {
      return countField(await client.unary(paths.range, grpcFrame(key)), 2);
    },
    close: client.close,
  };
}
