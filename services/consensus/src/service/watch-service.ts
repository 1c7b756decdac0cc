import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { WatchRequest, WatchService } from "@quartet/proto/quartet/consensus/v1/watch_pb";
import type { CommandWriter } from "./commands.ts";
import type { LeaderRouter } from "./leader-router.ts";
import type { ReplicatedState } from "./replicated-state.ts";
import type { WatchHub } from "./watch-hub.ts";
import type { WatchLimits } from "./watch-limits.ts";

/** How often a watch that asked for progress notifications gets one when nothing changes. */
const progressMs = 5_000;

/** How long a new watch waits for its member to confirm it is up to date with the leader. */
const catchUpMs = 5_000;

/**
 * quartet.consensus.v1.WatchService: the first response (no events) says the watch is live
 * and at which revision; then batches of events in revision order, each event once.
 */
export function createWatchService(deps: {
  writer: CommandWriter;
  router: LeaderRouter;
  state: ReplicatedState;
  hub: WatchHub;
  limits: WatchLimits;
}): ServiceImpl<typeof WatchService> {
  const { writer, router, state, hub, limits } = deps;
  return {
    async *watch(req, ctx) {
      // Refused before anything starts: a watch past the caller's limit changes nothing.
      const release = limits.acquire(ctx);
      try {
        await catchUp(ctx.signal);
        yield* stream(req, ctx.signal);
      } finally {
        release();
      }
    },
  };

  /**
   * A watch starts from a member that has applied everything committed before it was asked
   * for (a read barrier, as a linearizable read): a lagging follower would otherwise replay
   * history a Compact already acknowledged as gone, or start "now" before a write its caller
   * saw acknowledged. A member that cannot reach a leader says so, and the client watches
   * through another.
   */
  async function catchUp(signal: AbortSignal): Promise<void> {
    const bounded = AbortSignal.any([signal, AbortSignal.timeout(catchUpMs)]);
    try {
      await router.readBarrier({ signal: bounded });
    } catch (e) {
      if (signal.aborted) throw e;
      throw new ConnectError(
        `this member could not confirm within ${catchUpMs / 1000} s that it is up to date with a leader (the cluster is electing one, or this member is cut off): watch through another member`,
        Code.Unavailable,
      );
    }
  }

  async function* stream(req: WatchRequest, signal: AbortSignal) {
    const sm = state.current;
    if (req.startRevision > 0n && req.startRevision <= sm.compactRevision) {
      // The history is gone: say from where it is kept, and end (the client reads the
      // current state, then watches from after it).
      yield { header: writer.header(sm.revision), compactRevision: sm.compactRevision + 1n };
      return;
    }
    const events = hub.watch(sm, req, signal, req.progressNotify ? progressMs : undefined);
    yield { header: writer.header(sm.revision) };
    for await (const batch of events) {
      yield { header: writer.header(state.current.revision), events: batch };
    }
  }
}
