import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  RaftTransportService,
  type SendRequest,
  SendRequestSchema,
} from "@quartet/proto/quartet/raft/v1/raft_pb";
import type { Message, NodeId } from "@quartet/raft";
import { PeerSender } from "./peer-sender.ts";
import { decodeMessage, encodeMessage } from "./raft-codec.ts";

export interface PeerTransportOptions {
  clusterId: bigint;
  self: NodeId;
  /** Member id -> base URL of its server (e.g. http://127.0.0.1:7002). */
  peers: ReadonlyMap<NodeId, string>;
  /** The cluster credential every peer call carries. */
  token: string;
  /** The core is told when a peer's messages were dropped or its stream broke. */
  unreachable: (peer: NodeId) => void;
  /** While true, every outbound message is dropped (a fault control cuts the member off). */
  drop?: () => boolean;
  /** A peer refused this member's messages because the cluster removed it (it must stop). */
  removed?: (peer: NodeId) => void;
  /** Passed to each peer's sender (tests shorten the reconnect backoff). */
  backoff?: (attempt: number) => number;
}

/**
 * The outbound side of the peer transport: one PeerSender (bounded queue, one long-lived
 * gRPC client stream over h2c, binary Protobuf) per peer, so a slow or dead peer never
 * holds up the others. Peer traffic is not traced: it is the cluster's own chatter, not a
 * user's request.
 */
export class PeerTransport {
  private readonly options: PeerTransportOptions;
  private readonly senders = new Map<NodeId, { url: string; sender: PeerSender }>();

  constructor(options: PeerTransportOptions) {
    this.options = options;
    this.setPeers(options.peers);
  }

  /** Replaces the address book (after a membership change). */
  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    for (const [id, { url, sender }] of this.senders) {
      if (peers.get(id) === url) continue;
      sender.close();
      this.senders.delete(id);
    }
    for (const [id, url] of peers) {
      if (id === this.options.self || this.senders.has(id)) continue;
      this.senders.set(id, { url, sender: this.openSender(id, url) });
    }
  }

  send(messages: readonly Message[]): void {
    if (this.options.drop?.()) return;
    for (const m of messages) {
      const peer = this.senders.get(m.to);
      if (peer) peer.sender.send(m);
      else this.options.unreachable(m.to);
    }
  }

  close(): void {
    for (const { sender } of this.senders.values()) sender.close();
    this.senders.clear();
  }

  private openSender(peer: NodeId, url: string): PeerSender {
    const { clusterId, self, token } = this.options;
    const client = createClient(RaftTransportService, createGrpcTransport({ baseUrl: url }));
    const headers = { authorization: `Bearer ${token}` };
    async function* requests(batches: AsyncIterable<Message[]>): AsyncGenerator<SendRequest> {
      for await (const batch of batches) {
        yield create(SendRequestSchema, {
          clusterId,
          from: BigInt(self),
          to: BigInt(peer),
          messages: batch.map(encodeMessage),
        });
      }
    }
    return new PeerSender({
      peer,
      open: async (batches, signal) => {
        try {
          await client.send(requests(batches), { signal, headers });
        } catch (e) {
          if (ConnectError.from(e).code === removedCode) this.options.removed?.(peer);
          throw e;
        }
      },
      unreachable: this.options.unreachable,
      ...(this.options.backoff ? { backoff: this.options.backoff } : {}),
    });
  }
}

/** The answer to a member the cluster removed (as etcd's HTTP 410 Gone to a removed member). */
const removedCode = Code.PermissionDenied;

/**
 * The inbound side: `RaftTransportService` handing each message to `step`. It must be served
 * behind the cluster credential (serve()'s auth protects every method of the service).
 */
export function raftTransportRoutes(
  router: ConnectRouter,
  options: {
    clusterId: bigint;
    self: NodeId;
    step: (m: Message) => void;
    /** While true, received messages are dropped (a fault control cuts the member off). */
    drop?: () => boolean;
    /** Whether the cluster removed `peer`: its messages are refused, which tells it to stop. */
    wasRemoved?: (peer: NodeId) => boolean;
  },
): void {
  router.service(RaftTransportService, {
    async send(requests) {
      let received = 0n;
      for await (const batch of requests) {
        if (batch.clusterId !== options.clusterId) {
          throw new ConnectError(
            `this member belongs to cluster ${options.clusterId}, not ${batch.clusterId}: check --cluster-id and --peers`,
            Code.FailedPrecondition,
          );
        }
        if (batch.to !== BigInt(options.self)) {
          throw new ConnectError(
            `this member is ${options.self}, not ${batch.to}: the sender's --peers maps the id to the wrong address`,
            Code.FailedPrecondition,
          );
        }
        const from = Number(batch.from);
        if (options.wasRemoved?.(from)) {
          // It missed its own removal (it was cut off, or the leader stopped sending to it):
          // this answer is how it learns, as etcd's peers answer a removed member.
          throw new ConnectError(
            `member ${from} was removed from the cluster: it must stop serving`,
            removedCode,
          );
        }
        for (const p of batch.messages) {
          const m = decodeMessage(p, from, options.self);
          if (m && !options.drop?.()) options.step(m);
          received++;
        }
      }
      return { received };
    },
  });
}
