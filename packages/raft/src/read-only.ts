import type { NodeId } from "./types.ts";

/** A read waiting for a heartbeat round to confirm the leader is still the leader. */
export interface PendingRead {
  /** The commit index when the read arrived: the read is served at or after it. */
  index: number;
  context: string;
  /** Who asked: the leader itself, or the follower that forwarded the request. */
  from: NodeId;
  acks: Map<NodeId, boolean>;
}

/**
 * ReadIndex bookkeeping on the leader. Requests are queued in arrival order; a quorum of
 * heartbeat acks for one request also confirms every request queued before it.
 */
export class ReadOnly {
  private readonly pending = new Map<string, PendingRead>();
  private queue: string[] = [];

  /** Queues a read; a duplicate context is ignored (the first request stands). */
  add(index: number, context: string, from: NodeId): void {
    if (this.pending.has(context)) return;
    this.pending.set(context, { index, context, from, acks: new Map() });
    this.queue.push(context);
  }

  /** Records that `id` acknowledged the heartbeat for `context`; returns the acks so far. */
  recvAck(id: NodeId, context: string): Map<NodeId, boolean> | undefined {
    const p = this.pending.get(context);
    if (p === undefined) return undefined;
    p.acks.set(id, true);
    return p.acks;
  }

  /** Removes and returns every request up to and including `context`, oldest first. */
  advance(context: string): PendingRead[] {
    const at = this.queue.indexOf(context);
    if (at < 0) return [];
    const done = this.queue.slice(0, at + 1);
    this.queue = this.queue.slice(at + 1);
    const out: PendingRead[] = [];
    for (const c of done) {
      out.push(this.pending.get(c)!);
      this.pending.delete(c);
    }
    return out;
  }

  /** The newest pending context, to piggyback on the next heartbeat. */
  lastPendingContext(): string {
    return this.queue.length > 0 ? this.queue[this.queue.length - 1]! : "";
  }

  /** The number of reads still waiting. */
  size(): number {
    return this.queue.length;
  }
}
