import type { ServiceImpl } from "@connectrpc/connect";
import type { WatchRequest, WatchService } from "@quartet/proto/quartet/consensus/v1/watch_pb";
import type { CommandWriter } from "./commands.ts";
import type { ReplicatedState } from "./replicated-state.ts";
import type { WatchHub } from "./watch-hub.ts";
import type { WatchLimits } from "./watch-limits.ts";

/** How often a watch that asked for progress notifications gets one when nothing changes. */
const progressMs = 5_000;

/**
 * quartet.consensus.v1.WatchService: the first response (no events) says the watch is live
 * and at which revision; then batches of events in revision order, each event once.
 */
export function createWatchService(deps: {
  writer: CommandWriter;
  state: ReplicatedState;
  hub: WatchHub;
  limits: WatchLimits;
}): ServiceImpl<typeof WatchService> {
  const { writer, state, hub, limits } = deps;
  return {
    async *watch(req, ctx) {
      // Refused before anything starts: a watch past the caller's limit changes nothing.
      const release = limits.acquire(ctx);
      try {
        yield* stream(req, ctx.signal);
      } finally {
        release();
      }
    },
  };

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
