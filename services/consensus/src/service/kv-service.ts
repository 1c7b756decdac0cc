import type { ServiceImpl } from "@connectrpc/connect";
import { KVService } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { validateRange } from "../state/validate.ts";
import { asConnectError, type CommandWriter } from "./commands.ts";
import type { ForwardingClients } from "./forwarding.ts";
import type { LeaderRouter } from "./leader-router.ts";
import type { ReplicatedState } from "./replicated-state.ts";

export interface KvServiceDeps {
  writer: CommandWriter;
  router: LeaderRouter;
  state: ReplicatedState;
  forwarding: ForwardingClients;
}

/**
 * quartet.consensus.v1.KVService: writes become Commands in the Raft log (proposed on the
 * leader, forwarded to it from a follower); reads are served from this member's state after
 * a ReadIndex barrier, or at once when the caller asks for a serializable read.
 */
export function createKvService(deps: KvServiceDeps): ServiceImpl<typeof KVService> {
  const { writer, router, state, forwarding } = deps;
  const leaderKv = (leader: number) => forwarding.to(KVService, leader);
  return {
    put(req, ctx) {
      return writer.write(ctx, "put", req, (leader) => {
        const { client, headers } = leaderKv(leader);
        return client.put(req, { headers, signal: ctx.signal });
      });
    },
    deleteRange(req, ctx) {
      return writer.write(ctx, "deleteRange", req, (leader) => {
        const { client, headers } = leaderKv(leader);
        return client.deleteRange(req, { headers, signal: ctx.signal });
      });
    },
    txn(req, ctx) {
      return writer.write(ctx, "txn", req, (leader) => {
        const { client, headers } = leaderKv(leader);
        return client.txn(req, { headers, signal: ctx.signal });
      });
    },
    compact(req, ctx) {
      return writer.write(ctx, "compact", req, (leader) => {
        const { client, headers } = leaderKv(leader);
        return client.compact(req, { headers, signal: ctx.signal });
      });
    },
    async range(req, ctx) {
      // After the barrier: this member's state then holds every revision the leader had.
      if (!req.serializable) await router.readBarrier(ctx);
      const sm = state.current;
      validateRange(req, sm);
      try {
        const res = sm.range(req);
        return { ...res, header: writer.header(sm.revision) };
      } catch (e) {
        throw asConnectError(e);
      }
    },
  };
}
