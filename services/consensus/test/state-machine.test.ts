import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import {
  type Command,
  CommandSchema,
  KeyHistorySchema,
  KeyRecordSchema,
  StateSnapshotSchema,
} from "@quartet/proto/quartet/consensus/v1/internal_pb";
import {
  Compare_CompareResult,
  KeyValueSchema,
  RangeRequestSchema,
} from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { Event_EventType } from "@quartet/proto/quartet/consensus/v1/watch_pb";
import { describe, expect, it } from "vitest";
import { concatBytes } from "../src/bytes.ts";
import { keyBytes, prefixEnd } from "../src/state/keys.ts";
import { ConsensusStateMachine } from "../src/state/state-machine.ts";
import {
  b,
  cas,
  compact,
  del,
  expire,
  grant,
  promote,
  put,
  renew,
  revoke,
  s,
} from "./support/commands.ts";

function applyAll(sm: ConsensusStateMachine, cmds: Command[]) {
  return cmds.map((c) => sm.apply(c));
}

const range = (key: string, rangeEnd = "", revision = 0n) =>
  create(RangeRequestSchema, { key: b(key), rangeEnd: b(rangeEnd), revision });

const values = (sm: ConsensusStateMachine, key: string, end = "", rev = 0n) =>
  sm.range(range(key, end, rev)).kvs.map((kv) => `${s(kv.key)}=${s(kv.value)}`);

describe("ConsensusStateMachine: MVCC", () => {
  it("bumps the revision once per write and tracks create_revision, mod_revision and version", () => {
    const sm = new ConsensusStateMachine();
    applyAll(sm, [put("a", "1"), put("b", "1"), put("a", "2")]);
    expect(sm.revision).toBe(3n);
    const [a] = sm.range(range("a")).kvs;
    expect([a!.createRevision, a!.modRevision, a!.version]).toEqual([1n, 3n, 2n]);
    sm.apply(del("a"));
    sm.apply(put("a", "3"));
    const [a2] = sm.range(range("a")).kvs;
    expect([a2!.createRevision, a2!.modRevision, a2!.version]).toEqual([5n, 5n, 1n]);
  });

  it("reads past revisions, and refuses compacted and future ones with OutOfRange", () => {
    const sm = new ConsensusStateMachine();
    applyAll(sm, [put("a", "1"), put("a", "2"), del("a"), put("b", "1")]);
    expect(values(sm, "a", "", 1n)).toEqual(["a=1"]);
    expect(values(sm, "a", "", 2n)).toEqual(["a=2"]);
    expect(values(sm, "a", "", 3n)).toEqual([]);
    expect(() => sm.range(range("a", "", 9n))).toThrow(/future revision.*current revision 4/);
    expect(sm.apply(compact(3n)).result.result.case).toBe("compact");
    expect(() => sm.range(range("a", "", 2n))).toThrow(/revision 2 has been compacted/);
    expect(values(sm, "a", "\0", 3n)).toEqual([]);
    expect(values(sm, "a", "\0", 4n)).toEqual(["b=1"]);
    const again = sm.apply(compact(3n)).result.result;
    expect(again.case === "error" && again.value.code).toBe(Code.OutOfRange);
  });

  it("compaction keeps each key's newest version at or below the compacted revision", () => {
    const sm = new ConsensusStateMachine();
    applyAll(sm, [put("a", "1"), put("b", "1"), put("a", "2"), put("b", "2")]);
    sm.apply(compact(3n));
    expect(values(sm, "a", "\0", 3n)).toEqual(["a=2", "b=1"]);
    expect(values(sm, "a", "\0")).toEqual(["a=2", "b=2"]);
  });

  it("compaction forgets a key deleted at or below the compacted revision, and keeps one deleted above", () => {
    const sm = new ConsensusStateMachine();
    applyAll(sm, [put("gone", "1"), put("kept", "1"), del("gone"), put("x", "1"), del("kept")]);
    sm.apply(compact(4n));
    const keys = () => [...sm.store.historiesSince({ start: "", end: null }, 0n)].map(([k]) => k);
    expect(keys()).toEqual(["kept", "x"]);
    expect(values(sm, "a", "\0", 4n)).toEqual(["kept=1", "x=1"]);
    expect(values(sm, "a", "\0")).toEqual(["x=1"]);
    // Nor does a snapshot of it hold the forgotten key.
    expect(ConsensusStateMachine.restore(sm.encode()).encode()).toEqual(sm.encode());
    expect(new TextDecoder().decode(sm.encode())).not.toContain("gone");
  });

  it("ranges: single key, prefix, every key from key on, limit, keys_only, count_only", () => {
    const sm = new ConsensusStateMachine();
    applyAll(sm, [put("a", "1"), put("ab", "2"), put("abc", "3"), put("b", "4")]);
    expect(values(sm, "ab")).toEqual(["ab=2"]);
    expect(values(sm, "ab", s(prefixEnd(b("ab"))))).toEqual(["ab=2", "abc=3"]);
    expect(values(sm, "ab", "\0")).toEqual(["ab=2", "abc=3", "b=4"]);
    const limited = sm.range(
      create(RangeRequestSchema, { key: b("a"), rangeEnd: b("\0"), limit: 2n }),
    );
    expect([limited.kvs.length, limited.more, limited.count]).toEqual([2, true, 4n]);
    const keysOnly = sm.range(create(RangeRequestSchema, { key: b("a"), keysOnly: true }));
    expect(keysOnly.kvs[0]!.value).toEqual(new Uint8Array(0));
    const countOnly = sm.range(
      create(RangeRequestSchema, { key: b("a"), rangeEnd: b("\0"), countOnly: true }),
    );
    expect([countOnly.kvs.length, countOnly.count]).toEqual([0, 4n]);
  });

  it("a Txn is one revision; compare-and-swap succeeds only on the expected mod_revision", () => {
    const sm = new ConsensusStateMachine();
    sm.apply(put("k", "v1"));
    const lost = sm.apply(cas("k", 0n, "x")).result.result;
    expect(lost.case === "txn" && lost.value.succeeded).toBe(false);
    expect(sm.revision).toBe(1n);
    const won = sm.apply(cas("k", 1n, "v2")).result;
    expect(won.result.case === "txn" && won.result.value.succeeded).toBe(true);
    expect(won.revision).toBe(2n);
    const multi = create(CommandSchema, {
      op: {
        case: "txn",
        value: {
          success: [
            { request: { case: "requestPut", value: { key: b("x"), value: b("1") } } },
            { request: { case: "requestPut", value: { key: b("y"), value: b("1") } } },
            { request: { case: "requestRange", value: { key: b("x") } } },
          ],
        },
      },
    });
    const r = sm.apply(multi);
    expect(sm.revision).toBe(3n);
    expect(r.events.map((e) => s(e.kv!.key))).toEqual(["x", "y"]);
    const read = r.result.result.case === "txn" && r.result.result.value.responses[2]!.response;
    expect(read && read.case === "responseRange" && s(read.value.kvs[0]!.value)).toBe("1");
  });

  it("compares a missing key as version 0 and values bytewise", () => {
    const sm = new ConsensusStateMachine();
    sm.apply(put("k", "b"));
    const txn = (result: Compare_CompareResult, value: string) =>
      create(CommandSchema, {
        op: {
          case: "txn",
          value: {
            compare: [{ key: b("k"), result, targetUnion: { case: "value", value: b(value) } }],
          },
        },
      });
    const ok = (c: Command) => {
      const r = sm.apply(c).result.result;
      return r.case === "txn" && r.value.succeeded;
    };
    expect(ok(txn(Compare_CompareResult.GREATER, "a"))).toBe(true);
    expect(ok(txn(Compare_CompareResult.LESS, "a"))).toBe(false);
    expect(ok(txn(Compare_CompareResult.NOT_EQUAL, "b"))).toBe(false);
  });

  it("emits watch events in revision order with prev_kv; deleting nothing writes nothing", () => {
    const sm = new ConsensusStateMachine();
    sm.apply(put("a", "1"));
    const p = sm.apply(put("a", "2"));
    expect(p.events[0]!.type).toBe(Event_EventType.PUT);
    expect(s(p.events[0]!.prevKv!.value)).toBe("1");
    const d = sm.apply(del("a", "\0", true));
    expect(d.events.map((e) => [e.type, e.kv!.modRevision])).toEqual([
      [Event_EventType.DELETE, 3n],
    ]);
    const none = sm.apply(del("zzz"));
    expect([none.events.length, sm.revision]).toEqual([0, 3n]);
  });

  it("without events (nobody watches), gives the same results and the same state", () => {
    const lease = 5n;
    const cmds = [
      grant(60n, 0n, lease),
      put("a", "1", lease),
      put("a", "2", 0n, true),
      put("b", "1", lease, true),
      put("b", "2", 2n ** 62n),
      cas("a", 3n, "3"),
      cas("a", 3n, "lost"),
      del("a", "", true),
      put("a", "4", 0n, true),
      revoke(lease),
      put("c", "1"),
      compact(4n),
      put("c", "2", 0n, true),
    ];
    const watched = new ConsensusStateMachine();
    const unwatched = new ConsensusStateMachine();
    for (const c of cmds) {
      const withEvents = watched.apply(c);
      const without = unwatched.apply(c, false);
      expect(without.events).toEqual([]);
      expect(without.result).toStrictEqual(withEvents.result);
    }
    expect(unwatched.encode()).toEqual(watched.encode());
    expect(values(unwatched, "a", "\0")).toEqual(["a=4", "c=2"]);
  });
});

describe("MvccStore.hash (HashKV)", () => {
  const history = [put("a", "1"), put("b", "1"), put("a", "2"), del("b"), put("c", "1")];

  it("is the same for the same history, a restored copy included, and changes with any write", () => {
    const one = new ConsensusStateMachine();
    const other = new ConsensusStateMachine();
    applyAll(one, history);
    applyAll(other, history);
    expect(one.store.hash(5n)).toBe(other.store.hash(5n));
    expect(ConsensusStateMachine.restore(one.encode()).store.hash(5n)).toBe(one.store.hash(5n));
    // A history that differs in one value differs in its hash.
    const diverged = new ConsensusStateMachine();
    applyAll(diverged, [...history.slice(0, 4), put("c", "2")]);
    expect(diverged.store.hash(5n)).not.toBe(one.store.hash(5n));
    // Up to an earlier revision, only what was written by then counts.
    expect(diverged.store.hash(4n)).toBe(one.store.hash(4n));
    expect(one.store.hash(4n)).not.toBe(one.store.hash(5n));
  });

  it("up to a revision, stays the same while later writes come in", () => {
    const sm = new ConsensusStateMachine();
    applyAll(sm, history);
    const at5 = sm.store.hash(5n);
    applyAll(sm, [put("a", "3"), del("c"), put("d", "1")]);
    expect(sm.store.hash(5n)).toBe(at5);
  });

  it("is the same for members compacted at the same revision", () => {
    const one = new ConsensusStateMachine();
    const other = new ConsensusStateMachine();
    applyAll(one, [...history, compact(4n)]);
    applyAll(other, history);
    other.apply(compact(4n));
    expect(one.store.hash(5n)).toBe(other.store.hash(5n));
    // Compaction drops versions: the hash says so.
    const uncompacted = new ConsensusStateMachine();
    applyAll(uncompacted, history);
    expect(uncompacted.store.hash(5n)).not.toBe(one.store.hash(5n));
  });
});

describe("ConsensusStateMachine: leases", () => {
  it("revoking a lease deletes its keys in one revision; an unknown lease is NotFound", () => {
    const sm = new ConsensusStateMachine();
    const g = sm.apply(grant(10n, 1000n)).result.result;
    const id = g.case === "leaseGrant" ? g.value.id : -1n;
    expect(id).toBe(1n);
    applyAll(sm, [put("a", "1", id), put("b", "1", id), put("c", "1")]);
    expect(sm.leaseKeysOf(id).map(s)).toEqual(["a", "b"]);
    const r = sm.apply(revoke(id));
    expect(r.events.map((e) => s(e.kv!.key))).toEqual(["a", "b"]);
    expect(sm.revision).toBe(4n);
    expect(values(sm, "a", "\0")).toEqual(["c=1"]);
    const bad = sm.apply(put("d", "1", id)).result.result;
    expect(bad.case === "error" && bad.value.code).toBe(Code.NotFound);
    expect(sm.revision).toBe(4n);
  });

  it("re-putting a key without a lease detaches it", () => {
    const sm = new ConsensusStateMachine();
    sm.apply(grant(10n, 0n, 7n));
    applyAll(sm, [put("a", "1", 7n), put("a", "2")]);
    sm.apply(revoke(7n));
    expect(values(sm, "a")).toEqual(["a=2"]);
  });

  it("expires the leases due at the proposed time, each in its own revision, in id order", () => {
    const sm = new ConsensusStateMachine();
    applyAll(sm, [grant(5n, 0n, 2n), grant(1n, 0n, 1n), grant(60n, 0n, 3n)]);
    applyAll(sm, [put("one", "x", 1n), put("two", "x", 2n), put("three", "x", 3n)]);
    expect(sm.timeToLive(2n, 1n)).toBe(5n);
    const r = sm.apply(expire(5000n));
    expect(r.result.result.case === "expireLeases" && r.result.result.value.ids).toEqual([1n, 2n]);
    expect(r.events.map((e) => [s(e.kv!.key), e.kv!.modRevision])).toEqual([
      ["one", 4n],
      ["two", 5n],
    ]);
    expect(sm.leases().map((l) => l.id)).toEqual([3n]);
  });

  it("renewal and a new leader's promotion give a full TTL from the proposed time", () => {
    const sm = new ConsensusStateMachine();
    applyAll(sm, [grant(10n, 0n, 1n), grant(10n, 0n, 2n)]);
    sm.apply(renew(1n, 8000n));
    expect(sm.apply(expire(10_000n)).result.result).toMatchObject({ value: { ids: [2n] } });
    sm.apply(promote(15_000n));
    expect(sm.timeToLive(1n, 15_000n)).toBe(10n);
    expect(sm.apply(expire(24_999n)).result.result).toMatchObject({ value: { ids: [] } });
  });

  it("refuses a grant of an id in use with AlreadyExists and chooses unused ids for 0", () => {
    const sm = new ConsensusStateMachine();
    sm.apply(grant(10n, 0n, 1n));
    const dup = sm.apply(grant(10n, 0n, 1n)).result.result;
    expect(dup.case === "error" && dup.value.code).toBe(Code.AlreadyExists);
    const auto = sm.apply(grant(10n, 0n)).result.result;
    expect(auto.case === "leaseGrant" && auto.value.id).toBe(2n);
  });
});

describe("ConsensusStateMachine: snapshots", () => {
  it("restores an identical state that continues with identical revisions and results", () => {
    const sm = new ConsensusStateMachine();
    applyAll(sm, [
      grant(10n, 0n),
      put("a", "1", 1n),
      put("b", "1"),
      put("a", "2", 1n),
      del("b"),
      compact(3n),
      put("c", "1"),
    ]);
    const bytes = sm.encode();
    const copy = ConsensusStateMachine.restore(bytes);
    expect(copy.encode()).toEqual(bytes);
    expect(copy.revision).toBe(sm.revision);
    expect(() => copy.range(range("a", "", 2n))).toThrow(/compacted/);
    const next = [put("d", "1"), revoke(1n), grant(5n, 0n), cas("c", 6n, "2")];
    expect(applyAll(copy, next)).toEqual(applyAll(sm, next));
    expect(copy.encode()).toEqual(sm.encode());
  });

  it("takes a snapshot at once, whose pieces stay that state's while the state moves on", () => {
    const sm = new ConsensusStateMachine();
    // Enough versions for several parts of the encoding (500 versions each).
    const writes = [];
    for (let i = 0; i < 5_000; i++) writes.push(put(`k${i % 700}`, `v${i}`));
    applyAll(sm, [grant(10n, 0n), ...writes]);
    const before = sm.encode();
    const pieces = sm.snapshot();
    // The state moves on: new versions, a deletion, a compaction that drops old versions.
    applyAll(sm, [put("k1", "later"), del("k2"), compact(4_000n), revoke(1n)]);
    const bytes = concatBytes(pieces);
    expect(bytes).toEqual(before);
    const restored = ConsensusStateMachine.restore(bytes);
    expect(restored.revision).toBe(5_000n);
    expect(restored.range(range("k1", "")).kvs[0]?.value).toEqual(
      new TextEncoder().encode("v4901"),
    );
    expect(restored.range(range("k1", "", 2n)).kvs[0]?.value).toEqual(
      new TextEncoder().encode("v1"),
    );
    expect(restored.leases().map((l) => l.id)).toEqual([1n]);
  });

  it("knows every field of the versions it writes into snapshots", () => {
    // The snapshot writes KeyRecord and KeyValue field by field (writeRecord): a new field
    // must be added there, or snapshots would drop it.
    expect(KeyRecordSchema.fields.map((f) => f.number)).toEqual([1, 2, 3]);
    expect(KeyValueSchema.fields.map((f) => f.number)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(KeyHistorySchema.fields.map((f) => f.number)).toEqual([1, 2]);
  });

  it("writes a version whose lease id is past 2^53 as toBinary does", () => {
    // Versions are written field by field (writeRecord), int64s below 2^53 as numbers.
    const sm = new ConsensusStateMachine();
    const id = 2n ** 62n + 3n;
    applyAll(sm, [grant(10n, 0n, id), put("big", "v", id)]);
    const kv = sm.range(range("big", "")).kvs[0]!;
    expect(kv.lease).toBe(id);
    const [[, records]] = [...sm.store.encodedEntries()] as [[string, Uint8Array]];
    expect(records).toEqual(
      toBinary(KeyHistorySchema, create(KeyHistorySchema, { records: [{ kv }] })),
    );
    expect(ConsensusStateMachine.restore(sm.encode()).range(range("big", "")).kvs).toEqual([kv]);
  });

  it("snapshots the canonical encoding of the state through every kind of write and a compaction", () => {
    const sm = new ConsensusStateMachine();
    // Every field of a version set somewhere: a lease, a second write in one revision (sub),
    // deletions (tombstones).
    const writes = [grant(10n, 0n), put("leased", "x", 1n), twoPuts("p1", "p2")];
    for (let i = 0; i < 2_000; i++) writes.push(put(`k${i % 300}`, `v${i}`));
    applyAll(sm, writes);
    const first = sm.snapshot();
    expect(concatBytes(first)).toEqual(plainEncoding(sm));
    applyAll(sm, [put("k1", "again"), put("new", "1"), del("k2"), put("k2", "back")]);
    const second = sm.snapshot();
    expect(concatBytes(second)).toEqual(plainEncoding(sm));
    // A key not written since is sent as the store holds it: nothing of it is encoded again.
    const k0 = (pieces: Uint8Array[]) =>
      pieces.find((p) => new TextDecoder().decode(p).includes("v1800"));
    expect(k0(second)?.buffer).toBe(k0(first)?.buffer);
    // A compaction drops old versions: the next snapshot is the compacted state's.
    applyAll(sm, [compact(1_500n), put("k1", "after")]);
    expect(concatBytes(sm.snapshot())).toEqual(plainEncoding(sm));
    expect(concatBytes(second)).not.toEqual(plainEncoding(sm));
    // A machine restored from it writes the same bytes, reads the same, and goes on alike.
    const restored = ConsensusStateMachine.restore(sm.encode());
    expect(restored.encode()).toEqual(plainEncoding(sm));
    for (const rev of [1_500n, 1_800n, 0n]) {
      expect(restored.range(range("k", "l", rev))).toEqual(sm.range(range("k", "l", rev)));
    }
    const next = [put("k5", "later"), del("leased"), twoPuts("p1", "p3")];
    expect(applyAll(restored, next)).toEqual(applyAll(sm, next));
    expect(restored.encode()).toEqual(sm.encode());
  });
});

/** A Txn that puts two keys: one revision, sub-revisions 0 and 1. */
function twoPuts(a: string, c: string): Command {
  const op = (key: string) => ({
    request: { case: "requestPut" as const, value: { key: b(key), value: b("v") } },
  });
  return create(CommandSchema, { op: { case: "txn", value: { success: [op(a), op(c)] } } });
}

/** The state as protobuf-es encodes it in one go: the scalars and leases, then every key. */
function plainEncoding(sm: ConsensusStateMachine): Uint8Array {
  const head = toBinary(
    StateSnapshotSchema,
    create(StateSnapshotSchema, {
      revision: sm.revision,
      compactRevision: sm.compactRevision,
      nextLeaseId: BigInt(Math.max(0, ...sm.leases().map((l) => Number(l.id)))) + 1n,
      leases: sm.leases().map((l) => ({ id: l.id, ttl: l.ttlSeconds, deadlineMs: l.deadlineMs })),
    }),
  );
  const keys = toBinary(
    StateSnapshotSchema,
    create(StateSnapshotSchema, {
      keys: [...sm.store.historiesSince({ start: "", end: null }, 0n)].map(([k, recs]) => ({
        key: keyBytes(k),
        records: recs.map((r) => ({ kv: r.kv, sub: BigInt(r.sub), tombstone: r.tombstone })),
      })),
    }),
  );
  return concatBytes([head, keys]);
}
