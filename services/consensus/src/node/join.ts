import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClusterService } from "@quartet/proto/quartet/consensus/v1/cluster_pb";
import type { NodeId } from "@quartet/raft";

/**
 * What a member started with --join learns from the members it joins: the cluster's id (the
 * founders derived it from their own ids, which a joiner's --peers does not repeat), after
 * checking that it was added (MemberAddLearner) under its --id. Asks each member in turn
 * until one answers or `timeoutMs` passes.
 */
export async function discoverCluster(options: {
  self: NodeId;
  peers: ReadonlyMap<NodeId, string>;
  token: string;
  timeoutMs?: number;
}): Promise<bigint> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  const others = [...options.peers].filter(([id]) => id !== options.self);
  if (others.length === 0) {
    throw new Error("--join needs the members to join in --peers, beside this one");
  }
  const headers = { authorization: `Bearer ${options.token}` };
  let last: unknown;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    for (const [, url] of others) {
      const client = createClient(ClusterService, createGrpcTransport({ baseUrl: url }));
      try {
        // Linearizable: a member that has not applied the addition yet still answers with it.
        const list = await client.memberList({ serializable: false }, { headers, timeoutMs: 2000 });
        if (!list.members.some((m) => m.id === BigInt(options.self))) {
          throw new Error(
            `member ${options.self} is not in the cluster ${url} belongs to: add it first with MemberAddLearner (its answer gives the id to start with)`,
          );
        }
        return list.header?.clusterId ?? 0n;
      } catch (e) {
        if (!(e instanceof ConnectError)) throw e;
        if (e.code === Code.Unauthenticated) {
          throw new Error(`${url} refused the cluster credential: ${e.rawMessage}`);
        }
        last = e;
      }
    }
    await new Promise((r) => setTimeout(r, Math.min(1000, 100 * 2 ** attempt)));
  }
  throw new Error(
    `no member in --peers answered within the time allowed (${(last as Error)?.message}): check the URLs`,
  );
}
