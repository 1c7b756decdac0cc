import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import type { Message, NodeId } from "@quartet/raft";
import { afterEach, describe, expect, it } from "vitest";
import {
  NotLeaderError,
  ProposalDroppedError,
  RaftNode,
  type RaftNodeOptions,
  type StateMachine,
  snapshotBytesFor,
  snapshotPoint,
} from "../src/node/raft-node.ts";
import { DurableRaftStorage, StorageCorruptError } from "../src/storage/raft-storage.ts";
import { damageEntry } from "./support/damage.ts";

/** A log of applied strings; its snapshot is the whole log. */
class AppendLog implements StateMachine {
  items: string[] = [];
  apply(_index: number, data: Uint8Array): unknown {
    this.items.push(new TextDecoder().decode(data));
    return this.items.length;
  }
  async snapshot(): Promise<Uint8Array[]> {
    return [new TextEncoder().encode(JSON.stringify(this.items))];
  }
  restore(_index: number, data: Uint8Array): void {
    this.items =
      data.byteLength === 0 ? [] : (JSON.parse(new TextDecoder().decode(data)) as string[]);
  }
}

const dirs: string[] = [];
const running: { node: RaftNode; storage: DurableRaftStorage }[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    r.node.stop();
    await r.storage.close();
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/**
 * Three members in one process, their messages passed through an in-process switchboard (a
 * test stand-in for the Connect peer transport, which has its own tests against real
 * processes); `cut` drops what goes to or from a member.
 */
async function cluster(
  options: {
    snapshotEntries?: number;
    snapshotBytes?: number;
    keepEntries?: number;
    recentEntries?: number;
    raft?: RaftNodeOptions["raft"];
  } = {},
) {
  const { recentEntries, ...nodeOptions } = options;
  const ids = [1, 2, 3];
  const dataDirs = new Map(
    ids.map((id) => [id, mkdtempSync(join(tmpdir(), `quartet-node-${id}-`))]),
  );
  dirs.push(...dataDirs.values());
  const members = new Map<NodeId, { node: RaftNode; storage: DurableRaftStorage; sm: AppendLog }>();
  const cut = new Set<NodeId>();
  const fatal = new Map<NodeId, unknown>();
  const fatalWaiters = new Map<NodeId, (error: unknown) => void>();
  /** Resolves with what stopped member `id` (RaftNode's onFatal). */
  const stoppedBy = (id: NodeId) =>
    new Promise<unknown>((resolve) => {
      if (fatal.has(id)) resolve(fatal.get(id));
      else fatalWaiters.set(id, resolve);
    });
  const roleChanges: (() => void)[] = [];
  /** Every message sent, for tests that count them. */
  const sent: Message[] = [];
  const sentWaiters: { match: (m: Message) => boolean; resolve: () => void }[] = [];
  /** Resolves when a message `match` accepts is sent. */
  const nextSent = (match: (m: Message) => boolean) =>
    new Promise<void>((resolve) => sentWaiters.push({ match, resolve }));
  const deliver = (messages: Message[]) => {
    sent.push(...messages);
    for (const w of [...sentWaiters]) {
      if (messages.some(w.match)) {
        sentWaiters.splice(sentWaiters.indexOf(w), 1);
        w.resolve();
      }
    }
    for (const m of messages) {
      if (cut.has(m.to) || cut.has(m.from)) continue;
      queueMicrotask(() => members.get(m.to)?.node.step(m));
    }
  };
  const start = async (id: NodeId) => {
    const storage = DurableRaftStorage.open(dataDirs.get(id)!, { recentEntries });
    if (storage.isEmpty()) await storage.bootstrap({ voters: ids });
    const sm = new AppendLog();
    const node = new RaftNode({
      id,
      storage,
      stateMachine: sm,
      send: deliver,
      tickMs: 5,
      ...nodeOptions,
      onFatal: (e) => {
        fatal.set(id, e);
        fatalWaiters.get(id)?.(e);
      },
      onRoleChange: () => {
        for (const f of roleChanges.splice(0)) f();
      },
    });
    members.set(id, { node, storage, sm });
    running.push({ node, storage });
    return node;
  };
  const stop = async (id: NodeId) => {
    const m = members.get(id)!;
    members.delete(id);
    m.node.stop();
    await m.storage.close();
    running.splice(
      running.findIndex((r) => r.node === m.node),
      1,
    );
  };
  /** Resolves with the leader once one exists that every running member follows. */
  const leader = async (): Promise<RaftNode> => {
    for (;;) {
      const statuses = [...members.values()].map((m) => m.node.status());
      const lead = statuses.find((s) => s.state === "leader");
      if (lead && statuses.every((s) => s.leaderId === lead.id || cut.has(s.id)))
        return members.get(lead.id)!.node;
      await new Promise<void>((resolve) => roleChanges.push(resolve));
    }
  };
  for (const id of ids) await start(id);
  return { members, start, stop, leader, cut, sent, nextSent, stoppedBy, dataDirs };
}

/** A cluster whose leader committed 20 entries while one follower was cut off from it. */
async function oneBehind(options: Parameters<typeof cluster>[0]) {
  const c = await cluster(options);
  const lead = await c.leader();
  const behind = [...c.members.entries()].find(([, m]) => m.node !== lead)![0];
  c.cut.add(behind);
  for (let i = 0; i < 20; i++) await lead.propose(new TextEncoder().encode(`v${i}`));
  return { c, lead, behind };
}

describe("RaftNode", () => {
  it("confirms the reads that arrive before a round's heartbeats leave with that one round", async () => {
    const c = await cluster();
    const lead = await c.leader();
    await lead.propose(new TextEncoder().encode("a"));
    const rounds = () =>
      new Set(
        c.sent.flatMap((m) => (m.type === "heartbeat" && m.context !== "" ? [m.context] : [])),
      ).size;
    const before = rounds();
    // Arriving in one turn, as a burst of requests read from one socket does; more of them
    // than the node answers in one part.
    await Promise.all(Array.from({ length: 100 }, () => lead.linearizableBarrier()));
    expect(rounds() - before).toBe(1);
    // A read that arrives once the round's heartbeats are out waits for the next round.
    const first = lead.linearizableBarrier();
    await c.nextSent((m) => m.type === "heartbeat" && m.context !== "");
    const second = lead.linearizableBarrier();
    await Promise.all([first, second]);
    expect(rounds() - before).toBe(3);
  });

  it("fails the reads of a round it had not answered yet when it stops between parts", async () => {
    const c = await cluster();
    const lead = await c.leader();
    const reads = Array.from({ length: 100 }, () => lead.linearizableBarrier());
    // Stopped as soon as the first part is answered.
    void reads[0]!.then(() => lead.stop());
    const settled = await Promise.allSettled(reads);
    const answered = settled.filter((r) => r.status === "fulfilled").length;
    expect(answered).toBeGreaterThan(0);
    expect(answered).toBeLessThan(100);
    for (const r of settled.slice(answered)) {
      expect(r).toMatchObject({
        status: "rejected",
        reason: {
          code: Code.Unavailable,
          rawMessage: expect.stringMatching(/^this member stopped \(the node is shutting down\)/),
        },
      });
    }
  });

  it("replicates proposals, refuses them on followers naming the leader, and serves reads after the barrier", async () => {
    const c = await cluster();
    const lead = await c.leader();
    expect(await lead.propose(new TextEncoder().encode("a"))).toBe(1);
    const results = await Promise.all(
      ["b", "c", "d"].map((v) => lead.propose(new TextEncoder().encode(v))),
    );
    expect(results).toEqual([2, 3, 4]);
    const follower = [...c.members.values()].find((m) => m.node !== lead)!;
    await expect(follower.node.propose(new TextEncoder().encode("x"))).rejects.toMatchObject({
      name: "NotLeaderError",
      reason: "not-leader",
      leaderId: lead.id,
    });
    // After the barrier a follower has applied every write acknowledged before it.
    await follower.node.linearizableBarrier();
    expect(follower.sm.items).toEqual(["a", "b", "c", "d"]);
  });

  it("gets its answers out over HTTP/2, trailers included, before the sync that follows them", async () => {
    const c = await cluster();
    const lead = await c.leader();
    // Streams answered as a gRPC answer goes: headers, the message, then trailers. Node's
    // HTTP/2 marks a stream closed when it writes its last frame (the trailers) to the socket.
    type Kind = "write" | "read";
    const answered: { stream: http2.ServerHttp2Stream; kind: Kind }[] = [];
    const server = http2.createServer();
    server.on("stream", (stream, headers) => {
      const kind: Kind = headers[":path"] === "/read" ? "read" : "write";
      const body: Buffer[] = [];
      stream.on("data", (b: Buffer) => body.push(b));
      stream.on("end", async () => {
        if (kind === "read") await lead.linearizableBarrier();
        else await lead.propose(Buffer.concat(body));
        answered.push({ stream, kind });
        stream.respond({ ":status": 200 }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(String(lead.appliedIndex()));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    // At each sync of the leader: of the answers given since the last one, those not out yet.
    const storage = c.members.get(lead.id)!.storage;
    const persist = storage.persist.bind(storage);
    const syncsAfter = { write: 0, read: 0 };
    const late = { write: 0, read: 0 };
    storage.persist = (rd, sync) => {
      if (sync) {
        for (const kind of ["write", "read"] as const) {
          const given = answered.filter((a) => a.kind === kind);
          if (given.length > 0) syncsAfter[kind]++;
          late[kind] += given.filter((a) => !a.stream.closed).length;
        }
        answered.length = 0;
      }
      return persist(rd, sync);
    };
    const { port } = server.address() as { port: number };
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const call = (path: string, value: string) =>
      new Promise<void>((resolve, reject) => {
        const req = session.request({ ":method": "POST", ":path": path });
        req.on("error", reject);
        req.on("close", () => resolve());
        req.resume();
        req.end(value);
      });
    // Over HTTP/2, 4 clients writing and 64 reading (linearizable reads, answered 32 at a time
    // with a turn between, so writes come in meanwhile); 4 more proposing directly. Each goes
    // on as soon as its last call is answered, until 30 of the leader's syncs followed writes
    // answered and 30 followed reads answered.
    let calls = 0;
    const more = () => (syncsAfter.write < 30 || syncsAfter.read < 30) && calls < 10_000;
    await Promise.all([
      ...Array.from({ length: 4 }, async (_, client) => {
        while (more()) await call("/put", `c${client}-${calls++}`);
      }),
      ...Array.from({ length: 64 }, async () => {
        while (more()) await call("/read", `${calls++}`);
      }),
      ...Array.from({ length: 4 }, async (_, client) => {
        while (more()) await lead.propose(new TextEncoder().encode(`d${client}-${calls++}`));
      }),
    ]);
    session.close();
    await new Promise((resolve) => server.close(resolve));
    expect(syncsAfter.write).toBeGreaterThanOrEqual(30);
    expect(syncsAfter.read).toBeGreaterThanOrEqual(30);
    expect(late).toEqual({ write: 0, read: 0 });
  });

  it("sends a new commit index with the next append, or alone when none follows", async () => {
    // Heartbeats (which carry the index too) every 250 ms: rarer than the 5 ms bump.
    const c = await cluster({ raft: { heartbeatTick: 50, electionTick: 100 } });
    const lead = await c.leader();
    const followers = [...c.members.values()].filter((m) => m.node !== lead);
    const enc = (v: string) => new TextEncoder().encode(v);
    // b is proposed as a is answered: b's append tells the followers a is committed.
    await lead.propose(enc("a"));
    const aIndex = lead.appliedIndex();
    await lead.propose(enc("b"));
    const appends = c.sent.filter((m) => m.type === "app" && m.from === lead.id);
    const carried = appends.filter(
      (m) => m.type === "app" && m.entries.some((e) => e.index > aIndex),
    );
    expect(new Set(carried.map((m) => m.to))).toEqual(new Set(followers.map((f) => f.node.id)));
    expect(carried.every((m) => m.type === "app" && m.commit >= aIndex)).toBe(true);
    const alone = appends.filter((m) => m.type === "app" && m.entries.length === 0);
    expect(alone.filter((m) => m.type === "app" && m.commit === aIndex)).toEqual([]);
    // Nothing follows b: the index goes alone, and both followers apply b.
    const bIndex = lead.appliedIndex();
    await c.nextSent((m) => m.type === "app" && m.entries.length === 0 && m.commit === bIndex);
    await Promise.all(followers.map((f) => f.node.waitApplied(bIndex)));
    expect(followers.map((f) => f.sm.items)).toEqual([
      ["a", "b"],
      ["a", "b"],
    ]);
  });

  it("rebuilds its state from its own disk after a restart, applying nothing twice", async () => {
    const c = await cluster({ snapshotEntries: 5, keepEntries: 2 });
    const lead = await c.leader();
    for (let i = 0; i < 12; i++) await lead.propose(new TextEncoder().encode(`v${i}`));
    const follower = [...c.members.entries()].find(([, m]) => m.node !== lead)!;
    await follower[1].node.linearizableBarrier();
    const before = [...follower[1].sm.items];
    // Its snapshot is written beside its Raft loop and recorded on a later turn of it.
    while (follower[1].storage.snapshot().metadata.index <= 1) {
      await c.nextSent((m) => m.from === follower[0]);
    }
    await c.stop(follower[0]);
    const again = await c.start(follower[0]);
    await again.waitApplied(lead.appliedIndex());
    expect(c.members.get(follower[0])!.sm.items).toEqual(before);
  });

  it.each([
    ["compacted entries, with a snapshot", { snapshotEntries: 4, keepEntries: 0 }, true],
    ["entries no longer in the leader's memory, from its log", { recentEntries: 2 }, false],
  ])("catches up a member that missed %s", async (_, options, fromSnapshot) => {
    const { c, lead, behind } = await oneBehind(options);
    c.cut.delete(behind);
    const member = c.members.get(behind)!;
    await member.node.waitApplied(lead.appliedIndex());
    expect(member.sm.items).toEqual(c.members.get(lead.id)!.sm.items);
    // The bootstrap's snapshot is at 1.
    expect(member.storage.snapshot().metadata.index > 10).toBe(fromSnapshot);
  });

  it("stops, instead of sending it, when an entry a member needs is damaged in its log", async () => {
    const { c, lead, behind } = await oneBehind({ recentEntries: 2 });
    const first = c.members.get(behind)!.storage.lastIndex() + 1;
    // The first entry the cut member lacks, damaged in the leader's log after it was written.
    const wal = join(c.dataDirs.get(lead.status().id)!, "wal");
    damageEntry(join(wal, readdirSync(wal).sort()[0]!), first);
    const stopped = c.stoppedBy(lead.status().id);
    c.cut.delete(behind);
    const error = await stopped;
    expect(error).toBeInstanceOf(StorageCorruptError);
    expect(String(error)).toMatch(new RegExp(`entry ${first} .*fails its checksum`));
    // Callers are told to go to another member, and why this one stopped.
    await expect(lead.propose(new TextEncoder().encode("after"))).rejects.toMatchObject({
      code: Code.Unavailable,
      rawMessage: expect.stringMatching(/^this member stopped \(storage failed: .*checksum/),
    });
    // The member never got the damaged entry.
    expect(c.members.get(behind)!.node.appliedIndex()).toBeLessThan(first);
  });

  it("snapshots once the entries since the last hold snapshotBytes of data, each member at its own size", async () => {
    // 1,024 bytes stretched by member id: 1,365 (member 1), 1,706 (2) and 1,024 (3).
    const c = await cluster({ snapshotEntries: 1_000_000, snapshotBytes: 1024, keepEntries: 0 });
    const lead = await c.leader();
    const value = new TextEncoder().encode("x".repeat(100));
    // 12 entries of 100 bytes: past member 3's size but not member 1's or 2's.
    for (let i = 0; i < 12; i++) await lead.propose(value);
    const snapAt = (id: NodeId) => c.members.get(id)!.storage.snapshot().metadata.index;
    // Its snapshot is written beside its Raft loop and recorded on a later turn of it.
    while (snapAt(3) <= 1) await c.nextSent((m) => m.from === 3);
    expect(snapAt(1)).toBe(1);
    expect(snapAt(2)).toBe(1);
    // 20 more: past member 1's and 2's sizes (32 entries, 3,200 bytes).
    for (let i = 0; i < 20; i++) await lead.propose(value);
    for (const id of [1, 2]) while (snapAt(id) <= 1) await c.nextSent((m) => m.from === id);
    expect(snapAt(1)).toBeGreaterThanOrEqual(14);
    expect(snapAt(2)).toBeGreaterThanOrEqual(18);
    expect(c.members.get(lead.id)!.sm.items.length).toBe(32);
  });

  it("goes on committing while a snapshot's file is being written, and records it after", async () => {
    const c = await cluster({ snapshotEntries: 4, keepEntries: 0 });
    const lead = await c.leader();
    const { storage } = c.members.get(lead.id)!;
    // The leader's snapshot file is written, but the write does not finish until released.
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    const prepare = storage.prepareSnapshot.bind(storage);
    let written: Promise<unknown> = Promise.resolve();
    storage.prepareSnapshot = (...args) => {
      const file = prepare(...args);
      written = file;
      return file.then((snap) => released.then(() => snap));
    };
    const before = storage.snapshot().metadata.index;
    for (let i = 0; i < 12; i++) await lead.propose(new TextEncoder().encode(`v${i}`));
    expect(storage.snapshot().metadata.index).toBe(before);
    release();
    // Once its file is written (on libuv's pool, however long that takes) and one turn has
    // let the node take it, the next Ready records it.
    await written;
    await nextTurn();
    await lead.propose(new TextEncoder().encode("after"));
    expect(storage.snapshot().metadata.index).toBeGreaterThanOrEqual(before + 4);
    expect(storage.firstIndex()).toBe(storage.snapshot().metadata.index + 1);
  });

  it("counts a member it has not heard from within an election timeout as unreachable, until it answers again", async () => {
    const c = await cluster();
    const lead = await c.leader();
    const [gone, kept] = [...c.members.keys()].filter((id) => id !== lead.id) as [NodeId, NodeId];
    const nextFromLeader = () => c.nextSent((m) => m.from === lead.id);
    // Both followers answer the leader's heartbeats.
    while (!lead.reachable(gone) || !lead.reachable(kept)) await nextFromLeader();
    c.cut.add(gone);
    while (lead.reachable(gone)) await nextFromLeader();
    expect(lead.reachable(kept)).toBe(true);
    expect(lead.reachable(lead.id)).toBe(true);
    c.cut.delete(gone);
    while (!lead.reachable(gone)) await nextFromLeader();
  });

  it("fails the proposals another leader's log replaced when it leads again and proposes at their indexes", async () => {
    const c = await cluster();
    const first = await c.leader();
    const text = (s: string) => new TextEncoder().encode(s);
    const everyone = () => [...c.members.values()].map((m) => m.node);
    const nextMessage = () => c.nextSent(() => true);
    await Promise.all(everyone().map((n) => n.waitApplied(first.status().lastIndex)));
    // Cut off, the leader still takes proposals: they can never commit.
    c.cut.add(first.id);
    const from = first.status().lastIndex + 1;
    const stranded = Array.from({ length: 20 }, (_, j) => first.propose(text(`stranded ${j}`)));
    const settled = stranded.map(() => false);
    const settle = (j: number) => () => {
      settled[j] = true;
    };
    for (const [j, p] of stranded.entries()) p.then(settle(j), settle(j));
    // The other two elect a leader whose own entries take those indexes.
    const others = everyone().filter((n) => n !== first);
    while (!others.some((n) => n.isLeader() && n.status().commit >= from)) await nextMessage();
    c.cut.delete(first.id);
    await first.waitApplied(from);
    // Leading again, the first member's log holds the other leader's entries where its own
    // proposals were; a proposal now takes the index of one of those still waiting.
    while (!first.isLeader()) {
      everyone()
        .find((n) => n.isLeader())
        ?.transferLeadership(first.id);
      await nextMessage();
    }
    const next = first.status().lastIndex + 1;
    expect(next).toBeLessThan(from + stranded.length);
    const fresh = first.propose(text("fresh"));
    // Microtasks only: no turn of the event loop, so no Ready, runs before the check.
    for (let i = 0; i < 3; i++) await Promise.resolve();
    // Those at or past the new proposal's index are failed at once, not left waiting.
    stranded.forEach((_, j) => {
      if (from + j >= next) expect(settled[j], `stranded ${j}`).toBe(true);
    });
    for (const p of stranded) await expect(p).rejects.toBeInstanceOf(ProposalDroppedError);
    await expect(fresh).resolves.toBeTypeOf("number");
    const appended = [...c.members.values()].find((m) => m.node === first)!.sm.items;
    expect(appended.filter((item) => item.startsWith("stranded"))).toEqual([]);
    expect(appended.at(-1)).toBe("fresh");
  });

  it("fails a read on a member that knows no leader, and an aborted proposal with the abort reason", async () => {
    const c = await cluster();
    const lead = await c.leader();
    const controller = new AbortController();
    const p = lead.propose(new TextEncoder().encode("slow"), controller.signal);
    controller.abort(new Error("deadline"));
    await expect(p).rejects.toThrow("deadline");
    const lonely = [...c.members.values()].find((m) => m.node !== lead)!;
    for (const id of c.members.keys()) c.cut.add(id);
    await c.stop(lead.id);
    // Cut off, the follower loses its leader at the next election timeout and refuses reads.
    await expect(
      (async () => {
        for (;;) {
          try {
            await lonely.node.linearizableBarrier(AbortSignal.timeout(50));
          } catch (e) {
            if (e instanceof NotLeaderError) throw e;
          }
        }
      })(),
    ).rejects.toBeInstanceOf(NotLeaderError);
  });
});

describe("snapshotBytesFor", () => {
  it("stretches the size by a third per member id, so three members snapshot apart", () => {
    expect([1, 2, 3, 4].map((id) => snapshotBytesFor(id, 3_000))).toEqual([
      4_000, 5_000, 3_000, 4_000,
    ]);
  });
});

describe("snapshotPoint", () => {
  it("gives each of three members its own snapshot points, every interval, a third apart", () => {
    const points = (id: NodeId) => {
      const seen = new Set<number>();
      for (let applied = 0; applied <= 1_000; applied++) seen.add(snapshotPoint(applied, id, 300));
      seen.delete(0);
      return [...seen];
    };
    expect(points(3)).toEqual([300, 600, 900]);
    expect(points(1)).toEqual([400, 700, 1_000]);
    expect(points(2)).toEqual([500, 800]);
    expect(points(4)).toEqual(points(1));
  });
});
