import { describe, expect, it } from "vitest";
import {
  checkOperations,
  HistoryRecorder,
  type KvInput,
  type KvOutput,
  kvModel,
} from "../src/index.ts";

describe("HistoryRecorder", () => {
  it("records answers, failures of unknown outcome, and leaves out failures without effect", async () => {
    let time = 0;
    const recorder = new HistoryRecorder<KvInput, KvOutput>({
      now: () => time++,
      unknown: { kind: "unknown" },
    });
    await recorder.run(1, { kind: "put", key: "x", value: "1" }, async () => ({ kind: "put" }));
    await recorder.run(2, { kind: "put", key: "x", value: "2" }, async () => {
      throw new Error("connection reset after sending");
    });
    await recorder.run(
      3,
      { kind: "put", key: "x", value: "3" },
      async () => {
        throw new Error("invalid argument");
      },
      (e) => (e as Error).message === "invalid argument",
    );
    const history = recorder.history();
    expect(history.map((op) => [op.clientId, op.call, op.return, op.output.kind])).toEqual([
      [1, 0, 1, "put"],
      [2, 2, Number.POSITIVE_INFINITY, "unknown"],
    ]);
    // The lost write may have happened: a read of "2" later is explainable, "3" is not.
    const read = (value: string) => ({
      clientId: 4,
      input: { kind: "get", key: "x" } as KvInput,
      call: 10,
      return: 11,
      output: { kind: "get", value } as KvOutput,
    });
    expect(checkOperations(kvModel, [...history, read("2")]).outcome).toBe("ok");
    expect(checkOperations(kvModel, [...history, read("3")]).outcome).toBe("illegal");
  });
});
