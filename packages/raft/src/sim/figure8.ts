import { seededRandom } from "@quartet/determinism";
import type { UnsafeTestingFaults } from "../raft.ts";
import { SafetyViolation } from "./checker.ts";
import { Simulator } from "./cluster.ts";
import { encodePut } from "./kv.ts";

/** Options of {@link figure8Run}. */
export interface Figure8Options {
  /** Rounds of propose / maybe crash the leader / maybe restart. Default 200. */
  rounds?: number;
  /** Drop, duplicate and delay messages too ("Figure 8 unreliable"). Default false. */
  unreliable?: boolean;
  /** TEST-ONLY broken rules. */
  faults?: UnsafeTestingFaults;
}

/**
 * The schedule of the Raft paper's Figure 8, randomized: five nodes, leaders crash soon after
 * they append (before their entries spread), crashed nodes come back, and appends carry one
 * entry each, so old-term entries reach a majority while the new leader's own entry has not.
 * Returns the violation message, or undefined when the run was safe and then live.
 */
export function figure8Run(seed: number, opts: Figure8Options = {}): string | undefined {
  const rng = seededRandom((seed ^ 0x2545f491) >>> 0);
  const sim = new Simulator({
    seed,
    nodes: 5,
    raft: {
      preVote: false,
      checkQuorum: false,
      maxSizePerMsg: 1,
      // Leaders that crash soon after appending: odd seeds let their appends leave first.
      sendBeforePersist: seed % 2 === 1,
      ...(opts.faults ? { unsafeTestingFaults: opts.faults } : {}),
    },
    network: opts.unreliable
      ? { dropRate: 0.1, duplicateRate: 0.05, minDelay: 1, maxDelay: 30 }
      : { minDelay: 1, maxDelay: 5 },
  });
  const rounds = opts.rounds ?? 200;
  try {
    for (let i = 0; i < rounds; i++) {
      const lead = sim.leader();
      if (lead !== undefined) sim.propose(encodePut("x", `${seed}-${i}`));
      // Mostly crash mid-replication (a few virtual ms); sometimes let things settle.
      sim.runFor(rng() < 0.1 ? 10 * (1 + Math.floor(rng() * 20)) : 1 + Math.floor(rng() * 12));
      const now = sim.leader();
      if (now !== undefined && rng() < 0.5) sim.crash(now);
      const down = [...sim.nodes.values()].filter((n) => !n.up);
      if (sim.nodes.size - down.length < 3 || (down.length > 0 && rng() < 0.2))
        sim.restart(down[Math.floor(rng() * down.length)]!.id);
    }
    for (const id of sim.nodes.keys()) sim.restart(id);
    sim.setNetwork({ dropRate: 0, duplicateRate: 0, minDelay: 1, maxDelay: 5 });
    let committed = false;
    for (let attempt = 0; attempt < 30 && !committed; attempt++) {
      sim.runUntil(() => sim.leader() !== undefined, 100);
      const res = sim.propose(encodePut("x", "final"));
      if (res.ok) committed = sim.runUntil(() => sim.isCommitted(res.index, res.term), 30);
    }
    return committed ? undefined : "liveness: no proposal committed after all nodes restarted";
  } catch (err) {
    if (err instanceof SafetyViolation) return err.message;
    throw err;
  }
}
