import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Command } from "@quartet/proto/quartet/consensus/v1/internal_pb";
import { RangeRequestSchema } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { describe, expect, it } from "vitest";
import { limits } from "../src/state/limits.ts";
import { ConsensusStateMachine } from "../src/state/state-machine.ts";
import { validateCommand, validateRange } from "../src/state/validate.ts";
import { b, cmd, compact, del, grant, put, renew, revoke } from "./support/commands.ts";

function refusal(fn: () => void): { code: Code; message: string } | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
}

const check = (c: Command, sm = new ConsensusStateMachine()) =>
  refusal(() => validateCommand(c, sm));

describe("validateCommand", () => {
  it("refuses empty and over-long keys and over-size values with InvalidArgument naming the limit", () => {
    expect(check(put("", "v"))).toEqual({
      code: Code.InvalidArgument,
      message: "key is empty: give a key of 1 to 8192 bytes",
    });
    expect(check(put("k".repeat(limits.maxKeyBytes + 1), "v"))).toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringContaining("over the limit of 8192 bytes"),
    });
    expect(check(put("k", "v".repeat(limits.maxValueBytes)))).toBeUndefined();
    expect(check(put("k", "v".repeat(limits.maxValueBytes + 1)))).toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringContaining("over the limit of 1572864 bytes (1.5 MiB)"),
    });
  });

  it("refuses a range end at or before its key", () => {
    expect(check(del("b", "a"))?.message).toMatch(/range_end sorts at or before key/);
    expect(check(del("a", "b"))).toBeUndefined();
    expect(check(del("a", "\0"))).toBeUndefined();
  });

  it("refuses an unknown lease with NotFound and a duplicate lease id with AlreadyExists", () => {
    const sm = new ConsensusStateMachine();
    expect(check(put("k", "v", 5n), sm)?.code).toBe(Code.NotFound);
    expect(check(revoke(5n), sm)?.code).toBe(Code.NotFound);
    expect(check(renew(5n, 0n), sm)?.code).toBe(Code.NotFound);
    sm.apply(grant(10n, 0n, 5n));
    expect(check(put("k", "v", 5n), sm)).toBeUndefined();
    expect(check(grant(10n, 0n, 5n), sm)?.code).toBe(Code.AlreadyExists);
    expect(check(grant(0n, 0n), sm)?.message).toMatch(/ttl 0 must be 1 to 9000000000 seconds/);
  });

  it("refuses a txn over 128 operations, duplicate puts, and a key both put and deleted", () => {
    const putOp = (k: string) => ({
      request: { case: "requestPut" as const, value: { key: b(k), value: b("v") } },
    });
    const txn = (success: ReturnType<typeof putOp>[], extra: object[] = []) =>
      cmd({ case: "txn", value: { success: [...success, ...extra] } });
    const many = Array.from({ length: 129 }, (_, i) => putOp(`k${i}`));
    expect(check(txn(many))?.message).toMatch(/129 operations.*limit of 128/);
    expect(check(txn(many.slice(0, 128)))).toBeUndefined();
    expect(check(txn([putOp("a"), putOp("a")]))?.message).toMatch(/success\[1\]: puts a key/);
    const delAll = {
      request: { case: "requestDeleteRange", value: { key: b("a"), rangeEnd: b("\0") } },
    };
    expect(check(txn([putOp("b")], [delAll]))?.message).toMatch(/both put and deleted/);
  });

  it("refuses compaction of a compacted or future revision with OutOfRange", () => {
    const sm = new ConsensusStateMachine();
    sm.apply(put("a", "1"));
    sm.apply(put("a", "2"));
    expect(check(compact(3n), sm)).toMatchObject({
      code: Code.OutOfRange,
      message: expect.stringMatching(/future/),
    });
    sm.apply(compact(2n));
    expect(check(compact(1n), sm)).toMatchObject({
      code: Code.OutOfRange,
      message: expect.stringMatching(/compacted/),
    });
  });
});

describe("validateRange", () => {
  it("refuses a compacted or future revision with OutOfRange and what to read instead", () => {
    const sm = new ConsensusStateMachine();
    sm.apply(put("a", "1"));
    sm.apply(put("a", "2"));
    sm.apply(compact(2n));
    const at = (revision: bigint) =>
      refusal(() => validateRange(create(RangeRequestSchema, { key: b("a"), revision }), sm));
    expect(at(1n)).toEqual({
      code: Code.OutOfRange,
      message: "revision 1 has been compacted (compacted revision 2): read at 2 or later",
    });
    expect(at(3n)?.message).toBe(
      "revision 3 is a future revision (current revision 2): read at 2 or earlier",
    );
    expect(at(2n)).toBeUndefined();
  });
});
