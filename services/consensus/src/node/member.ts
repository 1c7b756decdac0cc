import { mkdirSync } from "node:fs";
import type { ConnectRouter } from "@connectrpc/connect";
import type { NodeId, RaftConfig, Status } from "@quartet/raft";
import type { Logger, ServeOptions, Server } from "@quartet/server";
import { serve } from "@quartet/server";
import { DurableRaftStorage } from "../storage/raft-storage.ts";
import { PeerTransport, raftTransportRoutes } from "../transport/peer-transport.ts";
import { callerContext } from "./caller-address.ts";
import { Membership } from "./membership.ts";
import { RaftNode, type StateMachine } from "./raft-node.ts";
import { markRemoved, wasMarkedRemoved } from "./removed-mark.ts";

/** What a member replicates and serves: its state machine, and the RPCs in front of it. */
export interface ReplicatedService {
  stateMachine: StateMachine;
  /**
   * Registers the public services; they reach the cluster through `node`, and the members'
   * addresses through `membership`.
   */
  routes(router: ConnectRouter, node: RaftNode, membership: Membership): void;
  /** Procedures (`/package.Service/Method`) that need the cluster credential. */
  protects?(procedure: string): boolean;
  /** Called after every role or leader change (e.g. to start or stop leader-only work). */
  onRoleChange?(status: Status, node: RaftNode): void;
  /** Called after each Ready the node handled (observers of its status; keep it cheap). */
  onReady?(node: RaftNode): void;
  /** While this returns true the member drops all its Raft traffic, both ways (a fault control). */
  isolated?(): boolean;
  /** Called when the member stops. */
  close?(): void;
}

export interface MemberOptions {
  id: NodeId;
  clusterId: bigint;
  /**
   * This member's view of the members' base URLs, its own included: the founding members
   * (or, with `join`, the members it joins). Members added later are learnt from the log.
   */
  peers: ReadonlyMap<NodeId, string>;
  dataDir: string;
  /** A member added to a running cluster: it starts empty and waits for a snapshot. */
  join?: boolean;
  token: string;
  service: ReplicatedService;
  logger: Logger;
  /** serve() options (host, port, limits, TLS, CORS, telemetry...). */
  serve: Partial<ServeOptions>;
  tickMs?: number;
  snapshotEntries?: number;
  snapshotBytes?: number;
  keepEntries?: number;
  raft?: Omit<RaftConfig, "id" | "storage" | "applied">;
  /** Peer reconnect backoff (tests shorten it). */
  peerBackoff?: (attempt: number) => number;
}

export interface Member {
  readonly node: RaftNode;
  readonly server: Server;
  readonly storage: DurableRaftStorage;
  readonly transport: PeerTransport;
  readonly membership: Membership;
  /** Settles when this member learns it was removed from the cluster (it has stopped its Raft node). */
  readonly removed: Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts one consensus member: opens (and checks) its storage, bootstraps a founding member
 * of a new cluster, starts the Raft node with the peer transport, and serves the peer
 * protocol behind the cluster credential beside the service's own RPCs on one port.
 */
export async function startMember(options: MemberOptions): Promise<Member> {
  const { id, clusterId, service, logger } = options;
  mkdirSync(options.dataDir, { recursive: true });
  if (wasMarkedRemoved(options.dataDir)) throw removedError(id);
  const storage = DurableRaftStorage.open(options.dataDir, {
    onRepair: (message) => logger.warn(message),
  });
  if (storage.isEmpty() && !options.join) {
    await storage.bootstrap({ voters: [...options.peers.keys()].sort((a, b) => a - b) });
    logger.info({ voters: [...options.peers.keys()] }, "bootstrapped a new cluster");
  }
  let node: RaftNode | undefined;
  const membership = new Membership({ self: id, localPeers: options.peers }).wrap(
    service.stateMachine,
  );
  let retire: (why: string) => void = () => {};
  const removed = new Promise<void>((resolve) => {
    retire = (why) => {
      retire = () => {};
      logger.warn({ id }, `this member was removed from the cluster (${why}): it stops serving`);
      try {
        markRemoved(options.dataDir, why);
      } catch (e) {
        logger.error({ err: e }, "cannot mark the data directory as removed");
      }
      // After the Ready being handled: the node stops between two of them.
      setImmediate(() => {
        node?.stop("this member was removed from the cluster");
        transport.close();
        resolve();
      });
    };
  });
  const transport = new PeerTransport({
    clusterId,
    self: id,
    peers: withoutSelf(options.peers, id),
    token: options.token,
    unreachable: (peer) => node?.reportUnreachable(peer),
    removed: (peer) => retire(`member ${peer} refused its messages`),
    drop: () => service.isolated?.() ?? false,
    ...(options.peerBackoff ? { backoff: options.peerBackoff } : {}),
  });
  node = new RaftNode({
    id,
    storage,
    stateMachine: membership,
    send: (messages) => transport.send(messages),
    ...(options.tickMs ? { tickMs: options.tickMs } : {}),
    ...(options.snapshotEntries ? { snapshotEntries: options.snapshotEntries } : {}),
    ...(options.snapshotBytes ? { snapshotBytes: options.snapshotBytes } : {}),
    ...(options.keepEntries !== undefined ? { keepEntries: options.keepEntries } : {}),
    ...(options.raft ? { raft: options.raft } : {}),
    onFatal: (error) => {
      logger.fatal({ err: error }, "storage failed: this member stops serving");
      process.exitCode = 1;
    },
    onRoleChange: (status) => {
      logger.info(
        { term: status.term, state: status.state, leader: status.leaderId },
        "raft role changed",
      );
      service.onRoleChange?.(status, started);
    },
    onReady: () => service.onReady?.(started),
  });
  const started = node;
  // Replay this member's own committed log before serving: it may hold its removal.
  await started.waitApplied(storage.initialState().hardState.commit).catch(() => {});
  if (membership.wasRemoved(id)) {
    started.stop();
    transport.close();
    await storage.close();
    throw removedError(id);
  }
  // The transport follows the membership: new members' addresses come with the change that
  // adds them, removed members are dropped. A member still waiting to join knows only --peers.
  const followMembership = () => {
    if (membership.wasRemoved(id)) return retire("it applied its own removal");
    const book = membership.addressBook(started.status().config);
    transport.setPeers(book.size > 0 ? book : withoutSelf(options.peers, id));
  };
  membership.onChange(followMembership);
  followMembership();
  const peerService = "/quartet.raft.v1.RaftTransportService/";
  let server: Server;
  try {
    server = await serve({
      ...options.serve,
      name: "quartet-consensus",
      logger,
      contextValues: callerContext,
      auth: {
        token: options.token,
        protects: (p) => p.startsWith(peerService) || (service.protects?.(p) ?? false),
      },
      routes: (router) => {
        raftTransportRoutes(router, {
          clusterId,
          self: id,
          step: (m) => started.step(m),
          wasRemoved: (peer) => membership.wasRemoved(peer),
          drop: () => service.isolated?.() ?? false,
        });
        service.routes(router, started, membership);
      },
    });
  } catch (e) {
    started.stop();
    transport.close();
    await storage.close();
    throw e;
  }
  return {
    node: started,
    server,
    storage,
    transport,
    membership,
    removed,
    async close() {
      // Peers' streams into this member end only when they close them: close ours first, so
      // members stopping together do not wait out each other's drain deadline.
      started.stop();
      transport.close();
      service.close?.();
      await server.close();
      await storage.close();
    },
  };
}

function removedError(id: NodeId): Error {
  return new Error(
    `member ${id} was removed from the cluster and cannot serve again: start a new member on an empty --data-dir and add it with MemberAddLearner`,
  );
}

function withoutSelf(peers: ReadonlyMap<NodeId, string>, self: NodeId): Map<NodeId, string> {
  return new Map([...peers].filter(([id]) => id !== self));
}
