import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { Code } from "@connectrpc/connect";
import {
  type Command,
  type CommandResult,
  CommandResultSchema,
  LeaseRecordSchema,
  StateSnapshotSchema,
} from "@quartet/proto/quartet/consensus/v1/internal_pb";
import {
  type Compare,
  Compare_CompareResult,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  DeleteRangeResponseSchema,
  type KeyValue,
  type PutRequest,
  type PutResponse,
  PutResponseSchema,
  type RangeRequest,
  type RangeResponse,
  RangeResponseSchema,
  type RequestOp,
  type ResponseOp,
  ResponseOpSchema,
  type TxnRequest,
  type TxnResponse,
  TxnResponseSchema,
} from "@quartet/proto/quartet/consensus/v1/kv_pb";
import {
  type Event,
  Event_EventType,
  EventSchema,
} from "@quartet/proto/quartet/consensus/v1/watch_pb";
import { concatBytes } from "../bytes.ts";
import { compactedError, futureRevisionError, leaseNotFoundError, StateError } from "./errors.ts";
import { type KeyString, keyBytes, keyRange, keyString } from "./keys.ts";
import { historyKeyField, MvccStore } from "./mvcc.ts";

/** A lease: its granted TTL and the deadline the leaders' clocks gave it. */
export interface Lease {
  id: bigint;
  ttlSeconds: bigint;
  deadlineMs: bigint;
}

/** What applying one command produced. */
export interface Applied {
  result: CommandResult;
  /** The watch events of the command, in revision order, for the watch hub to fan out. */
  events: Event[];
}

/**
 * The replicated state machine: an MVCC key-value store and a lease table. Pure and
 * deterministic: applying the same commands to equal states gives equal states, results and
 * events on every replica; time only enters as the `now_ms` the leader put in each command.
 */
export class ConsensusStateMachine {
  readonly store = new MvccStore();
  private readonly leaseTable = new Map<bigint, Lease>();
  /** Keys attached to each lease (the latest live version's lease). */
  private readonly leaseKeys = new Map<bigint, Set<KeyString>>();
  private nextLeaseId = 1n;

  get revision(): bigint {
    return this.store.revision;
  }

  get compactRevision(): bigint {
    return this.store.compactRevision;
  }

  lease(id: bigint): Lease | undefined {
    return this.leaseTable.get(id);
  }

  /** Every lease, in id order. */
  leases(): Lease[] {
    return [...this.leaseTable.values()].sort((a, b) => cmp(a.id, b.id));
  }

  /** The keys attached to lease `id`, in key order. */
  leaseKeysOf(id: bigint): Uint8Array[] {
    return [...(this.leaseKeys.get(id) ?? [])].sort().map(keyBytes);
  }

  /** Seconds left of lease `id` at `nowMs`, rounded up; -1 when it does not exist. */
  timeToLive(id: bigint, nowMs: bigint): bigint {
    const l = this.leaseTable.get(id);
    if (l === undefined) return -1n;
    const left = l.deadlineMs - nowMs;
    return left <= 0n ? 0n : (left + 999n) / 1000n;
  }

  /** A read (outside the log). Throws StateError for a compacted or future revision. */
  range(req: RangeRequest): RangeResponse {
    const rev = this.store.readRevision(req.revision);
    const kvs = this.store.range(keyRange(req.key, req.rangeEnd), rev);
    return rangeResponse(req, kvs);
  }

  /**
   * Applies one committed command. Refusals become an error result, changing nothing. Without
   * `withEvents` (nobody watches this replica) no events are made: the state is the same.
   */
  apply(cmd: Command, withEvents = true): Applied {
    const events: Event[] = [];
    const w = new Writer(this, withEvents ? events : undefined);
    try {
      const result = this.dispatch(cmd, w);
      if (w.wrote) this.store.revision = w.rev;
      result.revision = this.store.revision;
      return { result, events };
    } catch (err) {
      if (!(err instanceof StateError)) throw err;
      if (w.wrote) throw new Error(`state machine: ${err.message} after writing`);
      return {
        result: create(CommandResultSchema, {
          revision: this.store.revision,
          result: { case: "error", value: { code: err.code, message: err.message } },
        }),
        events: [],
      };
    }
  }

  private dispatch(cmd: Command, w: Writer): CommandResult {
    const now = cmd.nowMs;
    const op = cmd.op;
    switch (op.case) {
      case "put":
        this.checkLease(op.value.lease);
        return result({ case: "put", value: w.put(op.value) });
      case "deleteRange":
        return result({ case: "deleteRange", value: w.deleteRange(op.value) });
      case "txn":
        return result({ case: "txn", value: this.txn(op.value, w) });
      case "compact": {
        const rev = op.value.revision;
        if (rev <= this.store.compactRevision)
          throw compactedError(rev, this.store.compactRevision);
        if (rev > this.store.revision) throw futureRevisionError(rev, this.store.revision);
        this.store.compact(rev);
        return result({ case: "compact", value: {} });
      }
      case "leaseGrant": {
        let id = op.value.id;
        if (id < 0n) throw new StateError(Code.InvalidArgument, `lease id ${id} is negative`);
        if (id === 0n) {
          while (this.leaseTable.has(this.nextLeaseId)) this.nextLeaseId++;
          id = this.nextLeaseId++;
        } else if (this.leaseTable.has(id)) {
          throw new StateError(
            Code.AlreadyExists,
            `lease ${id} already exists: choose another id or 0 to let the cluster choose`,
          );
        }
        const ttl = op.value.ttl;
        this.leaseTable.set(id, { id, ttlSeconds: ttl, deadlineMs: now + ttl * 1000n });
        return result({ case: "leaseGrant", value: { id, ttl } });
      }
      case "leaseRevoke":
        this.checkLease(op.value.id);
        this.revoke(op.value.id, w);
        return result({ case: "leaseRevoke", value: {} });
      case "leaseRenew": {
        const l = this.leaseTable.get(op.value.id);
        if (l === undefined) throw leaseNotFoundError(op.value.id);
        l.deadlineMs = now + l.ttlSeconds * 1000n;
        return result({ case: "leaseRenew", value: { id: l.id, ttl: l.ttlSeconds } });
      }
      case "expireLeases": {
        // Each expired lease is revoked in its own revision, in id order, as etcd's lessor
        // proposes one revoke per expired lease.
        const ids: bigint[] = [];
        for (const l of this.leases()) {
          if (l.deadlineMs > now) continue;
          this.revoke(l.id, w);
          w.commitRevision();
          ids.push(l.id);
        }
        return result({ case: "expireLeases", value: { ids } });
      }
      case "promoteLeases": {
        for (const l of this.leaseTable.values()) l.deadlineMs = now + l.ttlSeconds * 1000n;
        return result({ case: "promoteLeases", value: { count: BigInt(this.leaseTable.size) } });
      }
      default:
        throw new StateError(Code.InvalidArgument, "empty command");
    }
  }

  private txn(req: TxnRequest, w: Writer): TxnResponse {
    const succeeded = req.compare.every((c) => this.compare(c));
    const ops = succeeded ? req.success : req.failure;
    // Check the branch first: a Txn either runs whole or changes nothing.
    for (const op of ops) {
      if (op.request.case === "requestPut") this.checkLease(op.request.value.lease);
      if (op.request.case === "requestRange") this.store.readRevision(op.request.value.revision);
    }
    const responses = ops.map((op) => this.txnOp(op, w));
    return create(TxnResponseSchema, { succeeded, responses });
  }

  private txnOp(op: RequestOp, w: Writer): ResponseOp {
    const r = op.request;
    switch (r.case) {
      case "requestRange": {
        // Reads inside a Txn see the Txn's earlier writes.
        const kvs =
          r.value.revision > 0n
            ? this.store.range(keyRange(r.value.key, r.value.rangeEnd), r.value.revision)
            : this.store.range(keyRange(r.value.key, r.value.rangeEnd));
        return create(ResponseOpSchema, {
          response: { case: "responseRange", value: rangeResponse(r.value, kvs) },
        });
      }
      case "requestPut":
        return create(ResponseOpSchema, {
          response: { case: "responsePut", value: w.put(r.value) },
        });
      case "requestDeleteRange":
        return create(ResponseOpSchema, {
          response: { case: "responseDeleteRange", value: w.deleteRange(r.value) },
        });
      default:
        throw new StateError(Code.InvalidArgument, "empty Txn operation");
    }
  }

  private compare(c: Compare): boolean {
    const kv = this.store.get(keyString(c.key));
    const t = c.targetUnion;
    let order: number;
    switch (t.case) {
      case "version":
        order = cmp(kv?.version ?? 0n, t.value);
        break;
      case "createRevision":
        order = cmp(kv?.createRevision ?? 0n, t.value);
        break;
      case "modRevision":
        order = cmp(kv?.modRevision ?? 0n, t.value);
        break;
      case "lease":
        order = cmp(kv?.lease ?? 0n, t.value);
        break;
      case "value":
        order = Buffer.compare(kv?.value ?? new Uint8Array(0), t.value);
        break;
      default:
        throw new StateError(Code.InvalidArgument, "compare without a target");
    }
    switch (c.result) {
      case Compare_CompareResult.EQUAL:
        return order === 0;
      case Compare_CompareResult.NOT_EQUAL:
        return order !== 0;
      case Compare_CompareResult.GREATER:
        return order > 0;
      case Compare_CompareResult.LESS:
        return order < 0;
      default:
        throw new StateError(Code.InvalidArgument, "compare without a result");
    }
  }

  private checkLease(id: bigint): void {
    if (id !== 0n && !this.leaseTable.has(id)) throw leaseNotFoundError(id);
  }

  private revoke(id: bigint, w: Writer): void {
    for (const k of [...(this.leaseKeys.get(id) ?? [])].sort()) w.deleteKey(k);
    this.leaseTable.delete(id);
    this.leaseKeys.delete(id);
  }

  /** Keeps the lease-to-keys index in step with a key's latest version. */
  attach(key: KeyString, from: bigint, to: bigint): void {
    if (from !== 0n) this.leaseKeys.get(from)?.delete(key);
    if (to !== 0n) {
      let keys = this.leaseKeys.get(to);
      if (keys === undefined) {
        keys = new Set();
        this.leaseKeys.set(to, keys);
      }
      keys.add(key);
    }
  }

  // ---- snapshots ----

  /** The whole state as bytes, canonical: equal states give equal bytes. */
  encode(): Uint8Array {
    return concatBytes(this.snapshot());
  }

  /**
   * The state as it is now, as pieces of its encoding: a StateSnapshot message in pieces, the
   * scalars and leases first, then each key's history. A protobuf message's encodings
   * concatenated parse as one message whose repeated fields hold every piece's, so the pieces
   * need no framing. The histories are the store's own bytes, which never change, so the pieces
   * stay this state's while the state machine goes on.
   */
  snapshot(): Uint8Array[] {
    const head = create(StateSnapshotSchema, {
      revision: this.store.revision,
      compactRevision: this.store.compactRevision,
      nextLeaseId: this.nextLeaseId,
      leases: this.leases().map((l) =>
        create(LeaseRecordSchema, { id: l.id, ttl: l.ttlSeconds, deadlineMs: l.deadlineMs }),
      ),
    });
    const pieces: Uint8Array[] = [toBinary(StateSnapshotSchema, head)];
    const w = new BinaryWriter();
    for (const [k, records] of this.store.encodedEntries()) {
      // A KeyHistory is its key (field 1), then its records; here framed as field 4 (keys).
      const key = w.tag(historyKeyField, WireType.LengthDelimited).bytes(keyBytes(k)).finish();
      const frame = w
        .tag(snapshotKeysField, WireType.LengthDelimited)
        .uint32(key.byteLength + records.byteLength)
        .finish();
      pieces.push(frame, key, records);
    }
    return pieces;
  }

  /** Rebuilds a state machine from {@link encode}'s bytes (empty bytes: the initial state). */
  static restore(data: Uint8Array): ConsensusStateMachine {
    const sm = new ConsensusStateMachine();
    if (data.byteLength === 0) return sm;
    // The histories go to the store as bytes; the rest is read as a message of its own.
    const head = new BinaryWriter();
    const r = new BinaryReader(data);
    while (r.pos < r.len) {
      const start = r.pos;
      const [field, wireType] = r.tag();
      if (field === snapshotKeysField && wireType === WireType.LengthDelimited) {
        const [k, newest] = sm.store.loadHistory(r.bytes());
        if (!newest.tombstone) sm.attach(k, 0n, newest.kv.lease);
      } else {
        r.skip(wireType);
        head.raw(data.subarray(start, r.pos));
      }
    }
    const s = fromBinary(StateSnapshotSchema, head.finish());
    sm.store.revision = s.revision;
    sm.store.compactRevision = s.compactRevision;
    sm.nextLeaseId = s.nextLeaseId;
    for (const l of s.leases)
      sm.leaseTable.set(l.id, { id: l.id, ttlSeconds: l.ttl, deadlineMs: l.deadlineMs });
    return sm;
  }
}

/** StateSnapshot's field of key histories, which snapshot() frames and restore() reads as bytes. */
const snapshotKeysField = 4;

/** The writes of one command: they share the next revision, with increasing sub-revisions. */
class Writer {
  wrote = false;
  rev: bigint;
  private sub = 0;

  private readonly sm: ConsensusStateMachine;
  /** Undefined when nobody watches: no events are made. */
  private readonly events: Event[] | undefined;

  constructor(sm: ConsensusStateMachine, events: Event[] | undefined) {
    this.sm = sm;
    this.events = events;
    this.rev = sm.store.revision + 1n;
  }

  put(req: PutRequest): PutResponse {
    const key = keyString(req.key);
    const { kv, prev, prevLease } = this.sm.store.put(
      key,
      req.key,
      req.value,
      req.lease,
      this.rev,
      this.sub++,
      this.events !== undefined || req.prevKv,
    );
    this.sm.attach(key, prevLease ?? 0n, req.lease);
    this.wrote = true;
    this.events?.push(create(EventSchema, { type: Event_EventType.PUT, kv, prevKv: prev }));
    return create(PutResponseSchema, req.prevKv && prev !== undefined ? { prevKv: prev } : {});
  }

  deleteRange(req: DeleteRangeRequest): DeleteRangeResponse {
    const live = this.sm.store.range(keyRange(req.key, req.rangeEnd));
    const prevKvs: KeyValue[] = [];
    for (const kv of live) prevKvs.push(this.deleteKey(keyString(kv.key))!);
    return create(DeleteRangeResponseSchema, {
      deleted: BigInt(live.length),
      prevKvs: req.prevKv ? prevKvs : [],
    });
  }

  deleteKey(key: KeyString): KeyValue | undefined {
    const prev = this.sm.store.delete(key, this.rev, this.sub++);
    if (prev === undefined) return undefined;
    this.sm.attach(key, prev.lease, 0n);
    this.wrote = true;
    this.events?.push(
      create(EventSchema, {
        type: Event_EventType.DELETE,
        kv: { key: prev.key, modRevision: this.rev },
        prevKv: prev,
      }),
    );
    return prev;
  }

  /** Ends the current revision if it wrote, so later writes take the next one. */
  commitRevision(): void {
    if (!this.wrote) return;
    this.sm.store.revision = this.rev;
    this.wrote = false;
    this.rev++;
    this.sub = 0;
  }
}

function rangeResponse(req: RangeRequest, all: KeyValue[]): RangeResponse {
  const count = BigInt(all.length);
  if (req.countOnly) return create(RangeResponseSchema, { count });
  const limited = req.limit > 0n && all.length > req.limit ? all.slice(0, Number(req.limit)) : all;
  const kvs = req.keysOnly ? limited.map((kv) => ({ ...kv, value: new Uint8Array(0) })) : limited;
  return create(RangeResponseSchema, { kvs, more: limited.length < all.length, count });
}

function result(r: MessageInitShape<typeof CommandResultSchema>["result"]): CommandResult {
  return create(CommandResultSchema, { result: r });
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
