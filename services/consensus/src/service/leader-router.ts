import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { NodeId } from "@quartet/raft";
import { neverConnected } from "../never-connected.ts";
import { NotLeaderError, ProposalDroppedError, type RaftNode } from "../node/raft-node.ts";
import { forwardedHeader } from "./forwarding.ts";

/**
 * Runs writes and linearizable reads where they can run. A write goes through this member's
 * Raft node when it leads, and is otherwise forwarded to the leader (the client never needs
 * to know who leads); a forwarded call that reaches a member that no longer leads is not
 * forwarded again. With no leader (an election), or a leader that refuses the connection
 * (down, before this member has seen the election), calls wait for one within their deadline
 * and then fail with Unavailable. A proposal a new leader replaced never happened, so it is
 * proposed again.
 */
export class LeaderRouter {
  private readonly node: RaftNode;
  private waiters: (() => void)[] = [];

  constructor(node: RaftNode) {
    this.node = node;
  }

  /** Call on every role or leader change. */
  leaderChanged(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /**
   * Proposes `data` here when this member leads; otherwise calls `forward(leaderId)` (once).
   * Resolves with the state machine's result, or the forwarded call's response. `check`
   * runs before proposing on the leader, whose state holds every acknowledged write (a
   * follower's may lag, so checks against state belong there).
   */
  async write<R>(
    ctx: HandlerContext,
    data: Uint8Array,
    fromResult: (result: unknown) => R,
    forward: (leader: NodeId) => Promise<R>,
    check: () => void = () => {},
  ): Promise<R> {
    for (;;) {
      try {
        if (this.node.isLeader()) check();
        return fromResult(await this.node.propose(data, ctx.signal));
      } catch (e) {
        if (e instanceof ProposalDroppedError) continue;
        if (!(e instanceof NotLeaderError)) throw e;
        const leader = e.leaderId;
        if (leader !== 0 && leader !== this.node.id && !ctx.requestHeader.has(forwardedHeader)) {
          try {
            return await forward(leader);
          } catch (f) {
            // A leader that refused the connection (it is down, and this member has not yet
            // seen the election) never saw the call: it waits for the next leader like a call
            // that found none. Any other failure may come after the leader applied it.
            if (!neverConnected(f)) throw f;
          }
        }
        await this.nextLeader(ctx, e);
      }
    }
  }

  /** Resolves once this member reflects every write committed before the call. */
  async readBarrier(ctx: Pick<HandlerContext, "signal">): Promise<void> {
    for (;;) {
      try {
        await this.node.linearizableBarrier(ctx.signal);
        return;
      } catch (e) {
        if (!(e instanceof NotLeaderError)) throw e;
        await this.nextLeader(ctx, e);
      }
    }
  }

  /** Resolves once this member follows (or is) `leader`; rejects when `signal` aborts. */
  async until(leader: NodeId, signal: AbortSignal): Promise<void> {
    while (this.node.status().leaderId !== leader) {
      signal.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        this.waiters.push(() => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        });
      });
    }
  }

  /** Waits for the next leader change; past the call's deadline, Unavailable. */
  nextLeader(ctx: Pick<HandlerContext, "signal">, why: NotLeaderError): Promise<void> {
    const signal = ctx.signal;
    if (signal.aborted) return Promise.reject(unavailable(why));
    // A leader learnt since the refusal: try again at once.
    const lead = this.node.status().leaderId;
    if (lead !== 0 && lead !== why.leaderId) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(unavailable(why));
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }
}

function unavailable(why: NotLeaderError): ConnectError {
  return new ConnectError(
    `no leader to take the call before its deadline (${why.message}); the cluster is electing one or has lost its quorum: retry`,
    Code.Unavailable,
  );
}
