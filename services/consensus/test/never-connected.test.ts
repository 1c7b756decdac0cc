import { type ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KVService } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { freePort } from "@quartet/server/testing";
import { describe, expect, it } from "vitest";
import { neverConnected } from "../src/never-connected.ts";

describe("neverConnected", () => {
  it("says a call to a closed port never left, as connect-node reports it", async () => {
    // A port nothing listens on: connect-node's error keeps the socket's ECONNREFUSED as cause.
    const kv = createClient(
      KVService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${await freePort()}` }),
    );
    const error = await kv.range({}).then(
      () => undefined,
      (e: ConnectError) => e,
    );
    expect(error).toBeDefined();
    expect(neverConnected(error)).toBe(true);
  });

  it("does not say so of a connection that broke after it was opened", () => {
    const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
    expect(neverConnected(new Error("stream closed", { cause: reset }))).toBe(false);
    expect(neverConnected(new Error("no code"))).toBe(false);
  });
});
