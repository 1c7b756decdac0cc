import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { CommandSchema } from "@quartet/proto/quartet/consensus/v1/internal_pb";
import { PutRequestSchema } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { describe, expect, it } from "vitest";
import { decodeCommand, encodeCommand } from "../src/service/commands.ts";
import { b, cmd, del, grant, put } from "./support/commands.ts";

describe("encodeCommand", () => {
  it("writes a put's log entry as toBinary does, field for field", () => {
    // A put is written by hand: a field added to PutRequest or Command must be added there.
    expect(PutRequestSchema.fields.map((f) => f.number)).toEqual([1, 2, 3, 4]);
    expect(CommandSchema.fields.find((f) => f.localName === "put")?.number).toBe(10);
    const commands = [
      put("k", "v"),
      put("", ""),
      put("key", "x".repeat(300), 7n, true),
      put("big", "v", 2n ** 62n + 5n),
      put("negative", "v", -3n),
      cmd(
        { case: "put", value: { key: b("k"), value: new Uint8Array(20_000) } },
        1_765_000_000_000n,
      ),
      cmd({ case: "put", value: {} }, 2n ** 63n - 1n),
    ];
    for (const c of commands) expect(encodeCommand(c)).toEqual(toBinary(CommandSchema, c));
  });

  it("leaves other commands, and puts with fields it does not know, to toBinary", () => {
    const unknown = put("k", "v");
    if (unknown.op.case !== "put") throw new Error("not a put");
    unknown.op.value.$unknown = [{ no: 99, wireType: 0, data: new Uint8Array([1]) }];
    for (const c of [unknown, del("a", "b"), grant(10n, 5n), create(CommandSchema)]) {
      expect(encodeCommand(c)).toEqual(toBinary(CommandSchema, c));
    }
  });
});

describe("decodeCommand", () => {
  const puts = () => [
    put("k", "v"),
    put("", ""),
    put("key", "x".repeat(300), 7n, true),
    put("big", "v", 2n ** 62n + 5n),
    put("negative", "v", -3n),
    cmd({ case: "put", value: {} }, 2n ** 63n - 1n),
  ];

  it("reads a put's log entry as fromBinary does", () => {
    for (const c of puts()) {
      const bytes = toBinary(CommandSchema, c);
      expect(decodeCommand(bytes)).toStrictEqual(fromBinary(CommandSchema, bytes));
    }
  });

  it("reads everything else, and puts with fields it does not know, with fromBinary", () => {
    const unknown = put("k", "v");
    if (unknown.op.case !== "put") throw new Error("not a put");
    unknown.op.value.$unknown = [{ no: 99, wireType: 0, data: new Uint8Array([1]) }];
    const topUnknown = put("k", "v");
    topUnknown.$unknown = [{ no: 99, wireType: 0, data: new Uint8Array([1]) }];
    for (const c of [unknown, topUnknown, del("a", "b"), grant(10n, 5n), create(CommandSchema)]) {
      const bytes = toBinary(CommandSchema, c);
      const decoded = decodeCommand(bytes);
      expect(decoded).toStrictEqual(fromBinary(CommandSchema, bytes));
      expect(toBinary(CommandSchema, decoded)).toEqual(bytes);
    }
  });
});
