// Cluster scenarios, named after the Raft paper's sections and figures where they come from.
// Every run is checked after every event by the simulator's safety checker.
import { describe, expect, it } from "vitest";
import type { Message } from "../src/index.ts";
import { encodePut, figure8Run, Simulator } from "../src/sim/index.ts";
import { commitPut, countMessages, electLeader, termOf, waitApplied } from "./helpers.ts";

describe("leader election (§5.2)", () => {
  it("elects exactly one leader in a new cluster, and every node agrees on it", () => {
    const sim = new Simulator({ seed: 1, nodes: 5 });
    const lead = electLeader(sim);
    sim.runTicks(20);
    expect(sim.leader()).toBe(lead);
    for (const n of sim.nodes.values()) expect(n.raw!.raft.lead).toBe(lead);
  });

  it("re-elects a leader after the leader is lost, in a higher term", () => {
    const sim = new Simulator({ seed: 2 });
    const first = electLeader(sim);
    const firstTerm = termOf(sim, first);
    sim.crash(first);
    const second = electLeader(sim);
    expect(second).not.toBe(first);
    expect(termOf(sim, second)).toBeGreaterThan(firstTerm);
    // The old leader comes back as a follower of the new one.
    sim.restart(first);
    sim.runTicks(30);
    expect(sim.node(first).raw!.raft.lead).toBe(second);
  });

  it("elects no leader without a quorum", () => {
    const sim = new Simulator({ seed: 3, nodes: 5 });
    const lead = electLeader(sim);
    const others = [...sim.nodes.keys()].filter((id) => id !== lead);
    // Leader plus one follower: 2 of 5. The other three are down.
    for (const id of others.slice(1)) sim.crash(id);
    sim.runTicks(300);
    expect(sim.leader()).toBeUndefined();
    // A quorum returns: a leader emerges again.
    sim.restart(others[1]!);
    electLeader(sim);
  });

  it("votes only for candidates whose log is at least as up to date (§5.4.1)", () => {
    const sim = new Simulator({ seed: 4 });
    const lead = electLeader(sim);
    const [a, b] = [...sim.nodes.keys()].filter((id) => id !== lead) as [number, number];
    // b misses the latest entries; then the leader dies.
    sim.isolate(b);
    for (let i = 0; i < 5; i++) commitPut(sim, "k", `v${i}`);
    sim.crash(lead);
    sim.heal();
    // b can't win against a's longer log: a becomes leader.
    expect(electLeader(sim)).toBe(a);
  });
});

describe("log replication (§5.3)", () => {
  it("reaches agreement despite a lost follower, and the follower catches up", () => {
    const sim = new Simulator({ seed: 5 });
    const lead = electLeader(sim);
    const lost = [...sim.nodes.keys()].find((id) => id !== lead)!;
    sim.isolate(lost);
    const { index } = commitPut(sim, "a", "1");
    commitPut(sim, "b", "2");
    expect(sim.node(lost).kv.data.has("a")).toBe(false);
    sim.heal();
    waitApplied(sim, index + 1);
    expect(sim.node(lost).kv.data.get("b")).toBe("2");
  });

  it("reaches no agreement without a quorum, then commits once the quorum is back", () => {
    const sim = new Simulator({ seed: 6, nodes: 5 });
    const lead = electLeader(sim);
    const followers = [...sim.nodes.keys()].filter((id) => id !== lead);
    for (const id of followers.slice(0, 3)) sim.crash(id);
    const res = sim.propose(encodePut("x", "1"));
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    sim.runTicks(50);
    expect(sim.isCommitted(res.index, res.term)).toBe(false);
    expect(sim.checker.maxCommit).toBeLessThan(res.index);
    for (const id of followers.slice(0, 3)) sim.restart(id);
    // The same leader may have stepped down (CheckQuorum); the entry commits under some leader
    // or is replaced, never both. Wait for the cluster to settle and commit something new.
    electLeader(sim);
    commitPut(sim, "y", "2");
  });

  it("a partitioned leader rejoins as a follower and drops its uncommitted entries", () => {
    const sim = new Simulator({ seed: 7 });
    const old = electLeader(sim);
    commitPut(sim, "k", "committed");
    const rest = [...sim.nodes.keys()].filter((id) => id !== old);
    sim.partition([old], rest);
    const lost = sim.propose(encodePut("k", "lost"), old);
    expect(lost.ok).toBe(true);
    const lead = electLeader(sim, 300, rest);
    expect(rest).toContain(lead);
    const { index } = commitPut(sim, "k", "new");
    sim.heal();
    waitApplied(sim, index);
    expect(sim.node(old).raw!.raft.state).toBe("follower");
    expect(sim.node(old).kv.data.get("k")).toBe("new");
    if (lost.ok) expect(sim.isCommitted(lost.index, lost.term)).toBe(false);
  });

  it("backs up fast over long divergent logs: rejections scale with terms, not entries", () => {
    const sim = new Simulator({
      seed: 8,
      nodes: 5,
      raft: { maxSizePerMsg: 1 << 20 },
      network: { minDelay: 1, maxDelay: 2 },
    });
    const lead1 = electLeader(sim);
    commitPut(sim, "k", "base");
    const ids = [...sim.nodes.keys()];
    const f1 = ids.find((id) => id !== lead1)!;
    const others = ids.filter((id) => id !== lead1 && id !== f1);
    // The old leader and one follower take 50 entries that never commit.
    sim.partition([lead1, f1], others);
    for (let i = 0; i < 50; i++) sim.propose(encodePut("dead", `${i}`), lead1);
    sim.runTicks(3);
    // The majority side elects a leader and commits 50 different entries.
    const lead2 = electLeader(sim, 300, others);
    let last = 0;
    for (let i = 0; i < 50; i++) {
      const r = sim.propose(encodePut("live", `${i}`), lead2);
      if (r.ok) last = r.index;
    }
    waitApplied(sim, last, others);
    const rejects = countMessages(sim, (m: Message) => m.type === "appResp" && m.reject);
    sim.heal();
    waitApplied(sim, last);
    for (const id of ids) expect(sim.node(id).kv.data.get("live")).toBe("49");
    expect(sim.node(lead1).kv.data.has("dead")).toBe(false);
    // Naive backtracking would need ~50 rejections per divergent follower.
    expect(rejects.n).toBeLessThan(10);
  });

  it("batches proposals made before one Ready into one append per follower", () => {
    const sim = new Simulator({ seed: 9 });
    const lead = electLeader(sim);
    sim.runTicks(5);
    const appends = countMessages(sim, (m) => m.type === "app" && m.entries.length > 0);
    for (let i = 0; i < 100; i++) sim.propose(encodePut("k", `${i}`), lead);
    sim.runFor(4);
    // One batched append per follower carried all 100 entries.
    expect(appends.n).toBe(2);
  });
});

describe("persistence", () => {
  it("survives a crash and restart of all nodes: committed data, terms and votes persist", () => {
    const sim = new Simulator({ seed: 10 });
    electLeader(sim);
    const { index } = commitPut(sim, "durable", "yes");
    waitApplied(sim, index);
    const terms = new Map([...sim.nodes.keys()].map((id) => [id, termOf(sim, id)]));
    for (const id of sim.nodes.keys()) sim.crash(id);
    for (const id of sim.nodes.keys()) sim.restart(id);
    for (const id of sim.nodes.keys()) expect(termOf(sim, id)).toBe(terms.get(id));
    waitApplied(sim, index);
    for (const n of sim.nodes.values()) expect(n.kv.data.get("durable")).toBe("yes");
    electLeader(sim);
    commitPut(sim, "after", "restart");
  });

  it("loses only what was never reported persisted when a node crashes mid-Ready", () => {
    // A long disk delay: crashes land between ready() and advance() on purpose.
    const sim = new Simulator({ seed: 11, diskDelay: [5, 9] });
    const lead = electLeader(sim, 500);
    const res = sim.propose(encodePut("k", "v"), lead);
    sim.crash(lead); // before its Ready (holding the entry) was persisted
    sim.restart(lead);
    expect(sim.node(lead).storage.lastIndex()).toBeLessThan(res.ok ? res.index : 0);
    electLeader(sim, 500);
    commitPut(sim, "k2", "v2", undefined, 300);
  });
});

describe("the paper's Figure 8", () => {
  /**
   * The exact schedule of Figure 8 on five nodes (S1..S5). Returns the simulator's violation,
   * or undefined, and whether S1 counted the term-2 entry as committed in step (c).
   */
  function figure8(commitPreviousTermByCounting: boolean) {
    const sim = new Simulator({
      seed: 88,
      nodes: 5,
      raft: {
        preVote: false,
        checkQuorum: false,
        electionTick: 1000, // elections happen only when the script says so
        maxSizePerMsg: 1,
        unsafeTestingFaults: { commitPreviousTermByCounting },
      },
    });
    const hasEntry = (id: number, index: number, term: number) =>
      sim.node(id).storage.term(index) === term;
    const win = (id: number) => {
      // Campaign until elected (a restarted node first loses in terms it already missed).
      for (let i = 0; i < 3 && sim.leader() !== id; i++) {
        sim.campaign(id);
        sim.runUntil(() => sim.leader() === id, 5);
      }
      expect(sim.leader()).toBe(id);
    };
    let countedCommit = false;
    try {
      // (a) S1 leads term 2; its entry (2, t2) reaches only S2.
      sim.filter = (m) => m.type !== "app" || (m.from === 1 && m.to === 2);
      win(1);
      expect(sim.runUntil(() => hasEntry(2, 2, 2), 50)).toBe(true);
      sim.crash(1);
      // (b) S5 leads term 3 with votes from S3, S4; its entry (2, t3) stays on S5.
      sim.filter = (m) => m.type !== "app";
      win(5);
      expect(sim.runUntil(() => hasEntry(5, 2, 3), 50)).toBe(true);
      sim.crash(5);
      // (c) S1 restarts and leads term 4; (2, t2) reaches S2, S3, S4, but S1's own term-4
      // entry reaches nobody (stripped from appends).
      sim.restart(1);
      sim.filter = (m) => {
        if (m.type === "app") m.entries = m.entries.filter((e) => e.term < 4);
        return true;
      };
      win(1);
      expect(termOf(sim, 1)).toBe(4);
      expect(sim.runUntil(() => [3, 4].every((id) => hasEntry(id, 2, 2)), 50)).toBe(true);
      sim.runFor(20);
      countedCommit = sim.node(1).raw!.raft.log.committed >= 2;
      sim.crash(1);
      // (d) S5 restarts and wins term 5 (its last term 3 beats their 2): it overwrites
      // index 2 everywhere and commits.
      sim.restart(5);
      sim.filter = undefined;
      win(5);
      expect(termOf(sim, 5)).toBe(5);
      expect(sim.runUntil(() => sim.node(5).raw!.raft.log.committed >= 3, 100)).toBe(true);
      for (const id of [2, 3, 4]) expect(sim.runUntil(() => hasEntry(id, 2, 3), 50)).toBe(true);
      return { violation: undefined, countedCommit };
    } catch (err) {
      return { violation: (err as Error).message, countedCommit };
    }
  }

  it("Figure 8 (reliable): a leader never commits an old-term entry by counting replicas", () => {
    const { violation, countedCommit } = figure8(false);
    expect(violation).toBeUndefined();
    expect(countedCommit).toBe(false);
  });

  it("Figure 8 (unreliable): random leader crashes over a lossy network stay safe", () => {
    for (let seed = 1; seed <= 15; seed++) {
      const err = figure8Run(seed, { unreliable: true, rounds: 150 });
      expect(err, `RAFT_SEED=${seed}`).toBeUndefined();
    }
  });

  it("Figure 8 with the broken commit rule is caught by the checker", () => {
    const { violation, countedCommit } = figure8(true);
    expect(countedCommit).toBe(true);
    // S1 "committed" (2, t2) in term 4; S5 then wins term 5 without it.
    expect(violation).toMatch(/leader completeness: node 5 leads term 5 without committed entry 2/);
  });
});

describe("unreliable networks", () => {
  it("keeps every node's state identical through churn on a lossy, reordering network", () => {
    const sim = new Simulator({
      seed: 12,
      nodes: 5,
      network: { dropRate: 0.1, duplicateRate: 0.1, minDelay: 1, maxDelay: 40 },
    });
    let n = 0;
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 5; i++) if (sim.propose(encodePut(`k${i}`, `${round}`)).ok) n++;
      if (round % 7 === 3) sim.crash(sim.leader() ?? 1);
      if (round % 7 === 5) for (const id of sim.nodes.keys()) sim.restart(id);
      if (round % 11 === 0) sim.partition([1, 2], [3, 4, 5]);
      if (round % 11 === 4) sim.heal();
      sim.runTicks(5);
    }
    expect(n).toBeGreaterThan(20);
    sim.heal();
    sim.setNetwork({ dropRate: 0, duplicateRate: 0, maxDelay: 5 });
    for (const id of sim.nodes.keys()) sim.restart(id);
    electLeader(sim);
    const { index } = commitPut(sim, "end", "1");
    waitApplied(sim, index);
    const states = [...sim.nodes.values()].map((node) => JSON.stringify([...node.kv.data]));
    expect(new Set(states).size).toBe(1);
  });
});

describe("snapshots (§7)", () => {
  it("compacts the log while churning, and a node far behind is restored from a chunked snapshot", () => {
    const sim = new Simulator({
      seed: 13,
      snapshotEvery: 10,
      keepEntries: 0,
      raft: { maxSnapshotChunkBytes: 16 },
      network: { dropRate: 0.05, minDelay: 1, maxDelay: 10 },
    });
    const lead = electLeader(sim);
    const behind = [...sim.nodes.keys()].find((id) => id !== lead)!;
    sim.crash(behind);
    for (let i = 0; i < 60; i++) {
      sim.propose(encodePut(`k${i % 7}`, `v${i}`));
      sim.runTicks(1);
    }
    electLeader(sim);
    const { index } = commitPut(sim, "last", "x");
    waitApplied(sim, index, sim.upNodes());
    const leaderStore = sim.node(sim.leader()!).storage;
    expect(leaderStore.firstIndex()).toBeGreaterThan(sim.node(behind).storage.lastIndex() + 1);
    const chunks = countMessages(sim, (m) => m.type === "snap" && m.to === behind);
    sim.restart(behind);
    waitApplied(sim, index);
    expect(chunks.n).toBeGreaterThan(1);
    expect(sim.node(behind).storage.snapshot().metadata.index).toBeGreaterThan(1);
    const want = JSON.stringify([...sim.node(sim.leader()!).kv.data]);
    expect(JSON.stringify([...sim.node(behind).kv.data])).toBe(want);
    // It restarts from its own snapshot too (then applies its own log after it).
    sim.crash(behind);
    sim.restart(behind);
    expect(sim.node(behind).kv.applied).toBe(sim.node(behind).storage.snapshot().metadata.index);
    expect(sim.node(behind).kv.applied).toBeGreaterThan(1);
    sim.filter = (m) => m.to !== behind && m.from !== behind;
    waitApplied(sim, index, [behind]);
    expect(JSON.stringify([...sim.node(behind).kv.data].filter(([k]) => k !== "last"))).toBe(
      JSON.stringify([...sim.node(sim.leader()!).kv.data].filter(([k]) => k !== "last")),
    );
  });
});

describe("membership (§6)", () => {
  it("a learner catches up without voting, then is promoted to voter", () => {
    const sim = new Simulator({ seed: 14 });
    electLeader(sim);
    for (let i = 0; i < 5; i++) commitPut(sim, "k", `${i}`);
    sim.addNode(4);
    const add = sim.proposeConfChange({ changes: [{ type: "addLearner", nodeId: 4 }] });
    expect(add.ok).toBe(true);
    const { index } = commitPut(sim, "after-learner", "1");
    waitApplied(sim, index);
    expect(sim.node(4).kv.data.get("k")).toBe("4");
    const lead = sim.leader()!;
    expect(sim.node(lead).raw!.status().config.learners).toEqual([4]);
    expect(sim.node(lead).raw!.status().config.voters).toEqual([1, 2, 3]);
    // Promotion.
    expect(sim.proposeConfChange({ changes: [{ type: "addNode", nodeId: 4 }] }).ok).toBe(true);
    expect(sim.runUntil(() => sim.node(lead).raw!.status().config.voters.includes(4), 100)).toBe(
      true,
    );
    // With 4 voters, a quorum is 3: losing two nodes stops commits; losing one does not.
    sim.crash([1, 2, 3].find((id) => id !== lead)!);
    commitPut(sim, "three-of-four", "ok");
  });

  it("changes membership through joint consensus under partitions, and a removed leader steps down", () => {
    const sim = new Simulator({ seed: 15, nodes: 3 });
    const lead = electLeader(sim);
    sim.addNode(4);
    sim.addNode(5);
    expect(
      sim.proposeConfChange({
        changes: [
          { type: "addLearner", nodeId: 4 },
          { type: "addLearner", nodeId: 5 },
        ],
      }).ok,
    ).toBe(true);
    sim.runTicks(20);
    // Swap the leader and one follower out for 4 and 5 in one joint change, while a follower
    // is partitioned away.
    const stay = [1, 2, 3].find((id) => id !== lead)!;
    const go = [1, 2, 3].find((id) => id !== lead && id !== stay)!;
    sim.isolate(go);
    const cc = sim.proposeConfChange({
      changes: [
        { type: "addNode", nodeId: 4 },
        { type: "addNode", nodeId: 5 },
        { type: "removeNode", nodeId: lead },
        { type: "removeNode", nodeId: go },
      ],
    });
    expect(cc.ok).toBe(true);
    // The joint config needs a majority of both {1,2,3} and {stay,4,5}: it commits, the leader
    // leaves the joint config automatically, and then steps down as it is no longer a voter.
    const done = sim.runUntil(() => {
      const cfg = sim.node(stay).raw!.status().config;
      return cfg.votersOutgoing.length === 0 && cfg.voters.join() === [stay, 4, 5].sort().join();
    }, 300);
    expect(done).toBe(true);
    expect(sim.runUntil(() => sim.node(lead).raw!.raft.state !== "leader", 50)).toBe(true);
    sim.crash(lead);
    sim.crash(go);
    sim.heal();
    const newLead = electLeader(sim);
    expect([stay, 4, 5]).toContain(newLead);
    const { index } = commitPut(sim, "new-config", "yes");
    waitApplied(sim, index, [stay, 4, 5]);
  });

  it("refuses a second conf change while one is pending and a two-voter change without joint consensus", () => {
    const sim = new Simulator({ seed: 16 });
    electLeader(sim);
    sim.addNode(4);
    sim.addNode(5);
    const bad = sim.proposeConfChange({
      changes: [
        { type: "addNode", nodeId: 4 },
        { type: "addNode", nodeId: 5 },
      ],
      transition: "auto",
    });
    // "auto" with two changes goes through joint consensus, so it is accepted...
    expect(bad.ok).toBe(true);
    // ...and a second one before it is applied is refused.
    const second = sim.proposeConfChange({ changes: [{ type: "removeNode", nodeId: 4 }] });
    expect(second).toMatchObject({ ok: false, reason: "conf-change-pending" });
  });
});

describe("leadership transfer (§3.10 of the thesis)", () => {
  it("transfers to a caught-up follower, refusing proposals meanwhile", () => {
    const sim = new Simulator({ seed: 17 });
    const lead = electLeader(sim);
    commitPut(sim, "k", "v");
    const target = [...sim.nodes.keys()].find((id) => id !== lead)!;
    // The target is behind: the leader catches it up first.
    sim.isolate(target);
    commitPut(sim, "k", "v2");
    sim.heal();
    expect(sim.transferLeadership(target)).toEqual({ ok: true });
    expect(sim.propose(encodePut("k", "during"), lead)).toMatchObject({
      ok: false,
      reason: "transferring",
      leaderId: lead,
    });
    expect(sim.runUntil(() => sim.leader() === target, 50)).toBe(true);
    expect(sim.node(lead).raw!.raft.state).toBe("follower");
    commitPut(sim, "k", "v3", target);
  });

  it("aborts a transfer to an unreachable node after an election timeout", () => {
    const sim = new Simulator({ seed: 18 });
    const lead = electLeader(sim);
    const target = [...sim.nodes.keys()].find((id) => id !== lead)!;
    sim.crash(target);
    sim.transferLeadership(target);
    expect(sim.propose(encodePut("k", "x"), lead)).toMatchObject({ reason: "transferring" });
    sim.runTicks(12);
    expect(sim.leader()).toBe(lead);
    expect(sim.propose(encodePut("k", "x"), lead).ok).toBe(true);
  });
});

describe("linearizable reads (§8)", () => {
  it("ReadIndex on a partitioned old leader never serves a stale read", () => {
    const sim = new Simulator({ seed: 19, nodes: 5 });
    const old = electLeader(sim);
    commitPut(sim, "k", "v1");
    const rest = [...sim.nodes.keys()].filter((id) => id !== old);
    sim.partition([old, rest[0]!], rest.slice(1));
    const lead = electLeader(sim, 300, rest.slice(1));
    const { index } = commitPut(sim, "k", "v2", lead);
    // The old leader still believes it leads (it may not have noticed yet).
    expect(sim.readIndex("stale?", old).ok).toBe(true);
    sim.runTicks(30);
    expect(sim.node(old).readStates.find((r) => r.context === "stale?")).toBeUndefined();
    // The new leader answers at or after the write; the value read is the new one.
    expect(sim.readIndex("fresh", lead).ok).toBe(true);
    expect(sim.runUntil(() => sim.node(lead).readStates.length > 0, 20)).toBe(true);
    const rs = sim.node(lead).readStates[0]!;
    expect(rs.index).toBeGreaterThanOrEqual(index);
    waitApplied(sim, rs.index, [lead]);
    expect(sim.node(lead).kv.data.get("k")).toBe("v2");
    expect(sim.checker.readsChecked).toBe(1);
  });

  it("a follower's read is forwarded to the leader and answered with a read index", () => {
    const sim = new Simulator({ seed: 20 });
    const lead = electLeader(sim);
    const { index } = commitPut(sim, "k", "v");
    const f = [...sim.nodes.keys()].find((id) => id !== lead)!;
    expect(sim.readIndex("r1", f).ok).toBe(true);
    expect(sim.runUntil(() => sim.node(f).readStates.length > 0, 20)).toBe(true);
    expect(sim.node(f).readStates[0]!.index).toBeGreaterThanOrEqual(index);
  });

  it("lease-based reads answer without a heartbeat round while the lease holds", () => {
    const sim = new Simulator({ seed: 21, raft: { readOnlyOption: "leaseBased" } });
    const lead = electLeader(sim);
    commitPut(sim, "k", "v");
    sim.runTicks(2);
    const heartbeats = countMessages(sim, (m) => m.type === "heartbeat" && m.context !== "");
    sim.readIndex("lease", lead);
    sim.runFor(3);
    expect(sim.node(lead).readStates.map((r) => r.context)).toEqual(["lease"]);
    expect(heartbeats.n).toBe(0);
  });
});

describe("PreVote and CheckQuorum (§9.6 of the thesis)", () => {
  it("a partitioned node that rejoins does not disrupt the leader (PreVote)", () => {
    const sim = new Simulator({ seed: 22 });
    const lead = electLeader(sim);
    const term = termOf(sim, lead);
    const loner = [...sim.nodes.keys()].find((id) => id !== lead)!;
    sim.isolate(loner);
    sim.runTicks(100);
    // Pre-elections never succeed, so the loner's term did not move.
    expect(termOf(sim, loner)).toBe(term);
    sim.heal();
    sim.runTicks(30);
    expect(sim.leader()).toBe(lead);
    expect(termOf(sim, lead)).toBe(term);
  });

  it("without PreVote, the same rejoin forces an election (the problem PreVote solves)", () => {
    const sim = new Simulator({ seed: 22, raft: { preVote: false, checkQuorum: false } });
    const lead = electLeader(sim);
    const term = termOf(sim, lead);
    const loner = [...sim.nodes.keys()].find((id) => id !== lead)!;
    sim.isolate(loner);
    sim.runTicks(100);
    expect(termOf(sim, loner)).toBeGreaterThan(term + 2);
    sim.heal();
    // The loner's higher term deposes the leader: a new election follows.
    electLeader(sim, 300, undefined, term);
  });

  it("a leader cut off from the quorum steps down within an election timeout (CheckQuorum)", () => {
    const sim = new Simulator({ seed: 23 });
    const lead = electLeader(sim);
    sim.isolate(lead);
    expect(sim.runUntil(() => sim.node(lead).raw!.raft.state !== "leader", 25)).toBe(true);
    expect(sim.propose(encodePut("k", "v"), lead)).toMatchObject({
      ok: false,
      reason: "no-leader",
    });
  });
});

describe("proposals on a non-leader", () => {
  it("are refused with the known leader, never silently dropped", () => {
    const sim = new Simulator({ seed: 24 });
    const lead = electLeader(sim);
    sim.runTicks(3);
    const f = [...sim.nodes.keys()].find((id) => id !== lead)!;
    expect(sim.propose(encodePut("k", "v"), f)).toMatchObject({
      ok: false,
      reason: "not-leader",
      leaderId: lead,
    });
    expect(sim.node(f).raw!.transferLeadership(f)).toMatchObject({
      ok: false,
      reason: "not-leader",
    });
  });
});
