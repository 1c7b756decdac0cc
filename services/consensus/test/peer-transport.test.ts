import type { Message } from "@quartet/raft";
import { type Server, serve } from "@quartet/server";
import { afterEach, describe, expect, it } from "vitest";
import { PeerTransport, raftTransportRoutes } from "../src/transport/peer-transport.ts";

const token = "test-cluster-token-0123456789";
const servers: Server[] = [];
const transports: PeerTransport[] = [];
afterEach(async () => {
  for (const t of transports.splice(0)) t.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A real server for member `self` whose received messages land in `inbox`. */
async function member(self: number, clusterId = 7n) {
  const inbox: Message[] = [];
  let arrived: (() => void) | undefined;
  const server = await serve({
    name: `member-${self}`,
    drainTimeoutMs: 100,
    routes: (router) =>
      raftTransportRoutes(router, {
        clusterId,
        self,
        step: (m) => {
          inbox.push(m);
          arrived?.();
        },
      }),
    auth: { token, protects: (p) => p.startsWith("/quartet.raft.v1.") },
  });
  servers.push(server);
  const received = async (n: number) => {
    while (inbox.length < n) await new Promise<void>((r) => (arrived = r));
    return inbox;
  };
  return { server, inbox, received };
}

const everyKind: Message[] = [
  {
    type: "app",
    from: 1,
    to: 2,
    term: 3,
    index: 10,
    logTerm: 2,
    commit: 9,
    entries: [
      { term: 3, index: 11, type: "normal", data: new Uint8Array([1, 2, 3]) },
      { term: 3, index: 12, type: "confChange", data: new Uint8Array([4]) },
    ],
  },
  { type: "appResp", from: 1, to: 2, term: 3, index: 12, reject: true, rejectHint: 8, logTerm: 2 },
  { type: "preVote", from: 1, to: 2, term: 4, index: 12, logTerm: 3, transfer: false },
  { type: "vote", from: 1, to: 2, term: 4, index: 12, logTerm: 3, transfer: true },
  { type: "preVoteResp", from: 1, to: 2, term: 4, reject: false },
  { type: "voteResp", from: 1, to: 2, term: 4, reject: true },
  { type: "heartbeat", from: 1, to: 2, term: 4, commit: 12, context: "1/7", sentAt: 99 },
  { type: "heartbeatResp", from: 1, to: 2, term: 4, context: "1/7", sentAt: 99 },
  {
    type: "snap",
    from: 1,
    to: 2,
    term: 4,
    metadata: {
      index: 50,
      term: 4,
      confState: {
        voters: [1, 2, 3],
        learners: [4],
        votersOutgoing: [],
        learnersNext: [],
        autoLeave: false,
      },
    },
    offset: 1024,
    totalBytes: 4096,
    data: new Uint8Array(1024).fill(7),
  },
  { type: "snapResp", from: 1, to: 2, term: 4, index: 50, offset: 2048 },
  { type: "timeoutNow", from: 1, to: 2, term: 4 },
  { type: "readIndex", from: 1, to: 2, term: 4, context: "r1" },
  { type: "readIndexResp", from: 1, to: 2, term: 4, index: 12, context: "r1" },
];

describe("the peer transport", () => {
  it("delivers every kind of Raft message to the right member, unchanged, in order", async () => {
    const two = await member(2);
    const transport = new PeerTransport({
      clusterId: 7n,
      self: 1,
      peers: new Map([[2, two.server.url]]),
      token,
      unreachable: () => {},
    });
    transports.push(transport);
    transport.send(everyKind);
    expect(await two.received(everyKind.length)).toEqual(everyKind);
  });

  it("gets nothing through without the cluster credential, or to another cluster, and says the peer is unreachable", async () => {
    const two = await member(2);
    const other = await member(3, 8n);
    const unreachable: number[] = [];
    let told: (() => void) | undefined;
    const transport = new PeerTransport({
      clusterId: 7n,
      self: 1,
      peers: new Map([
        [2, two.server.url],
        [3, other.server.url],
      ]),
      token: "not-the-cluster-token-00000000",
      unreachable: (id) => {
        unreachable.push(id);
        told?.();
      },
      backoff: () => 5,
    });
    transports.push(transport);
    transport.send([everyKind[6]!, { ...everyKind[6]!, to: 3 }]);
    while (!(unreachable.includes(2) && unreachable.includes(3)))
      await new Promise<void>((r) => (told = r));
    expect(two.inbox).toEqual([]);
    expect(other.inbox).toEqual([]);

    // The right token, the wrong cluster: refused all the same.
    const wrongCluster = new PeerTransport({
      clusterId: 7n,
      self: 1,
      peers: new Map([[3, other.server.url]]),
      token,
      unreachable: (id) => {
        unreachable.push(id);
        told?.();
      },
      backoff: () => 5,
    });
    transports.push(wrongCluster);
    const before = unreachable.length;
    wrongCluster.send([{ ...everyKind[6]!, to: 3 }]);
    while (unreachable.length === before) await new Promise<void>((r) => (told = r));
    expect(other.inbox).toEqual([]);
  });
});
