import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { ObserveService, RaftView } from "@quartet/proto/quartet/consensus/v1/observe_pb";
import { ChangeWaiter } from "@quartet/server";
import type { RaftNode } from "../node/raft-node.ts";
import { type RaftObserver, raftView, sameView } from "./raft-observer.ts";

export interface ObserveDeps {
  node: RaftNode;
  observer: RaftObserver;
  isolated: () => boolean;
}

/** Reads a duration field: 0 means the default, anything else must be in [min, max]. */
function duration(name: string, value: number, fallback: number, min: number, max: number) {
  if (value === 0) return fallback;
  if (value < min || value > max)
    throw new ConnectError(
      `${name} must be 0 (default ${fallback}) or ${min} to ${max}, got ${value}`,
      Code.InvalidArgument,
    );
  return value;
}

/**
 * quartet.consensus.v1.ObserveService: the member's Raft view as a stream, sent when it
 * changes (never more often than the caller's interval) and resent unchanged as a heartbeat.
 */
export function createObserveService(deps: ObserveDeps): ServiceImpl<typeof ObserveService> {
  const view = () => raftView(deps.node, deps.isolated());
  return {
    async *watchRaft(req, ctx) {
      const minInterval = duration("min_interval_ms", req.minIntervalMs, 100, 20, 60_000);
      const heartbeat = duration("heartbeat_ms", req.heartbeatMs, 5000, 100, 600_000);
      const signal = ctx.signal;
      const changes = new ChangeWaiter((changed) => deps.observer.listen(changed), signal);
      let last: RaftView | undefined;
      let lastSentAt = 0;
      try {
        while (!signal.aborted) {
          changes.take();
          const current = view();
          const now = Date.now();
          if (last === undefined || !sameView(last, current) || now - lastSentAt >= heartbeat) {
            current.observedAtUnixMs = BigInt(now);
            yield { view: current };
            last = current;
            lastSentAt = now;
            // Coalesce: changes during the pause are sent together after it.
            await sleep(minInterval, undefined, { signal }).catch(() => {});
          }
          await changes.wait(lastSentAt + heartbeat - Date.now());
        }
      } finally {
        changes.close();
      }
    },
  };
}
