// The safety checker flags each kind of violation when it is fed one directly.
import { describe, expect, it } from "vitest";
import type { Entry, Raft } from "../src/index.ts";
import { SafetyChecker } from "../src/sim/index.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const entry = (index: number, term: number, data = `e${index}`): Entry => ({
  index,
  term,
  type: "normal",
  data: bytes(data),
});

/** A stand-in exposing only what the checker reads from a node. */
function node(state: Raft["state"], term: number, log: Entry[], committed: number): Raft {
  const first = log[0]?.index ?? 1;
  return {
    state,
    term,
    log: {
      committed,
      firstIndex: () => first,
      lastIndex: () => first + log.length - 1,
      term: (i: number) => log[i - first]?.term ?? -2,
      slice: (lo: number, hi: number) => log.slice(lo - first, hi - first),
    },
  } as unknown as Raft;
}

describe("SafetyChecker", () => {
  it("flags two leaders in one term", () => {
    const c = new SafetyChecker();
    c.checkNode(1, node("leader", 3, [entry(1, 1)], 1));
    expect(() => c.checkNode(2, node("leader", 3, [entry(1, 1)], 1))).toThrow(
      /election safety: nodes 1 and 2 are both leader of term 3/,
    );
  });

  it("flags a vote changing within a term", () => {
    const c = new SafetyChecker();
    c.onHardState(1, { term: 2, vote: 1, commit: 0 });
    expect(() => c.onHardState(1, { term: 2, vote: 3, commit: 0 })).toThrow(/voted twice/);
  });

  it("flags log matching violations (same index and term, different entry or history)", () => {
    const c = new SafetyChecker();
    c.onPersist(1, [entry(2, 2, "a")], 1);
    expect(() => c.onPersist(2, [entry(2, 2, "b")], 1)).toThrow(/log matching/);
    expect(() => c.onPersist(3, [entry(2, 2, "a")], 0)).toThrow(/log matching/);
  });

  it("flags a leader missing a committed entry (leader completeness)", () => {
    const c = new SafetyChecker();
    c.checkNode(1, node("follower", 2, [entry(1, 1), entry(2, 2)], 2));
    expect(() => c.checkNode(2, node("leader", 3, [entry(1, 1), entry(2, 1, "x")], 1))).toThrow(
      /leader completeness: node 2 leads term 3 without committed entry 2/,
    );
  });

  it("flags different entries committed at one index (state machine safety)", () => {
    const c = new SafetyChecker();
    c.checkNode(1, node("follower", 2, [entry(1, 1), entry(2, 2)], 2));
    expect(() => c.checkNode(2, node("follower", 3, [entry(1, 1), entry(2, 3)], 2))).toThrow(
      /state machine safety/,
    );
  });

  it("flags a commit index going back, or past the log", () => {
    const c = new SafetyChecker();
    c.checkNode(1, node("follower", 2, [entry(1, 1), entry(2, 2)], 2));
    expect(() => c.checkNode(1, node("follower", 2, [entry(1, 1), entry(2, 2)], 1))).toThrow(
      /commit regressed/,
    );
    const d = new SafetyChecker();
    expect(() => d.checkNode(1, node("follower", 2, [entry(1, 1)], 2))).toThrow(/log ends at 1/);
    const e = new SafetyChecker();
    e.onHardState(1, { term: 2, vote: 0, commit: 5 });
    expect(() => e.onHardState(1, { term: 2, vote: 0, commit: 4 })).toThrow(/persisted commit/);
  });

  it("flags applying beyond the commit index, or a different applied history", () => {
    const c = new SafetyChecker();
    expect(() => c.onApply(1, entry(3, 1), 2, 0)).toThrow(/beyond its commit index/);
    c.onApply(1, entry(3, 1), 3, 111);
    expect(() => c.onApply(2, entry(3, 1), 3, 222)).toThrow(/applied state diverged/);
  });

  it("flags a stale read", () => {
    const c = new SafetyChecker();
    c.checkNode(1, node("follower", 2, [entry(1, 1), entry(2, 2), entry(3, 2)], 3));
    c.onReadRequest("r");
    expect(() => c.onReadState(2, { index: 2, context: "r" })).toThrow(/stale read/);
    c.onReadState(1, { index: 3, context: "r" });
    expect(c.readsChecked).toBe(1);
  });
});
