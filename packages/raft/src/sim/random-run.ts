import { type Random, seededRandom } from "@quartet/determinism";
import type { UnsafeTestingFaults } from "../raft.ts";
import type { NodeId } from "../types.ts";
import { SafetyViolation } from "./checker.ts";
import { Simulator } from "./cluster.ts";
import { encodePut } from "./kv.ts";

/** Options of {@link randomRun}. */
export interface RandomRunOptions {
  /** Ticks of random faults and requests before the network heals. Default 300. */
  ticks?: number;
  /** Ticks allowed, after healing, for a leader to emerge and a proposal to commit. Default 300. */
  livenessTicks?: number;
  /** Also exercise membership changes. Default true. */
  membership?: boolean;
  /** TEST-ONLY broken rules, to show the checkers catch them. */
  faults?: UnsafeTestingFaults;
  /** Called with the simulator when the run ends (for debugging a seed). */
  inspect?: (sim: Simulator) => void;
}

/** What a seeded run did, or how it failed. */
export interface RandomRunResult {
  seed: number;
  ok: boolean;
  /** The violated property or liveness failure, when `ok` is false. */
  error?: string;
  /** Proposals committed, messages delivered, virtual ms, ... */
  stats: Record<string, number | string | boolean>;
}

function pick<T>(rng: Random, xs: readonly T[]): T {
  return xs[Math.floor(rng() * xs.length)]!;
}

/**
 * Runs one seeded random scenario: a random cluster (3 or 5 nodes, random PreVote, CheckQuorum,
 * lease reads, flow-control limits, snapshot cadence), then random proposals, reads,
 * partitions, crashes and restarts, leadership transfers and membership changes over a lossy,
 * duplicating, reordering network. Then everything heals and a leader must emerge and commit a
 * new proposal within `livenessTicks`. Safety is checked after every event.
 */
export function randomRun(seed: number, opts: RandomRunOptions = {}): RandomRunResult {
  const rng = seededRandom((seed ^ 0x5bd1e995) >>> 0);
  const n = rng() < 0.7 ? 3 : 5;
  const checkQuorum = rng() < 0.7;
  const stats: RandomRunResult["stats"] = {
    nodes: n,
    preVote: rng() < 0.7,
    checkQuorum,
    leaseReads: checkQuorum && rng() < 0.25,
    // From the seed, not the generator, so the seeds' other choices stay as they were.
    sendBeforePersist: seed % 2 === 1,
    lazyCommit: seed % 4 >= 2,
  };
  const sim = new Simulator({
    seed,
    nodes: n,
    raft: {
      preVote: stats.preVote as boolean,
      checkQuorum,
      readOnlyOption: stats.leaseReads ? "leaseBased" : "safe",
      sendBeforePersist: stats.sendBeforePersist as boolean,
      lazyCommit: stats.lazyCommit as boolean,
      maxInflightMsgs: pick(rng, [1, 4, 256]),
      maxInflightBytes: pick(rng, [0, 0, 64]),
      maxSizePerMsg: pick(rng, [8, 64, 1 << 20]),
      maxSnapshotChunkBytes: pick(rng, [16, 128, 1 << 20]),
      ...(opts.faults ? { unsafeTestingFaults: opts.faults } : {}),
    },
    network: {
      dropRate: pick(rng, [0, 0.05, 0.2]),
      duplicateRate: pick(rng, [0, 0.05, 0.1]),
      minDelay: 1,
      maxDelay: pick(rng, [5, 20, 60]),
    },
    snapshotEvery: pick(rng, [0, 0, 8, 30]),
    keepEntries: pick(rng, [0, 2, 10]),
  });
  const ticks = opts.ticks ?? 300;
  const membership = opts.membership ?? true;
  let proposed = 0;
  let reads = 0;
  let confChanges = 0;
  const pool: NodeId[] = Array.from({ length: n + 2 }, (_, i) => i + 1);
  try {
    for (let t = 0; t < ticks; t++) {
      const r = rng();
      const ids = [...sim.nodes.keys()];
      if (r < 0.3) {
        const via = rng() < 0.8 ? undefined : pick(rng, ids);
        if (sim.propose(encodePut(`k${Math.floor(rng() * 5)}`, `s${seed}p${proposed}`), via).ok)
          proposed++;
      } else if (r < 0.36) {
        if (sim.readIndex(`read-${reads}`, pick(rng, ids)).ok) reads++;
      } else if (r < 0.39) {
        const shuffled = [...ids].sort(() => rng() - 0.5);
        const cut = 1 + Math.floor(rng() * (shuffled.length - 1));
        sim.partition(shuffled.slice(0, cut), shuffled.slice(cut));
      } else if (r < 0.42) {
        sim.heal();
      } else if (r < 0.44) {
        sim.crash(pick(rng, ids));
      } else if (r < 0.48) {
        const down = ids.filter((id) => !sim.node(id).up);
        if (down.length > 0) sim.restart(pick(rng, down));
      } else if (r < 0.49) {
        sim.transferLeadership(pick(rng, ids));
      } else if (r < 0.505 && membership) {
        if (randomConfChange(sim, rng, pool)) confChanges++;
      }
      sim.runTicks(1);
    }
    // Heal: reliable network, every member running, non-members stopped.
    sim.heal();
    sim.setNetwork({ dropRate: 0, duplicateRate: 0, minDelay: 1, maxDelay: 5 });
    for (const id of sim.nodes.keys()) sim.restart(id);
    const livenessTicks = opts.livenessTicks ?? 300;
    const start = sim.now;
    const leaderUp = sim.runUntil(() => stableLeader(sim) !== undefined, livenessTicks);
    if (!leaderUp) return fail(`liveness: no leader within ${livenessTicks} ticks after healing`);
    stopNonMembers(sim);
    let committed = false;
    const deadline = start + livenessTicks * 10;
    while (!committed && sim.now < deadline) {
      const res = sim.propose(encodePut("final", `s${seed}`));
      if (!res.ok) {
        sim.runTicks(1);
        continue;
      }
      committed = sim.runUntil(() => sim.isCommitted(res.index, res.term), 30);
    }
    if (!committed)
      return fail(`liveness: no proposal committed within ${livenessTicks} ticks after healing`);
    Object.assign(stats, {
      proposed,
      reads,
      readsChecked: sim.checker.readsChecked,
      confChanges,
      commit: sim.checker.maxCommit,
      delivered: sim.delivered,
      virtualMs: sim.now,
    });
    return { seed, ok: true, stats };
  } catch (err) {
    if (err instanceof SafetyViolation) return fail(err.message);
    throw err;
  }

  function fail(error: string): RandomRunResult {
    opts.inspect?.(sim);
    return { seed, ok: false, error, stats };
  }
}

/** A leader that the running members of its configuration acknowledge. */
function stableLeader(sim: Simulator): NodeId | undefined {
  const id = sim.leader();
  if (id === undefined) return undefined;
  const r = sim.node(id).raw!.raft;
  const voters = r.config.voters;
  let agree = 0;
  for (const v of voters) {
    const raw = sim.nodes.get(v)?.raw;
    if (raw !== undefined && raw.raft.term === r.term && raw.raft.lead === id) agree++;
  }
  return agree * 2 > voters.length ? id : undefined;
}

/** Nodes removed from the configuration are decommissioned, as an operator would. */
function stopNonMembers(sim: Simulator): void {
  const id = sim.leader();
  if (id === undefined) return;
  const cfg = sim.node(id).raw!.raft.config;
  const members = new Set([...cfg.voters, ...cfg.votersOutgoing, ...cfg.learners]);
  for (const n of sim.nodes.keys()) if (!members.has(n)) sim.crash(n);
}

function randomConfChange(sim: Simulator, rng: Random, pool: NodeId[]): boolean {
  const lead = sim.leader();
  if (lead === undefined) return false;
  const cfg = sim.node(lead).raw!.raft.config;
  // An explicit joint config stays until the application leaves it.
  if (cfg.votersOutgoing.length > 0)
    return !cfg.autoLeave && sim.proposeConfChange({ changes: [] }).ok;
  const members = new Set([...cfg.voters, ...cfg.learners]);
  const outsiders = pool.filter((id) => !members.has(id));
  const r = rng();
  if (r < 0.35 && outsiders.length > 0) {
    const id = pick(rng, outsiders);
    sim.addNode(id);
    return sim.proposeConfChange({ changes: [{ type: "addLearner", nodeId: id }] }).ok;
  }
  if (r < 0.6 && cfg.learners.length > 0) {
    const id = pick(rng, cfg.learners);
    return sim.proposeConfChange({ changes: [{ type: "addNode", nodeId: id }] }).ok;
  }
  if (r < 0.8 && cfg.voters.length > 3) {
    const id = pick(rng, cfg.voters);
    return sim.proposeConfChange({ changes: [{ type: "removeNode", nodeId: id }] }).ok;
  }
  if (cfg.learners.length > 0 && cfg.voters.length >= 3) {
    // Swap a learner in for a voter through joint consensus.
    const add = pick(rng, cfg.learners);
    const remove = pick(rng, cfg.voters);
    return sim.proposeConfChange({
      changes: [
        { type: "addNode", nodeId: add },
        { type: "removeNode", nodeId: remove },
      ],
      transition: rng() < 0.5 ? "auto" : "explicit",
    }).ok;
  }
  return false;
}
