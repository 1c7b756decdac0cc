// connect-node destroys an HTTP/2 connection that receives GOAWAY with no stream open, with an
// error Node emits once the socket has closed. A call made meanwhile moves its session manager
// to a new connection, and nothing listens on the old one any more: without serve()'s guard
// (src/http2-client-guard.ts) that error crashes the process (connectrpc/connect-es#1768).
// Here the server closes the idle connection itself (--idle-timeout-ms), which is what a
// member that restarts, or a load balancer, does to its callers.
import type { ClientHttp2Session, ClientHttp2Stream } from "node:http2";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { pino } from "pino";
import { expect, it } from "vitest";
import { serve } from "../src/index.ts";
import { testRoutes } from "./fixtures.ts";

it("survives a GOAWAY on an idle client connection that a new call has just replaced", async () => {
  const logged: { msg: string; err?: { message: string } }[] = [];
  const logger = pino(
    { level: "debug" },
    { write: (line: string) => logged.push(JSON.parse(line)) },
  );
  const server = await serve({
    name: "t",
    routes: testRoutes,
    logger,
    limits: { idleTimeoutMs: 50 },
  });
  let callAgain!: () => void;
  const goaway = new Promise<void>((resolve) => (callAgain = resolve));
  let firstClosed: Promise<void> | undefined;
  // The session manager of the client's transport, with a look at its first connection.
  class Watched extends Http2SessionManager {
    override async request(...args: Parameters<Http2SessionManager["request"]>) {
      const stream: ClientHttp2Stream = await super.request(...args);
      const session = stream.session as ClientHttp2Session;
      if (firstClosed === undefined) {
        firstClosed = new Promise((resolve) => session.once("close", () => resolve()));
        // After connect-node's own GOAWAY handler, which destroyed the connection.
        session.once("goaway", () => callAgain());
      }
      return stream;
    }
  }
  const client = createClient(
    WorkerService,
    createGrpcTransport({ baseUrl: server.url, sessionManager: new Watched(server.url) }),
  );
  try {
    expect((await client.compute({ input: "first" })).digest).toBe("first");
    await goaway;
    expect((await client.compute({ input: "again" })).digest).toBe("again");
    await firstClosed;
    expect(logged).toContainEqual(
      expect.objectContaining({
        msg: "an HTTP/2 client connection failed after its owner let go of it",
        err: expect.objectContaining({
          message: "[canceled] received GOAWAY without any open streams",
        }),
      }),
    );
  } finally {
    await server.close();
  }
});
