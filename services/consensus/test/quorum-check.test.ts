import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { quorumRefusal } from "../src/service/quorum-check.ts";

const hearing =
  (...silent: number[]) =>
  (id: number) =>
    !silent.includes(id);

describe("quorumRefusal (the strict reconfiguration check)", () => {
  it("refuses to remove a member that answers while the voters left could not make a quorum", () => {
    const refusal = quorumRefusal([1, 2, 3], hearing(3), { type: "removeNode", nodeId: 2 });
    expect(refusal?.code).toBe(Code.FailedPrecondition);
    expect(refusal?.rawMessage).toBe(
      "removing member 2 would leave 2 voters and the leader hears from only 1 of them (nothing from member 3 within an election timeout), short of their quorum of 2: bring those members back, or remove them first",
    );
  });

  it("allows removing a member that does not answer, and a removal that leaves a quorum answering", () => {
    expect(quorumRefusal([1, 2, 3], hearing(3), { type: "removeNode", nodeId: 3 })).toBeUndefined();
    expect(quorumRefusal([1, 2, 3], hearing(), { type: "removeNode", nodeId: 2 })).toBeUndefined();
    // Five voters, one silent: four are left, three answer, quorum three.
    expect(
      quorumRefusal([1, 2, 3, 4, 5], hearing(5), { type: "removeNode", nodeId: 2 }),
    ).toBeUndefined();
    // Two silent: four are left, two answer, quorum three.
    expect(
      quorumRefusal([1, 2, 3, 4, 5], hearing(4, 5), { type: "removeNode", nodeId: 2 })?.code,
    ).toBe(Code.FailedPrecondition);
    // The last voter has a refusal of its own (ClusterService: "member N is the last voter").
    expect(quorumRefusal([1], hearing(), { type: "removeNode", nodeId: 1 })).toBeUndefined();
    // Learners do not vote.
    expect(
      quorumRefusal([1, 2, 3], hearing(2, 3), { type: "removeNode", nodeId: 4 }),
    ).toBeUndefined();
  });

  it("refuses to promote a learner when the larger quorum would not answer", () => {
    // Four voters need three; 1 and the learner 4 answer.
    const refusal = quorumRefusal([1, 2, 3], hearing(2, 3), { type: "addNode", nodeId: 4 });
    expect(refusal?.code).toBe(Code.FailedPrecondition);
    expect(refusal?.rawMessage).toMatch(
      /^promoting member 4 would make 4 voters and the leader hears from only 2 of them \(nothing from member 2, member 3 within an election timeout\), short of their quorum of 3/,
    );
    expect(quorumRefusal([1, 2, 3], hearing(3), { type: "addNode", nodeId: 4 })).toBeUndefined();
  });
});
