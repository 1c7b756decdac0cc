import { randomInt, seededRandom } from "@quartet/determinism";
import { describe, expect, it } from "vitest";
import {
  checkOperations,
  describeFailure,
  type KvInput,
  type KvOutput,
  kvModel,
  type Model,
  type Operation,
} from "../src/index.ts";

type Op = Operation<KvInput, KvOutput>;
const put = (clientId: number, key: string, value: string, call: number, ret: number): Op => ({
  clientId,
  input: { kind: "put", key, value },
  call,
  return: ret,
  output: { kind: "put" },
});
const get = (
  clientId: number,
  key: string,
  value: string | null,
  call: number,
  ret: number,
): Op => ({
  clientId,
  input: { kind: "get", key },
  call,
  return: ret,
  output: { kind: "get", value },
});
const cas = (
  clientId: number,
  key: string,
  expected: string | null,
  value: string,
  succeeded: boolean | "unknown",
  call: number,
  ret: number,
): Op => ({
  clientId,
  input: { kind: "cas", key, expected, value },
  call,
  return: ret,
  output: succeeded === "unknown" ? { kind: "unknown" } : { kind: "cas", succeeded },
});

describe("checkOperations on a register", () => {
  it("accepts the empty history", () => {
    expect(checkOperations(kvModel, []).outcome).toBe("ok");
  });

  it("accepts a read that overlaps a write and sees either value", () => {
    // put(x,1) done; put(x,2) runs while two reads overlap it, one sees 1, one sees 2.
    const history = [
      put(0, "x", "1", 0, 10),
      put(0, "x", "2", 20, 40),
      get(1, "x", "2", 25, 30),
      get(2, "x", "1", 21, 35),
    ];
    expect(checkOperations(kvModel, history).outcome).toBe("ok");
  });

  it("refuses a read that sees the new value, then a later read that sees the old one", () => {
    // Both reads overlap the write, but once a read returned 2, a read that starts after it
    // returned may no longer see 1.
    const history = [
      put(0, "x", "1", 0, 10),
      put(0, "x", "2", 20, 60),
      get(1, "x", "2", 25, 30),
      get(2, "x", "1", 31, 35),
    ];
    const result = checkOperations(kvModel, history);
    expect(result.outcome).toBe("illegal");
    expect(describeFailure(kvModel, result)).toMatch(/not linearizable: 4 operations/);
  });

  it("refuses a stale read after a write completed", () => {
    const history = [put(0, "x", "1", 0, 10), put(0, "x", "2", 11, 20), get(1, "x", "1", 21, 22)];
    expect(checkOperations(kvModel, history).outcome).toBe("illegal");
  });

  it("refuses a read of a value nobody wrote", () => {
    expect(checkOperations(kvModel, [get(1, "x", "ghost", 0, 1)]).outcome).toBe("illegal");
    expect(checkOperations(kvModel, [get(1, "x", null, 0, 1)]).outcome).toBe("ok");
  });

  it("lets a write whose answer was lost take effect late or never", () => {
    const lost = put(0, "x", "1", 0, Number.POSITIVE_INFINITY);
    lost.output = { kind: "unknown" };
    expect(checkOperations(kvModel, [lost, get(1, "x", "1", 100, 101)]).outcome).toBe("ok");
    expect(checkOperations(kvModel, [lost, get(1, "x", null, 100, 101)]).outcome).toBe("ok");
    // ...but not take effect and then be undone.
    expect(
      checkOperations(kvModel, [lost, get(1, "x", "1", 100, 101), get(1, "x", null, 102, 103)])
        .outcome,
    ).toBe("illegal");
  });

  it("explores both outcomes of a compare-and-set whose answer was lost", () => {
    const lost = cas(0, "x", null, "a", "unknown", 0, Number.POSITIVE_INFINITY);
    // It succeeded (a later read sees "a"), or it did not (a later CAS from null succeeds).
    expect(checkOperations(kvModel, [lost, get(1, "x", "a", 10, 11)]).outcome).toBe("ok");
    expect(checkOperations(kvModel, [lost, cas(1, "x", null, "b", true, 10, 11)]).outcome).toBe(
      "ok",
    );
    // Not both: a read of "a" after "b" was set from null cannot be explained.
    expect(
      checkOperations(kvModel, [
        lost,
        cas(1, "x", null, "b", true, 10, 11),
        get(2, "x", "a", 20, 21),
      ]).outcome,
    ).toBe("illegal");
  });

  it("tries the no-effect branch when an unknown compare-and-set must be placed early", () => {
    // The outcome is unknown but the call is known to have ended by 5 (e.g. the server's log
    // says so): it must be placed before the read, which sees that it did not write.
    const ended = cas(0, "x", null, "a", "unknown", 0, 5);
    expect(checkOperations(kvModel, [ended, get(1, "x", null, 10, 11)]).outcome).toBe("ok");
    expect(checkOperations(kvModel, [ended, get(1, "x", "a", 10, 11)]).outcome).toBe("ok");
    expect(checkOperations(kvModel, [ended, get(1, "x", "b", 10, 11)]).outcome).toBe("illegal");
  });

  it("refuses two compare-and-sets from the same value that both succeed", () => {
    const history = [cas(0, "x", null, "a", true, 0, 10), cas(1, "x", null, "b", true, 5, 15)];
    expect(checkOperations(kvModel, history).outcome).toBe("illegal");
  });

  it("reports only the key whose history has no linearization", () => {
    const history = [
      put(0, "good", "1", 0, 10),
      get(1, "good", "1", 11, 12),
      put(0, "bad", "1", 0, 10),
      get(1, "bad", null, 11, 12),
    ];
    const result = checkOperations(kvModel, history);
    expect(result.outcome).toBe("illegal");
    if (result.outcome !== "illegal") return;
    expect(new Set(result.partition.map((op) => op.input.key))).toEqual(new Set(["bad"]));
    expect(result.longest.map((op) => op.input.kind)).toEqual(["put"]);
  });

  it("treats equal call and return times as concurrent", () => {
    // A clock too coarse to separate them must not invent a violation.
    const history = [put(0, "x", "1", 0, 10), get(1, "x", null, 10, 11)];
    expect(checkOperations(kvModel, history).outcome).toBe("ok");
  });

  it("refuses a history whose operation returns before its call", () => {
    expect(() => checkOperations(kvModel, [get(0, "x", null, 5, 4)])).toThrow(RangeError);
  });

  it("gives up with unknown when the step budget runs out", () => {
    const history = randomHistory(7, 40, 1).ops;
    expect(checkOperations(kvModel, history, { maxSteps: 3 })).toEqual({
      outcome: "unknown",
      reason: "the search ran out of steps (maxSteps)",
    });
  });
});

describe("checkOperations on seeded random histories", () => {
  // Histories made by running a real register in a chosen order and giving each operation a
  // call and return around its moment: linearizable by construction.
  const seeds = Array.from({ length: 40 }, (_, i) => i + 1);

  it.each(seeds)("accepts linearizable history %i", (seed) => {
    const { ops } = randomHistory(seed, 200, 3);
    const result = checkOperations(kvModel, ops);
    expect(result.outcome, `RANDOM_SEED=${seed}: ${describeFailure(kvModel, result)}`).toBe("ok");
  });

  it.each(seeds)("finds the stale read planted in history %i", (seed) => {
    const { ops, reads } = randomHistory(seed, 200, 3);
    // A read that returned after a completed write of a different value, made to see a value
    // that was overwritten before the read began.
    const victim = reads.find((r) => r.staleValue !== undefined);
    if (!victim) throw new Error(`seed ${seed} made no read with a stale candidate`);
    victim.op.output = { kind: "get", value: victim.staleValue as string | null };
    expect(checkOperations(kvModel, ops).outcome, `RANDOM_SEED=${seed}`).toBe("illegal");
  });
});

describe("a model with its own partitions and no describe", () => {
  // A counter: increments and reads; the report falls back to JSON.
  const counter: Model<number, "inc" | "read", number | "ok"> = {
    init: () => 0,
    step: (s, input, output) => (input === "inc" ? [s + 1] : output === s ? [s] : []),
    key: (s) => String(s),
  };
  it("checks and reports", () => {
    const op = (input: "inc" | "read", output: number | "ok", call: number, ret: number) => ({
      clientId: 0,
      input,
      output,
      call,
      return: ret,
    });
    expect(
      checkOperations(counter, [op("inc", "ok", 0, 5), op("inc", "ok", 1, 6), op("read", 2, 7, 8)])
        .outcome,
    ).toBe("ok");
    const bad = checkOperations(counter, [op("inc", "ok", 0, 5), op("read", 0, 6, 8)]);
    expect(describeFailure(counter, bad)).toContain('"input":"read"');
  });
});

interface PlantableRead {
  op: Op;
  /** A value the key held once but that was overwritten by a write completed before this read began. */
  staleValue: string | null | undefined;
}

function randomHistory(
  seed: number,
  count: number,
  keys: number,
): { ops: Op[]; reads: PlantableRead[] } {
  const random = seededRandom(seed);
  const state = new Map<string, string | null>();
  const ops: Op[] = [];
  const reads: PlantableRead[] = [];
  // Per key: each write's value, its moment, and its return time.
  const writes = new Map<string, { value: string | null; call: number; returned: number }[]>();
  for (let i = 0; i < count; i++) {
    const at = i * 10; // the operation's linearization point
    const call = at - randomInt(random, 25);
    const ret = at + randomInt(random, 25);
    const key = `k${randomInt(random, keys)}`;
    const current = state.get(key) ?? null;
    const kind = randomInt(random, 4);
    const clientId = randomInt(random, 8);
    const log = writes.get(key) ?? [
      { value: null, call: Number.NEGATIVE_INFINITY, returned: Number.NEGATIVE_INFINITY },
    ];
    writes.set(key, log);
    if (kind === 0) {
      const op = get(clientId, key, current, call, ret);
      ops.push(op);
      // Stale: the value of a write that returned before another write was called, which in
      // turn returned before this read was called; real time orders all three.
      const completed = log.filter((w) => w.returned < call);
      const stale = completed.find((older) =>
        completed.some((newer) => newer.value !== older.value && older.returned < newer.call),
      );
      reads.push({ op, staleValue: stale?.value });
    } else if (kind === 1 || kind === 2) {
      const value = `${seed}-${i}`;
      ops.push(put(clientId, key, value, call, ret));
      state.set(key, value);
      log.push({ value, call, returned: ret });
    } else {
      const expected = randomInt(random, 2) === 0 ? current : "never";
      const value = `${seed}-${i}`;
      const succeeded = expected === current;
      ops.push(cas(clientId, key, expected, value, succeeded, call, ret));
      if (succeeded) {
        state.set(key, value);
        log.push({ value, call, returned: ret });
      }
    }
  }
  return { ops, reads };
}
