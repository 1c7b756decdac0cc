import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  type Command,
  type CommandResult,
  CommandSchema,
} from "@quartet/proto/quartet/consensus/v1/internal_pb";
import {
  KVService,
  type ResponseHeader,
  ResponseHeaderSchema,
} from "@quartet/proto/quartet/consensus/v1/kv_pb";
import type { RaftNode } from "../node/raft-node.ts";
import { StateError } from "../state/errors.ts";
import type { ForwardingClients } from "./forwarding.ts";
import type { LeaderRouter } from "./leader-router.ts";
import type { ReplicatedState } from "./replicated-state.ts";

export interface KvServiceDeps {
  clusterId: bigint;
  node: RaftNode;
  router: LeaderRouter;
  state: ReplicatedState;
  forwarding: ForwardingClients;
  /** The leader's clock, put in every command (leases are timed by it). */
  nowMs?: () => number;
}

type Op = NonNullable<Command["op"]["case"]>;

/**
 * quartet.consensus.v1.KVService: writes become Commands in the Raft log (proposed on the
 * leader, forwarded to it from a follower); reads are served from this member's state after
 * a ReadIndex barrier, or at once when the caller asks for a serializable read.
 */
export function createKvService(deps: KvServiceDeps): ServiceImpl<typeof KVService> {
  const { node, router, state, forwarding } = deps;
  const nowMs = deps.nowMs ?? Date.now;

  const header = (revision: bigint): ResponseHeader =>
    create(ResponseHeaderSchema, {
      clusterId: deps.clusterId,
      memberId: BigInt(node.id),
      revision,
      raftTerm: BigInt(node.status().term),
    });

  /**
   * Proposes `value` as the `op` command and answers with the state machine's result and a
   * header; a follower forwards the call to the leader instead.
   */
  function write<C extends Op, R>(
    ctx: HandlerContext,
    op: C,
    value: unknown,
    forward: (leader: number) => Promise<R>,
  ): Promise<R> {
    const command = create(CommandSchema, {
      nowMs: BigInt(nowMs()),
      op: { case: op, value } as Command["op"],
    });
    return router.write(
      ctx,
      toBinary(CommandSchema, command),
      (r) => {
        const { value: res, revision } = resultOf(r as CommandResult, op);
        return { ...(res as object), header: header(revision) } as R;
      },
      forward,
    );
  }

  const leaderKv = (leader: number) => forwarding.to(KVService, leader);

  return {
    put(req, ctx) {
      return write(ctx, "put", req, (leader) => {
        const { client, headers } = leaderKv(leader);
        return client.put(req, { headers, signal: ctx.signal });
      });
    },
    deleteRange(req, ctx) {
      return write(ctx, "deleteRange", req, (leader) => {
        const { client, headers } = leaderKv(leader);
        return client.deleteRange(req, { headers, signal: ctx.signal });
      });
    },
    txn(req, ctx) {
      return write(ctx, "txn", req, (leader) => {
        const { client, headers } = leaderKv(leader);
        return client.txn(req, { headers, signal: ctx.signal });
      });
    },
    compact(req, ctx) {
      return write(ctx, "compact", req, (leader) => {
        const { client, headers } = leaderKv(leader);
        return client.compact(req, { headers, signal: ctx.signal });
      });
    },
    async range(req, ctx) {
      if (!req.serializable) await router.readBarrier(ctx);
      const sm = state.current;
      try {
        const res = sm.range(req);
        return { ...res, header: header(sm.revision) };
      } catch (e) {
        throw asConnectError(e);
      }
    },
  };
}

/** The value of the result's `op` case, or the refusal the state machine recorded. */
function resultOf<C extends Op>(r: CommandResult, op: C) {
  const result = r.result;
  if (result.case === "error") {
    throw new ConnectError(result.value.message, result.value.code as Code);
  }
  if (result.case !== op) {
    throw new ConnectError(`the state machine answered ${result.case} to ${op}`, Code.Internal);
  }
  return {
    value: result.value as Extract<CommandResult["result"], { case: C }>["value"],
    revision: r.revision,
  };
}

function asConnectError(e: unknown): unknown {
  return e instanceof StateError ? new ConnectError(e.message, e.code) : e;
}
