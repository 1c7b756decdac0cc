// Each safety check must bite: swap in a deliberately broken rule (test-only faults on the Raft
// config) and the simulator must report the violation for some seed, found by a bounded,
// deterministic search. The Figure 8 commit rule is shown in scenarios.test.ts.
import { describe, expect, it } from "vitest";
import type { UnsafeTestingFaults } from "../src/index.ts";
import { randomRun } from "../src/sim/index.ts";

function firstViolation(faults: UnsafeTestingFaults, maxSeeds: number) {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const r = randomRun(seed, { faults });
    if (!r.ok) return { seed, error: r.error! };
  }
  return undefined;
}

describe("broken rules are caught by the simulator", () => {
  it("granting votes to candidates with stale logs breaks leader completeness", () => {
    const found = firstViolation({ grantVoteToStaleLog: true }, 100);
    expect(found, "a seed exposes the broken vote rule").toBeDefined();
    expect(found!.error).toMatch(/leader completeness|state machine safety/);
  });

  it("a follower truncating entries that already match loses committed entries", () => {
    const found = firstViolation({ truncateMatchingEntries: true }, 100);
    expect(found, "a seed exposes the broken truncation rule").toBeDefined();
    expect(found!.error).toMatch(/log ends at|log was truncated or lost|state machine safety/);
  });

  it("the same seeds are clean with the correct rules", () => {
    for (let seed = 1; seed <= 30; seed++) {
      const r = randomRun(seed);
      expect(r.error, `RAFT_SEED=${seed}`).toBeUndefined();
    }
  });
});
