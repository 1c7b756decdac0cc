import type { ConfState } from "@quartet/raft";
import { describe, expect, it } from "vitest";
import { concatBytes } from "../src/bytes.ts";
import { encodeContext, Membership } from "../src/node/membership.ts";
import type { StateMachine } from "../src/node/raft-node.ts";
import { checkPeerUrls } from "../src/service/peer-urls.ts";

/** An application state machine that is just its bytes. */
function bytesApp(): StateMachine & { state: Uint8Array } {
  return {
    state: new Uint8Array(),
    apply() {},
    async snapshot() {
      return [this.state];
    },
    restore(_index, data) {
      this.state = data;
    },
  };
}

const conf = (voters: number[], learners: number[] = []): ConfState => ({
  voters,
  learners,
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
});

const founders = new Map([
  [1, "http://127.0.0.1:7001"],
  [2, "http://127.0.0.1:7002"],
  [3, "http://127.0.0.1:7003"],
]);

describe("the member table", () => {
  it("learns an added member's URLs from the change, keeps them in snapshots, and never reuses an id", async () => {
    const app = bytesApp();
    app.state = new Uint8Array([7, 8, 9]);
    const table = new Membership({ self: 1, localPeers: founders }).wrap(app);
    const context = encodeContext({ peerUrls: ["http://10.0.0.4:7001"] });
    table.applyConfChange(
      5,
      { changes: [{ type: "addLearner", nodeId: 4 }], context },
      conf([1, 2, 3], [4]),
    );
    table.applyConfChange(6, { changes: [{ type: "addNode", nodeId: 4 }] }, conf([1, 2, 3, 4]));
    table.applyConfChange(7, { changes: [{ type: "removeNode", nodeId: 3 }] }, conf([1, 2, 4]));
    expect(table.peerUrls(4)).toEqual(["http://10.0.0.4:7001"]);
    expect(table.addressBook(conf([1, 2, 4]))).toEqual(
      new Map([
        [2, "http://127.0.0.1:7002"],
        [4, "http://10.0.0.4:7001"],
      ]),
    );
    expect(table.wasRemoved(3)).toBe(true);

    // A member that starts later knows none of it but what the snapshot carries.
    const other = bytesApp();
    const later = new Membership({
      self: 2,
      localPeers: new Map([[2, "http://127.0.0.1:7002"]]),
    }).wrap(other);
    later.restore(7, concatBytes(await table.snapshot()));
    expect(other.state).toEqual(new Uint8Array([7, 8, 9]));
    expect(later.get(4)).toBe("http://10.0.0.4:7001");
    expect(later.wasRemoved(3)).toBe(true);
    // Member 3 is gone, 4 is the highest in use: the next is 5, never 3 again.
    expect(later.nextId(conf([1, 2, 4]))).toBe(5);
  });

  it("reads a snapshot written before the table existed as the application's alone", () => {
    const app = bytesApp();
    const table = new Membership({ self: 1, localPeers: founders }).wrap(app);
    table.restore(3, new Uint8Array([1, 2, 3]));
    expect(app.state).toEqual(new Uint8Array([1, 2, 3]));
    expect(table.wasRemoved(1)).toBe(false);
  });
});

describe("peer URLs of a new member", () => {
  it("are normalised to scheme://host:port", () => {
    expect(checkPeerUrls(["http://10.0.0.4:7001/", "http://10.0.0.4:7001"])).toEqual([
      "http://10.0.0.4:7001",
    ]);
  });
  it.each([
    [[], /peer_urls is empty/],
    [["10.0.0.4:7001"], /is not a URL: give one like http:\/\/10.0.0.4:7001/],
    [["ftp://10.0.0.4"], /scheme ftp/],
    [["http://10.0.0.4:7001/raft"], /has a path, query or credentials/],
    [["http://"], /is not a URL/],
  ])("refuses %j with InvalidArgument saying what to fix", (urls, message) => {
    expect(() => checkPeerUrls(urls)).toThrow(
      expect.objectContaining({ code: 3, rawMessage: expect.stringMatching(message) }),
    );
  });
});
