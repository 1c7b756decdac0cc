import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type Command, CommandSchema } from "@quartet/proto/quartet/consensus/v1/internal_pb";
import { Compare_CompareResult } from "@quartet/proto/quartet/consensus/v1/kv_pb";

const enc = new TextEncoder();
export const b = (s: string): Uint8Array => enc.encode(s);
export const s = (u: Uint8Array | undefined): string => new TextDecoder().decode(u);

type Op = MessageInitShape<typeof CommandSchema>["op"];
export const cmd = (op: Op, nowMs = 0n): Command => create(CommandSchema, { op, nowMs });

export const put = (key: string, value: string, lease = 0n, prevKv = false): Command =>
  cmd({ case: "put", value: { key: b(key), value: b(value), lease, prevKv } });
export const del = (key: string, rangeEnd = "", prevKv = false): Command =>
  cmd({ case: "deleteRange", value: { key: b(key), rangeEnd: b(rangeEnd), prevKv } });
export const compact = (revision: bigint): Command => cmd({ case: "compact", value: { revision } });
export const grant = (ttl: bigint, nowMs: bigint, id = 0n): Command =>
  cmd({ case: "leaseGrant", value: { ttl, id } }, nowMs);
export const revoke = (id: bigint): Command => cmd({ case: "leaseRevoke", value: { id } });
export const renew = (id: bigint, nowMs: bigint): Command =>
  cmd({ case: "leaseRenew", value: { id } }, nowMs);
export const expire = (nowMs: bigint): Command => cmd({ case: "expireLeases", value: {} }, nowMs);
export const promote = (nowMs: bigint): Command => cmd({ case: "promoteLeases", value: {} }, nowMs);

/** A compare-and-swap: if `key`'s mod_revision equals `modRevision`, put `value`, else read key. */
export const cas = (key: string, modRevision: bigint, value: string): Command =>
  cmd({
    case: "txn",
    value: {
      compare: [
        {
          key: b(key),
          result: Compare_CompareResult.EQUAL,
          targetUnion: { case: "modRevision", value: modRevision },
        },
      ],
      success: [{ request: { case: "requestPut", value: { key: b(key), value: b(value) } } }],
      failure: [{ request: { case: "requestRange", value: { key: b(key) } } }],
    },
  });
