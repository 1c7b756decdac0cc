// Flow control between a leader and one follower: the append window and snapshot transfers.
import { describe, expect, it } from "vitest";
import { MemoryStorage, type Message, RawNode } from "../src/index.ts";
import { encodePut, Simulator } from "../src/sim/index.ts";
import { commitPut, electLeader, waitApplied } from "./helpers.ts";

/** Three RawNodes whose messages the test routes by hand. */
function handCluster(maxInflightMsgs: number) {
  const ids = [1, 2, 3];
  const storages = new Map(ids.map((id) => [id, MemoryStorage.bootstrap({ voters: ids })]));
  const nodes = new Map(
    ids.map((id) => [id, new RawNode({ id, storage: storages.get(id)!, maxInflightMsgs })]),
  );
  const outbox: Message[] = [];
  /** Handles every Ready of a node (persist, apply) and queues what it sends. */
  const settle = (id: number) => {
    const raw = nodes.get(id)!;
    const st = storages.get(id)!;
    while (raw.hasReady()) {
      const rd = raw.ready();
      if (rd.snapshot) st.applySnapshot(rd.snapshot);
      st.append(rd.entries);
      if (rd.hardState) st.setHardState(rd.hardState);
      outbox.push(...rd.messages);
      raw.advance();
    }
  };
  const deliver = (m: Message) => {
    nodes.get(m.to)!.step(m);
    settle(m.to);
  };
  /** Delivers everything queued (and what that causes) except what `hold` keeps back. */
  const run = (hold: (m: Message) => boolean = () => false): Message[] => {
    const held: Message[] = [];
    for (let m = outbox.shift(); m !== undefined; m = outbox.shift()) {
      if (hold(m)) held.push(m);
      else deliver(m);
    }
    return held;
  };
  nodes.get(1)!.campaign();
  settle(1);
  run();
  const leader = nodes.get(1)!;
  const progress = () => leader.raft.progress.get(2)!;
  return { nodes, leader, outbox, settle, deliver, run, progress };
}

describe("the append window", () => {
  it("pauses a follower whose window is full instead of probing past it, so late appends are not mistaken for lost ones", () => {
    const c = handCluster(2);
    expect(c.progress().state).toBe("replicate");
    // Two appends to node 2 fill its window; they are late, not lost.
    const late: Message[] = [];
    for (const v of ["a", "b", "c"]) {
      c.leader.propose(encodePut("k", v));
      c.settle(1);
      late.push(...c.run((m) => m.to === 2 && m.type === "app"));
    }
    expect(late.length).toBe(2);
    // A heartbeat round with the appends still on their way: nothing more goes to node 2.
    c.leader.tick();
    c.settle(1);
    const sentTo2: Message[] = [];
    c.run((m) => {
      if (m.to === 2 && m.type === "app") sentTo2.push(m);
      return false;
    });
    expect(sentTo2).toEqual([]);
    expect(c.progress().state).toBe("replicate");
    // The late appends arrive: node 2 catches up and stays in replicate.
    for (const m of late) c.deliver(m);
    c.run();
    expect(c.progress().state).toBe("replicate");
    expect(c.progress().match).toBe(c.leader.raft.log.lastIndex());
  });

  it("treats an append as lost when a heartbeat sent a round after it is answered first, and sends again from the follower's match", () => {
    const c = handCluster(2);
    const matchBefore = c.progress().match;
    c.leader.propose(encodePut("k", "a"));
    c.settle(1);
    const lost = c.run((m) => m.to === 2 && m.type === "app");
    expect(lost.length).toBe(1);
    // The next heartbeat's answer may overtake a late append: one round of grace.
    c.leader.tick();
    c.settle(1);
    expect(c.run((m) => m.to === 2 && m.type === "app")).toEqual([]);
    expect(c.progress().match).toBe(matchBefore);
    // A heartbeat a round later is answered and the append still is not: it was lost.
    c.leader.tick();
    c.settle(1);
    c.run();
    expect(c.progress().match).toBe(c.leader.raft.log.lastIndex());
    expect(c.progress().match).toBeGreaterThan(matchBefore);
    expect(c.progress().state).toBe("replicate");
  });
});

describe("snapshot transfer", () => {
  it("keeps several chunks in flight on a lossy link, so a chunked snapshot takes a few round trips, not one per chunk", () => {
    const minDelay = 5;
    const sim = new Simulator({
      seed: 7,
      snapshotEvery: 10,
      keepEntries: 0,
      raft: { maxSnapshotChunkBytes: 64, maxSnapshotChunksInFlight: 16 },
      network: { dropRate: 0.1, minDelay, maxDelay: 15 },
    });
    const lead = electLeader(sim);
    const behind = [...sim.nodes.keys()].find((id) => id !== lead)!;
    sim.crash(behind);
    for (let i = 0; i < 120; i++) commitPut(sim, `key-${i}`, "v".repeat(60));
    const { index } = commitPut(sim, "last", "x");
    const leaderStore = sim.node(sim.leader()!).storage;
    const snapshotBytes = leaderStore.snapshot().data.byteLength;
    const chunks = Math.ceil(snapshotBytes / 64);
    expect(chunks).toBeGreaterThan(100);

    const start = sim.now;
    sim.restart(behind);
    waitApplied(sim, index, [behind], 400);
    const elapsed = sim.now - start;
    // One chunk per round trip (the old behaviour) needs at least chunks x 2 x minDelay.
    expect(elapsed).toBeLessThan(chunks * minDelay);
    expect(JSON.stringify([...sim.node(behind).kv.data])).toBe(
      JSON.stringify([...sim.node(sim.leader()!).kv.data]),
    );
  });

  it("refuses a window of no chunks", () => {
    const storage = MemoryStorage.bootstrap({ voters: [1] });
    expect(() => new RawNode({ id: 1, storage, maxSnapshotChunksInFlight: 0 })).toThrow(
      /maxSnapshotChunksInFlight/,
    );
  });
});
