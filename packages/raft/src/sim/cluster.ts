import { type Random, seededRandom } from "@quartet/determinism";
import { decodeConfChange } from "../confchange.ts";
import type { RaftConfig } from "../raft.ts";
import { RawNode, type Ready } from "../rawnode.ts";
import { MemoryStorage } from "../storage.ts";
import type {
  ConfChange,
  Entry,
  Message,
  NodeId,
  ProposeResult,
  ReadState,
  RequestResult,
} from "../types.ts";
import { SafetyChecker, SafetyViolation } from "./checker.ts";
import { EventQueue } from "./event-queue.ts";
import { KvStateMachine } from "./kv.ts";

/** Faults of the simulated network. Delays are in virtual milliseconds. */
export interface NetworkOptions {
  /** Probability that a message is lost. */
  dropRate: number;
  /** Probability that a message is delivered twice. */
  duplicateRate: number;
  /** Delivery delay range; distinct delays reorder messages. */
  minDelay: number;
  maxDelay: number;
}

/** Raft settings the simulator passes to every node (ids and storage are its own). */
export type SimRaftOptions = Omit<RaftConfig, "id" | "storage" | "rng" | "applied">;

/**
 * The replicated state machine a simulated node applies committed entries to. `hash` must be
 * the rolling {@link hashEntry} over every applied entry (the safety checker compares it).
 */
export interface SimStateMachine {
  /** Index of the last applied entry. */
  applied: number;
  hash: number;
  apply(e: Entry): void;
  /** The state as snapshot data. */
  encode(): Uint8Array;
}

/** Options of a {@link Simulator}. */
export interface SimOptions<SM extends SimStateMachine = KvStateMachine> {
  /** Seeds every random choice: the same seed and calls replay the same run. */
  seed: number;
  /** Initial voters are nodes 1..nodes. Default 3. */
  nodes?: number;
  raft?: SimRaftOptions;
  network?: Partial<NetworkOptions>;
  /** Virtual ms per tick. Default 10. */
  tickMs?: number;
  /** Virtual ms a node takes to persist a Ready, as [min, max]. Default [0, 2]. */
  diskDelay?: [number, number];
  /** Take a snapshot after this many applied entries and compact the log (0: never). */
  snapshotEvery?: number;
  /** Entries kept before the snapshot index when compacting. Default 2. */
  keepEntries?: number;
  /**
   * Builds a node's state machine from snapshot data at `index` (empty data: the initial
   * state). Default: the toy {@link KvStateMachine}.
   */
  stateMachine?: (index: number, data: Uint8Array) => SM;
}

/** One simulated server: durable storage, a RawNode while it runs, and its state machine. */
export interface SimNode<SM extends SimStateMachine = KvStateMachine> {
  readonly id: NodeId;
  readonly storage: MemoryStorage;
  raw: RawNode | undefined;
  kv: SM;
  up: boolean;
  incarnation: number;
  readyScheduled: boolean;
  /** A Ready whose early messages went out and whose disk write is still running. */
  persisting: Ready | undefined;
  /** Read states received, in order. */
  readonly readStates: ReadState[];
}

const TICK = 0;
const DELIVER = 1;
const READY = 2;
/** The disk write of a Ready whose early messages already left (sendBeforePersist). */
const PERSIST = 3;

interface SimEvent {
  kind: number;
  node: NodeId;
  incarnation: number;
  msg: Message | undefined;
}

/**
 * A deterministic Raft cluster in one process: N RawNodes over MemoryStorage, a virtual clock
 * and a seeded, faulty network. Every step is checked by a {@link SafetyChecker}; a broken
 * guarantee throws {@link SafetyViolation}.
 */
export class Simulator<SM extends SimStateMachine = KvStateMachine> {
  readonly nodes = new Map<NodeId, SimNode<SM>>();
  readonly checker = new SafetyChecker();
  readonly rng: Random;
  readonly seed: number;
  /** Virtual time in ms. */
  now = 0;
  /** Number of events processed. */
  steps = 0;
  /** Messages sent / delivered, for tests and statistics. */
  sent = 0;
  delivered = 0;
  /** Drops every message for which it returns false (scripted scenarios). */
  filter: ((m: Message) => boolean) | undefined = undefined;

  private readonly queue = new EventQueue<SimEvent>();
  private network: NetworkOptions;
  private groups: Map<NodeId, number> | undefined = undefined;
  private readonly raftOptions: SimRaftOptions;
  private readonly tickMs: number;
  private readonly diskDelay: [number, number];
  private readonly snapshotEvery: number;
  private readonly keepEntries: number;
  private readonly restoreStateMachine: (index: number, data: Uint8Array) => SM;

  constructor(opts: SimOptions<SM>) {
    this.seed = opts.seed;
    this.rng = seededRandom(opts.seed);
    this.raftOptions = opts.raft ?? {};
    this.tickMs = opts.tickMs ?? 10;
    this.diskDelay = opts.diskDelay ?? [0, 2];
    this.snapshotEvery = opts.snapshotEvery ?? 0;
    this.keepEntries = opts.keepEntries ?? 2;
    this.restoreStateMachine =
      opts.stateMachine ??
      (KvStateMachine.restore as unknown as (index: number, data: Uint8Array) => SM);
    this.network = { dropRate: 0, duplicateRate: 0, minDelay: 1, maxDelay: 5, ...opts.network };
    const n = opts.nodes ?? 3;
    const voters = Array.from({ length: n }, (_, i) => i + 1);
    this.checker.recordInitialState(1, 0);
    for (const id of voters) this.createNode(id, MemoryStorage.bootstrap({ voters }));
  }

  // ---- topology and faults ----

  /** Replaces the network fault settings. */
  setNetwork(opts: Partial<NetworkOptions>): void {
    this.network = { ...this.network, ...opts };
  }

  /**
   * Splits the network: nodes talk only within their group; nodes in no group are isolated.
   */
  partition(...groups: NodeId[][]): void {
    const g = new Map<NodeId, number>();
    groups.forEach((ids, i) => {
      for (const id of ids) g.set(id, i);
    });
    this.groups = g;
  }

  /** Cuts `id` off from every other node. */
  isolate(id: NodeId): void {
    const others = [...this.nodes.keys()].filter((n) => n !== id);
    this.partition([id], others);
  }

  /** Removes every partition. */
  heal(): void {
    this.groups = undefined;
  }

  /** Whether a message from `a` to `b` can currently be delivered. */
  connected(a: NodeId, b: NodeId): boolean {
    if (this.groups === undefined) return true;
    const ga = this.groups.get(a);
    return ga !== undefined && ga === this.groups.get(b);
  }

  /** Stops a node; whatever it had not persisted (its RawNode, unsent messages) is lost. */
  crash(id: NodeId): void {
    const n = this.node(id);
    if (!n.up) return;
    n.up = false;
    n.raw = undefined;
    n.incarnation++;
    n.readyScheduled = false;
    n.persisting = undefined;
  }

  /** Restarts a crashed node from its storage. */
  restart(id: NodeId): void {
    const n = this.node(id);
    if (n.up) return;
    this.start(n);
  }

  /** Adds a node with empty storage (not a member until a conf change adds it). */
  addNode(id: NodeId): SimNode<SM> {
    if (this.nodes.has(id)) return this.node(id);
    return this.createNode(id, new MemoryStorage());
  }

  node(id: NodeId): SimNode<SM> {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** Running nodes' ids. */
  upNodes(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.up).map((n) => n.id);
  }

  // ---- requests ----

  /** The running leader with the highest term, if any. */
  leader(): NodeId | undefined {
    let best: SimNode<SM> | undefined;
    for (const n of this.nodes.values()) {
      const r = n.raw?.raft;
      if (r === undefined || r.state !== "leader") continue;
      if (best === undefined || r.term > best.raw!.raft.term) best = n;
    }
    return best?.id;
  }

  /** Proposes `data` on node `via` (default: the current leader). */
  propose(data: Uint8Array, via?: NodeId): ProposeResult {
    return this.request(via, (raw) => raw.propose(data)) as ProposeResult;
  }

  /** Proposes a membership change on node `via` (default: the current leader). */
  proposeConfChange(cc: ConfChange, via?: NodeId): ProposeResult {
    return this.request(via, (raw) => raw.proposeConfChange(cc)) as ProposeResult;
  }

  /** Requests a read on node `via`; the checker verifies the answer is not stale. */
  readIndex(context: string, via?: NodeId): RequestResult {
    this.checker.onReadRequest(context);
    return this.request(via, (raw) => raw.readIndex(context));
  }

  /** Asks the leader (or `via`) to transfer leadership to `to`. */
  transferLeadership(to: NodeId, via?: NodeId): RequestResult {
    return this.request(via, (raw) => raw.transferLeadership(to));
  }

  /** Makes node `id` campaign now. */
  campaign(id: NodeId): void {
    const n = this.node(id);
    if (n.raw === undefined) return;
    this.guard(n, () => n.raw!.campaign());
  }

  private request(
    via: NodeId | undefined,
    fn: (raw: RawNode) => ProposeResult | RequestResult,
  ): ProposeResult | RequestResult {
    const id = via ?? this.leader();
    const n = id === undefined ? undefined : this.nodes.get(id);
    if (n === undefined || n.raw === undefined)
      return { ok: false, reason: "no-leader", leaderId: 0, message: "no running node to ask" };
    let result: ProposeResult | RequestResult | undefined;
    this.guard(n, () => {
      result = fn(n.raw!);
    });
    return result!;
  }

  /** Whether an entry (`index`, `term`) is known committed. */
  isCommitted(index: number, term: number): boolean {
    return this.checker.isCommitted(index, term);
  }

  // ---- running ----

  /** Processes the next event. Returns false when nothing is scheduled. */
  step(): boolean {
    const ev = this.queue.pop();
    if (ev === undefined) return false;
    this.now = this.queue.lastTime;
    this.steps++;
    const n = this.nodes.get(ev.node)!;
    if (!n.up) return true;
    if (ev.kind === DELIVER) {
      const m = ev.msg!;
      if (!this.connected(m.from, m.to)) return true;
      this.delivered++;
      this.guard(n, () => n.raw!.step(m));
    } else if (ev.incarnation === n.incarnation) {
      if (ev.kind === TICK) {
        this.queue.push(this.now + this.tickMs, {
          kind: TICK,
          node: n.id,
          incarnation: n.incarnation,
          msg: undefined,
        });
        this.guard(n, () => n.raw!.tick());
      } else if (ev.kind === PERSIST) {
        this.guard(n, () => this.finishReady(n));
      } else {
        n.readyScheduled = false;
        this.guard(n, () => this.handleReady(n));
      }
    }
    return true;
  }

  /** Runs for `ms` virtual milliseconds. */
  runFor(ms: number): void {
    const until = this.now + ms;
    while (this.queue.size() > 0 && this.queue.peekTime() <= until) this.step();
    this.now = until;
  }

  /** Runs for `ticks` ticks. */
  runTicks(ticks: number): void {
    this.runFor(ticks * this.tickMs);
  }

  /**
   * Runs until `pred` holds (checked after every event), for at most `maxTicks` ticks.
   * Returns whether it held.
   */
  runUntil(pred: () => boolean, maxTicks: number): boolean {
    const until = this.now + maxTicks * this.tickMs;
    if (pred()) return true;
    while (this.queue.size() > 0 && this.queue.peekTime() <= until) {
      this.step();
      if (pred()) return true;
    }
    this.now = until;
    return pred();
  }

  // ---- internals ----

  private createNode(id: NodeId, storage: MemoryStorage): SimNode<SM> {
    const n: SimNode<SM> = {
      id,
      storage,
      raw: undefined,
      kv: this.restoreStateMachine(0, new Uint8Array(0)),
      up: false,
      incarnation: 0,
      readyScheduled: false,
      persisting: undefined,
      readStates: [],
    };
    this.nodes.set(id, n);
    this.start(n);
    return n;
  }

  private start(n: SimNode<SM>): void {
    const snap = n.storage.snapshot();
    n.kv = this.restoreStateMachine(snap.metadata.index, snap.data);
    n.raw = new RawNode({
      ...this.raftOptions,
      id: n.id,
      storage: n.storage,
      // The state machine restarts from the snapshot, which may be ahead of the first entry.
      applied: snap.metadata.index,
      rng: seededRandom((this.seed * 31 + n.id * 7919 + n.incarnation * 104729) >>> 0),
    });
    n.up = true;
    n.incarnation++;
    this.checker.onRestart(n.id);
    if (snap.metadata.index > 0) this.checker.onRestore(n.id, snap.metadata.index, n.kv.hash);
    const phase = Math.floor(this.rng() * this.tickMs);
    this.queue.push(this.now + phase + 1, {
      kind: TICK,
      node: n.id,
      incarnation: n.incarnation,
      msg: undefined,
    });
    this.afterEvent(n);
  }

  /** Runs `fn` on node `n`, then checks it and schedules its Ready. */
  private guard(n: SimNode<SM>, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      if (err instanceof SafetyViolation) throw err;
      throw new SafetyViolation(`node ${n.id} failed: ${(err as Error).message}`);
    }
    this.afterEvent(n);
  }

  private afterEvent(n: SimNode<SM>): void {
    if (!n.up || n.raw === undefined) return;
    this.checker.checkNode(n.id, n.raw.raft);
    if (!n.readyScheduled && n.raw.hasReady()) {
      n.readyScheduled = true;
      const [lo, hi] = this.diskDelay;
      const delay = lo + Math.floor(this.rng() * (hi - lo + 1));
      this.queue.push(this.now + delay, {
        kind: READY,
        node: n.id,
        incarnation: n.incarnation,
        msg: undefined,
      });
    }
  }

  /**
   * Persist, then send, then apply: the contract of a Ready. Early messages (a leader's appends
   * with sendBeforePersist) leave first, and the disk write then takes a while of its own, so
   * the node steps messages, ticks, or crashes while its entries are on the wire but not on
   * its disk.
   */
  private handleReady(n: SimNode<SM>): void {
    const rd = n.raw!.ready();
    if (rd.earlyMessages.length === 0) {
      this.persistAndApply(n, rd);
      return;
    }
    for (const m of rd.earlyMessages) this.send(m);
    n.persisting = rd;
    const [lo, hi] = this.diskDelay;
    this.queue.push(this.now + lo + Math.floor(this.rng() * (hi - lo + 1)), {
      kind: PERSIST,
      node: n.id,
      incarnation: n.incarnation,
      msg: undefined,
    });
  }

  private finishReady(n: SimNode<SM>): void {
    const rd = n.persisting!;
    n.persisting = undefined;
    this.persistAndApply(n, rd);
  }

  private persistAndApply(n: SimNode<SM>, rd: Ready): void {
    const raw = n.raw!;
    const st = n.storage;
    if (rd.snapshot !== undefined) {
      st.applySnapshot(rd.snapshot);
      n.kv = this.restoreStateMachine(rd.snapshot.metadata.index, rd.snapshot.data);
      this.checker.onRestore(n.id, rd.snapshot.metadata.index, n.kv.hash);
    }
    if (rd.entries.length > 0) {
      st.append(rd.entries);
      this.checker.onPersist(n.id, rd.entries, st.term(rd.entries[0]!.index - 1));
    }
    if (rd.hardState !== undefined) {
      st.setHardState(rd.hardState);
      this.checker.onHardState(n.id, rd.hardState);
    }
    for (const m of rd.messages) this.send(m);
    const commit = raw.raft.log.committed;
    for (const e of rd.committedEntries) {
      if (e.type === "confChange") raw.applyConfChange(decodeConfChange(e.data));
      n.kv.apply(e);
      this.checker.onApply(n.id, e, commit, n.kv.hash);
    }
    for (const rs of rd.readStates) {
      this.checker.onReadState(n.id, rs);
      n.readStates.push(rs);
    }
    raw.advance();
    this.maybeSnapshot(n);
  }

  private maybeSnapshot(n: SimNode<SM>): void {
    if (this.snapshotEvery <= 0) return;
    const st = n.storage;
    const applied = n.kv.applied;
    if (applied - st.snapshot().metadata.index < this.snapshotEvery) return;
    st.createSnapshot(applied, n.raw!.raft.confState(), n.kv.encode());
    st.compact(Math.max(st.firstIndex() - 1, applied - this.keepEntries));
  }

  private send(m: Message): void {
    this.sent++;
    if (this.filter !== undefined && !this.filter(m)) return;
    if (!this.nodes.has(m.to)) return;
    const net = this.network;
    if (net.dropRate > 0 && this.rng() < net.dropRate) return;
    this.schedule(m);
    if (net.duplicateRate > 0 && this.rng() < net.duplicateRate) this.schedule(m);
  }

  private schedule(m: Message): void {
    const { minDelay, maxDelay } = this.network;
    const delay = minDelay + Math.floor(this.rng() * (maxDelay - minDelay + 1));
    this.queue.push(this.now + delay, { kind: DELIVER, node: m.to, incarnation: 0, msg: m });
  }
}
