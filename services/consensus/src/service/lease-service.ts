import type { ServiceImpl } from "@connectrpc/connect";
import { LeaseService } from "@quartet/proto/quartet/consensus/v1/lease_pb";
import type { CommandWriter } from "./commands.ts";
import type { ForwardingClients } from "./forwarding.ts";
import type { LeaderRouter } from "./leader-router.ts";
import type { ReplicatedState } from "./replicated-state.ts";

export interface LeaseServiceDeps {
  writer: CommandWriter;
  router: LeaderRouter;
  state: ReplicatedState;
  forwarding: ForwardingClients;
  nowMs?: () => number;
}

/**
 * quartet.consensus.v1.LeaseService. Grants, revocations and renewals go through the log
 * with the leader's clock in them; expiry is decided by the leader (LeaseKeeper) and goes
 * through the log too, so every member deletes a lease's keys at the same revision.
 */
export function createLeaseService(deps: LeaseServiceDeps): ServiceImpl<typeof LeaseService> {
  const { writer, router, state, forwarding } = deps;
  const nowMs = deps.nowMs ?? Date.now;
  const leader = (id: number) => forwarding.to(LeaseService, id);
  const renew = (req: { id: bigint }, ctx: Parameters<typeof writer.write>[0]) =>
    writer.write<{ id: bigint; ttl: bigint }>(ctx, "leaseRenew", { id: req.id }, (to) => {
      const { client, headers } = leader(to);
      return client.leaseKeepAliveOnce({ id: req.id }, { headers, signal: ctx.signal });
    });
  return {
    leaseGrant(req, ctx) {
      return writer.write(ctx, "leaseGrant", req, (to) => {
        const { client, headers } = leader(to);
        return client.leaseGrant(req, { headers, signal: ctx.signal });
      });
    },
    leaseRevoke(req, ctx) {
      return writer.write(ctx, "leaseRevoke", req, (to) => {
        const { client, headers } = leader(to);
        return client.leaseRevoke(req, { headers, signal: ctx.signal });
      });
    },
    leaseKeepAliveOnce(req, ctx) {
      return renew(req, ctx);
    },
    async *leaseKeepAlive(requests, ctx) {
      for await (const req of requests) yield await renew(req, ctx);
    },
    async leaseTimeToLive(req, ctx) {
      await router.readBarrier(ctx);
      const sm = state.current;
      const lease = sm.lease(req.id);
      return {
        header: writer.header(sm.revision),
        id: req.id,
        ttl: sm.timeToLive(req.id, BigInt(nowMs())),
        grantedTtl: lease?.ttlSeconds ?? 0n,
        keys: req.keys && lease ? sm.leaseKeysOf(req.id) : [],
      };
    },
    async leaseLeases(_req, ctx) {
      await router.readBarrier(ctx);
      const sm = state.current;
      return { header: writer.header(sm.revision), leases: sm.leases().map((l) => ({ id: l.id })) };
    },
  };
}
