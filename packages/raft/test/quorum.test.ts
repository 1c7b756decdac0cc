import { describe, expect, it } from "vitest";
import { applyConfChangeToState, type ConfState, emptyConfState } from "../src/index.ts";
import { Inflights } from "../src/inflights.ts";
import { jointCommitted, jointVoteResult, majorityCommitted } from "../src/quorum.ts";

const matches = (m: Record<number, number>) =>
  new Map(Object.entries(m).map(([k, v]) => [Number(k), { match: v }]));

describe("quorum", () => {
  it("commits the highest index stored on a majority", () => {
    const s: number[] = [];
    expect(majorityCommitted([1, 2, 3], matches({ 1: 10, 2: 8, 3: 5 }), s)).toBe(8);
    expect(majorityCommitted([1, 2, 3, 4], matches({ 1: 10, 2: 8, 3: 5, 4: 3 }), s)).toBe(5);
    expect(majorityCommitted([1, 2, 3, 4, 5], matches({ 1: 9, 2: 9, 5: 1 }), s)).toBe(1);
  });

  it("a joint configuration commits what both halves commit", () => {
    const m = matches({ 1: 10, 2: 10, 3: 2, 4: 3, 5: 3 });
    expect(jointCommitted([3, 4, 5], [1, 2, 3], m, [])).toBe(3);
    expect(jointCommitted([1, 2, 3], [], m, [])).toBe(10);
  });

  it("a joint vote needs both majorities and is lost as soon as either is", () => {
    const votes = new Map([
      [1, true],
      [2, true],
      [4, false],
      [5, false],
    ]);
    expect(jointVoteResult([1, 2, 3], [], votes)).toBe("won");
    expect(jointVoteResult([1, 2, 3], [3, 4, 5], votes)).toBe("lost");
    expect(jointVoteResult([1, 2, 3], [1, 3, 6], votes)).toBe("pending");
  });
});

describe("conf changes", () => {
  const base: ConfState = { ...emptyConfState(), voters: [1, 2, 3] };

  it("refuses two voter changes without joint consensus", () => {
    expect(() =>
      applyConfChangeToState(base, {
        changes: [
          { type: "addNode", nodeId: 4 },
          { type: "removeNode", nodeId: 1 },
        ],
        transition: "auto",
        // A single simple step must change at most one voter; "auto" makes this joint instead.
      }),
    ).not.toThrow();
    expect(() =>
      applyConfChangeToState(
        { ...base, votersOutgoing: [1, 2, 3] },
        { changes: [{ type: "addNode", nodeId: 4 }] },
      ),
    ).toThrow(/simple config change in a joint config/);
  });

  it("enters and leaves a joint config, staging a demoted voter as learner", () => {
    const joint = applyConfChangeToState(base, {
      changes: [
        { type: "addNode", nodeId: 4 },
        { type: "addLearner", nodeId: 1 },
      ],
    });
    expect(joint).toMatchObject({
      voters: [2, 3, 4],
      votersOutgoing: [1, 2, 3],
      learnersNext: [1],
      learners: [],
      autoLeave: true,
    });
    const after = applyConfChangeToState(joint, { changes: [] });
    expect(after).toMatchObject({ voters: [2, 3, 4], votersOutgoing: [], learners: [1] });
    expect(() => applyConfChangeToState(after, { changes: [] })).toThrow(/non-joint/);
  });

  it("refuses to remove every voter", () => {
    expect(() =>
      applyConfChangeToState(
        { ...emptyConfState(), voters: [1] },
        { changes: [{ type: "removeNode", nodeId: 1 }] },
      ),
    ).toThrow(/removed all voters/);
  });
});

describe("Inflights", () => {
  it("fills by count or bytes and frees acknowledged appends in order", () => {
    const f = new Inflights(3, 100);
    f.add(5, 10);
    f.add(9, 10);
    expect(f.full()).toBe(false);
    f.add(12, 90);
    expect(f.full()).toBe(true);
    f.freeLE(9);
    expect(f.size()).toBe(1);
    expect(f.full()).toBe(false);
    const b = new Inflights(10, 50);
    b.add(1, 60);
    expect(b.full()).toBe(true);
  });
});
