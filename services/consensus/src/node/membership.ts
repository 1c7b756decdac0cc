import type { ConfChange, ConfState, NodeId } from "@quartet/raft";
import type { StateMachine } from "./raft-node.ts";

/** What a membership change's `context` carries: the new member's addresses. */
export interface MemberContext {
  peerUrls: string[];
}

/** The replicated part of the member table, as it travels in snapshots. */
interface MemberTableJson {
  /** Members added at run time: id -> peer URLs (founding members' come from --peers). */
  added: [NodeId, string[]][];
  /** Every id ever removed: it never serves again, and is never given to a new member. */
  removed: NodeId[];
}

/** Marks a snapshot that carries the member table ahead of the application's state. */
const magic = new TextEncoder().encode("QMT1");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The member table, replicated with the log: a membership change carries the new member's
 * peer URLs in its context, and every member records them when it applies the change (and
 * restores them from a snapshot), so members that start later or restart know every
 * member's address. It wraps the application's state machine because the table must travel
 * in the same snapshots (a member that catches up from a snapshot never sees the changes
 * that the snapshot covers). The founding members' addresses come from each member's own
 * --peers, which also wins over the replicated address (it is this member's view of the
 * network: tests put a proxy on every link).
 *
 * The table is JSON, as the conf change it comes from is (packages/raft encodes conf changes
 * as JSON): it is tiny and changes rarely.
 */
export class Membership implements StateMachine {
  readonly self: NodeId;
  private readonly localPeers: ReadonlyMap<NodeId, string>;
  private app: StateMachine | undefined;
  private added = new Map<NodeId, string[]>();
  private removed = new Set<NodeId>();
  private readonly listeners = new Set<() => void>();

  constructor(options: { self: NodeId; localPeers: ReadonlyMap<NodeId, string> }) {
    this.self = options.self;
    this.localPeers = options.localPeers;
  }

  /** The application state machine it wraps (set once, before the Raft node starts). */
  wrap(app: StateMachine): this {
    this.app = app;
    return this;
  }

  /** Called after every change of the table (a membership change applied, a snapshot restored). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  apply(index: number, data: Uint8Array): unknown {
    return this.inner.apply(index, data);
  }

  async snapshot(): Promise<readonly Uint8Array[]> {
    // Both taken now, before any later entry is applied.
    const table: MemberTableJson = { added: [...this.added], removed: [...this.removed] };
    const json = encoder.encode(JSON.stringify(table));
    const head = new Uint8Array(magic.byteLength + 4 + json.byteLength);
    head.set(magic, 0);
    new DataView(head.buffer).setUint32(magic.byteLength, json.byteLength);
    head.set(json, magic.byteLength + 4);
    return [head, ...(await this.inner.snapshot())];
  }

  restore(index: number, data: Uint8Array): void {
    const { table, app } = splitSnapshot(data);
    this.added = new Map(table.added);
    this.removed = new Set(table.removed);
    this.inner.restore(index, app);
    this.changed();
  }

  applyConfChange(_index: number, cc: ConfChange, _conf: ConfState): void {
    const context = parseContext(cc.context);
    for (const c of cc.changes) {
      if (c.type === "removeNode") {
        this.added.delete(c.nodeId);
        this.removed.add(c.nodeId);
      } else if (context) {
        this.added.set(c.nodeId, context.peerUrls);
      }
    }
    this.changed();
  }

  /** Whether `id` was removed from the cluster (it must never serve again). */
  wasRemoved(id: NodeId): boolean {
    return this.removed.has(id);
  }

  /** The peer URLs other members know `id` by (its MemberAddLearner ones, or --peers'). */
  peerUrls(id: NodeId): string[] {
    return this.added.get(id) ?? (this.localPeers.has(id) ? [this.localPeers.get(id)!] : []);
  }

  /** The address this member reaches `id` on: its own --peers first, then the replicated one. */
  get(id: NodeId): string | undefined {
    return this.localPeers.get(id) ?? this.added.get(id)?.[0];
  }

  /** Every member of `conf` but this one, with the address this member reaches it on. */
  addressBook(conf: ConfState): Map<NodeId, string> {
    const book = new Map<NodeId, string>();
    for (const id of membersOf(conf)) {
      const url = this.get(id);
      if (id !== this.self && url !== undefined) book.set(id, url);
    }
    return book;
  }

  /** The id a new member gets: above every id the cluster has used (removed ones included). */
  nextId(conf: ConfState): NodeId {
    let max = 0;
    for (const id of [...membersOf(conf), ...this.added.keys(), ...this.removed]) {
      max = Math.max(max, id);
    }
    return max + 1;
  }

  private get inner(): StateMachine {
    if (this.app === undefined) throw new Error("Membership.wrap() was not called");
    return this.app;
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

/** Every member of a configuration: voters (of both halves of a joint one) and learners. */
export function membersOf(conf: ConfState): NodeId[] {
  const ids = new Set([...conf.voters, ...conf.votersOutgoing, ...conf.learners]);
  return [...ids].sort((a, b) => a - b);
}

export function encodeContext(context: MemberContext): string {
  return JSON.stringify(context);
}

function parseContext(context: string | undefined): MemberContext | undefined {
  if (!context) return undefined;
  const parsed = JSON.parse(context) as Partial<MemberContext>;
  return Array.isArray(parsed.peerUrls) ? { peerUrls: parsed.peerUrls.map(String) } : undefined;
}

/** A snapshot without the marker predates the member table: all of it is the application's. */
function splitSnapshot(data: Uint8Array): { table: MemberTableJson; app: Uint8Array } {
  const empty: MemberTableJson = { added: [], removed: [] };
  const marked = data.byteLength >= magic.byteLength + 4 && magic.every((b, i) => data[i] === b);
  if (!marked) return { table: empty, app: data };
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const length = view.getUint32(magic.byteLength);
  const start = magic.byteLength + 4;
  const table = JSON.parse(decoder.decode(data.subarray(start, start + length))) as MemberTableJson;
  return { table, app: data.subarray(start + length) };
}
