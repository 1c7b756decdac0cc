import http2 from "node:http2";
import { setImmediate as yieldToIo } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { afterEach, describe, expect, it } from "vitest";
import {
  attacker,
  grpcHeaders,
  h2Connect,
  h2Session,
  normalCall,
  readUntilClosed,
  responseOf,
  rssMiB,
  startServer,
  stopServers,
  tcp,
} from "./processes.ts";

afterEach(stopServers);

// Each attack runs against a real server process with low limits set by flag, and goes well
// past them. What a user depends on: the process survives with bounded memory, the attacker
// gets clear refusals, and a normal call made while the attack is on succeeds.
const rssBoundMiB = 300;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const errorOf = async (p: Promise<unknown>) =>
  ConnectError.from(
    await p.then(
      () => new Error("expected the call to fail"),
      (e: unknown) => e,
    ),
  );

describe("requests that never finish arriving", () => {
  it("are dropped oldest first past --max-unfinished-requests while a normal call succeeds", async () => {
    const server = await startServer(["--max-unfinished-requests", "100"]);
    const sessions = await Promise.all(range(10).map(() => h2Session(server.url, attacker)));
    // 500 calls that send their headers and never their body: 400 past the limit.
    const dropped: http2.IncomingHttpHeaders[] = [];
    let enough!: () => void;
    const allDropped = new Promise<void>((resolve) => (enough = resolve));
    for (const session of sessions) {
      for (const _ of range(50)) {
        responseOf(session.request(grpcHeaders(), { endStream: false })).then(
          (headers) => {
            dropped.push(headers);
            if (dropped.length === 400) enough();
          },
          () => {},
        );
      }
    }
    await allDropped;
    for (const headers of dropped) {
      expect(headers["grpc-status"]).toBe(String(Code.ResourceExhausted));
      expect(decodeURIComponent(String(headers["grpc-message"]))).toMatch(
        /--max-unfinished-requests/,
      );
    }
    expect(await normalCall(server.url, "during the flood")).toBe("during the flood");
    expect(rssMiB(server.pid)).toBeLessThan(rssBoundMiB);
    expect(server.child.exitCode).toBeNull();
    for (const session of sessions) session.destroy();
  }, 30_000);

  it("get DeadlineExceeded when the call's deadline passes, counted from the first byte", async () => {
    const server = await startServer();
    const session = await h2Session(server.url);
    const answer = await responseOf(
      session.request(grpcHeaders({ "grpc-timeout": "200m" }), { endStream: false }),
    );
    expect(answer["grpc-status"]).toBe(String(Code.DeadlineExceeded));
    expect(decodeURIComponent(String(answer["grpc-message"]))).toMatch(
      /deadline of 200 ms passed while its request was still arriving/,
    );
    // A call that arrives whole is served, with its deadline.
    const client = createClient(WorkerService, createGrpcTransport({ baseUrl: server.url }));
    expect((await client.compute({ input: "whole" }, { timeoutMs: 10_000 })).digest).toBe("whole");
    session.close();
  });

  it("get DeadlineExceeded past --request-arrival-timeout-ms on HTTP/1.1, and the connection closes", async () => {
    const server = await startServer(["--request-arrival-timeout-ms", "300"]);
    const socket = await tcp(server.port);
    const reply = readUntilClosed(socket);
    socket.write(
      "POST /quartet.worker.v1.WorkerService/Compute HTTP/1.1\r\nhost: test\r\n" +
        "content-type: application/json\r\ncontent-length: 100\r\n\r\n{",
    );
    const text = await reply;
    expect(text).toMatch(/^HTTP\/1\.1 504 /);
    expect(text).toMatch(/"code":"deadline_exceeded"/);
    expect(text).toMatch(/within 300 ms \(--request-arrival-timeout-ms/);
  });

  it("hold their bodies against --max-buffered-bytes-per-connection", async () => {
    const server = await startServer(["--max-buffered-bytes-per-connection", "100000"]);
    const session = await h2Session(server.url, attacker);
    // Two calls each announcing a 1 MB message and sending 60 kB of it.
    const prefix = Buffer.from([0, 0, 0x10, 0, 0]);
    const streams = range(2).map(() => session.request(grpcHeaders(), { endStream: false }));
    const answers = streams.map((stream) => responseOf(stream));
    for (const stream of streams) stream.write(Buffer.concat([prefix, Buffer.alloc(60_000)]));
    const first = await Promise.race(answers);
    expect(first["grpc-status"]).toBe(String(Code.ResourceExhausted));
    expect(decodeURIComponent(String(first["grpc-message"]))).toMatch(
      /--max-buffered-bytes-per-connection/,
    );
    expect(await normalCall(server.url, "meanwhile")).toBe("meanwhile");
    session.destroy();
  });

  it("hold their bodies against --max-buffered-bytes over all connections", async () => {
    const server = await startServer(["--max-buffered-bytes", "100000"]);
    const sessions = await Promise.all(range(2).map(() => h2Session(server.url, attacker)));
    const prefix = Buffer.from([0, 0, 0x10, 0, 0]);
    const streams = sessions.map((session) => session.request(grpcHeaders(), { endStream: false }));
    const answers = streams.map((stream) => responseOf(stream));
    for (const stream of streams) stream.write(Buffer.concat([prefix, Buffer.alloc(60_000)]));
    const first = await Promise.race(answers);
    expect(first["grpc-status"]).toBe(String(Code.ResourceExhausted));
    expect(decodeURIComponent(String(first["grpc-message"]))).toMatch(/--max-buffered-bytes\)/);
    expect(await normalCall(server.url, "meanwhile")).toBe("meanwhile");
    for (const session of sessions) session.destroy();
  });
});

/** Resolves when the server has answered a PING, and so read what was sent before it, or closed. */
function pingAnswered(session: http2.ClientHttp2Session): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      session.off("close", done);
      resolve();
    };
    session.once("close", done);
    session.ping(done);
  });
}

describe("rapid reset", () => {
  it("spread over many connections is cut by the process-wide --max-resets budget", async () => {
    const server = await startServer(["--max-resets", "200"]);
    const sessions = await Promise.all(range(20).map(() => h2Session(server.url, attacker)));
    const goaways = sessions.map(
      (session) =>
        new Promise<{ code: number; message: string }>((resolve) => {
          session.once("goaway", (code: number, _last: number, data?: Buffer) =>
            resolve({ code, message: String(data ?? "") }),
          );
          // A connection that ends without one fails the test here instead of hanging it.
          session.once("close", () => resolve({ code: -1, message: "closed without a GOAWAY" }));
        }),
    );
    // Round after round, each connection opens a call and resets it at once, and waits for
    // the server to have read the round (a PING's answer follows it) before the next: a
    // connection is cut when it resets after the budget is spent, so the rounds go on until
    // every connection has been cut. At most 500 per connection stays far below any one
    // connection's budget (1,000); 200 in all spends the server's.
    const open = () => sessions.filter((session) => !session.closed && !session.destroyed);
    let during: Promise<string> | undefined;
    for (let round = 0; round < 500 && open().length > 0; round++) {
      const read = open().map((session) => {
        const stream = session.request(grpcHeaders(), { endStream: false });
        stream.on("error", () => {});
        stream.close(http2.constants.NGHTTP2_CANCEL);
        return pingAnswered(session);
      });
      await Promise.all(read);
      // A normal call while the budget is spent and the attack goes on.
      if (!during && open().length < sessions.length) {
        during = normalCall(server.url, "during the resets");
      }
    }
    expect(open()).toHaveLength(0);
    for (const goaway of await Promise.all(goaways)) {
      expect(goaway.code).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      expect(goaway.message).toMatch(/--max-resets\b/);
    }
    expect(await during).toBe("during the resets");
    expect(await normalCall(server.url, "after the resets")).toBe("after the resets");
    expect(rssMiB(server.pid)).toBeLessThan(rssBoundMiB);
    expect(server.child.exitCode).toBeNull();
    for (const session of sessions) session.destroy();
  }, 30_000);
});

describe("rapid reset on one connection", () => {
  it("is cut past --max-resets-per-connection while other connections are served", async () => {
    const server = await startServer(["--max-resets-per-connection", "50"]);
    const session = await h2Session(server.url, attacker);
    const goaway = new Promise<{ code: number; message: string }>((resolve) =>
      session.once("goaway", (code: number, _last: number, data?: Buffer) =>
        resolve({ code, message: String(data ?? "") }),
      ),
    );
    for (const _ of range(200)) {
      if (session.closed || session.destroyed) break;
      const stream = session.request(grpcHeaders(), { endStream: false });
      stream.on("error", () => {});
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await yieldToIo();
    }
    const { code, message } = await goaway;
    expect(code).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(message).toMatch(/more than 50 streams in 10 s \(--max-resets-per-connection\)/);
    expect(await normalCall(server.url, "another connection")).toBe("another connection");
  });
});

describe("connections", () => {
  it("an idle flood from one peer is refused past --max-connections-per-peer and closed when idle", async () => {
    const server = await startServer([
      "--max-connections-per-peer",
      "100",
      "--idle-timeout-ms",
      "1000",
    ]);
    // 300 connections that say nothing at all.
    const sockets = await Promise.all(range(300).map(() => tcp(server.port, attacker)));
    const closed = sockets.map((socket) => readUntilClosed(socket));
    expect(await normalCall(server.url, "during the flood")).toBe("during the flood");
    // Every one is closed by the server: the refused ones at once, the others once idle.
    await Promise.all(closed);
    expect(await normalCall(server.url, "after the flood")).toBe("after the flood");
    expect(rssMiB(server.pid)).toBeLessThan(rssBoundMiB);
    expect(server.child.exitCode).toBeNull();
  }, 30_000);

  it("past the per-peer and total limits are refused with a message on HTTP/1.1 and HTTP/2", async () => {
    const server = await startServer(["--max-connections-per-peer", "3", "--max-connections", "6"]);
    const held = await Promise.all(range(3).map(() => tcp(server.port, attacker)));
    // Connections are accepted in order, so these come after the three held ones.
    const refusedH1 = await tcp(server.port, attacker);
    const h1Reply = readUntilClosed(refusedH1);
    refusedH1.write("GET /metrics HTTP/1.1\r\nhost: test\r\n\r\n");
    const reply = await h1Reply;
    expect(reply).toMatch(/^HTTP\/1\.1 503 /);
    expect(reply).toMatch(
      /limit of 3 connections from 127\.0\.0\.2 \(--max-connections-per-peer\)/,
    );

    const refusedH2 = h2Connect(server.url, attacker);
    const [code, , data] = await new Promise<[number, number, Buffer | undefined]>((resolve) =>
      refusedH2.once("goaway", (...args) => resolve(args as [number, number, Buffer | undefined])),
    );
    expect(code).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(String(data)).toMatch(/--max-connections-per-peer/);
    refusedH2.destroy();

    // Everyone else is still served, up to the total.
    expect(await normalCall(server.url, "another peer")).toBe("another peer");
    const more = await Promise.all(range(2).map(() => tcp(server.port, "127.0.0.3")));
    const overTotal = await tcp(server.port, "127.0.0.4");
    const totalReply = readUntilClosed(overTotal);
    overTotal.write("GET /metrics HTTP/1.1\r\nhost: test\r\n\r\n");
    expect(await totalReply).toMatch(/limit of 6 connections \(--max-connections\)/);
    for (const socket of [...held, ...more]) socket.destroy();
  });

  it("idle ones are closed: a silent TCP connection, an HTTP/2 session, an HTTP/1.1 keep-alive", async () => {
    const server = await startServer(["--idle-timeout-ms", "300"]);
    const silent = readUntilClosed(await tcp(server.port));
    const session = await h2Session(server.url);
    const sessionClosed = new Promise((resolve) => session.once("close", resolve));
    const keptAlive = await tcp(server.port);
    const keptAliveReply = readUntilClosed(keptAlive);
    keptAlive.write("GET /no-such-path HTTP/1.1\r\nhost: test\r\n\r\n");
    expect(await silent).toBe("");
    await sessionClosed;
    expect(await keptAliveReply).toMatch(/^HTTP\/1\.1 404 /);
  });

  it("an open stream keeps its connection however quiet", async () => {
    const server = await startServer(["--idle-timeout-ms", "200"]);
    const client = createClient(WorkerService, createGrpcTransport({ baseUrl: server.url }));
    const steps: number[] = [];
    // Quiet for longer than the idle timeout between steps.
    for await (const r of client.watch({ steps: 3, stepDelayMs: 400 })) steps.push(r.step);
    expect(steps).toEqual([1, 2, 3]);
  });
});

describe("requests in progress over the whole server", () => {
  it("are refused with Unavailable past --max-streams, and the calls in progress go on", async () => {
    const server = await startServer(["--max-streams", "4"]);
    const client = createClient(WorkerService, createGrpcTransport({ baseUrl: server.url }));
    const cancel = new AbortController();
    const held = range(4).map((i) =>
      client.compute({ input: `held-${i}`, fault: { delayMs: 60_000 } }, { signal: cancel.signal }),
    );
    for (const i of range(4)) {
      await server.waitForLog(
        (line) => line.msg === "compute started" && line.input === `held-${i}`,
      );
    }
    const refused = await errorOf(client.compute({ input: "fifth" }));
    expect(refused.rawMessage).toMatch(/limit of 4 requests in progress \(--max-streams\)/);
    expect(refused.code).toBe(Code.Unavailable);
    const ended = held.map((call) => errorOf(call));
    cancel.abort();
    for (const error of await Promise.all(ended)) expect(error.code).toBe(Code.Canceled);
    expect(await normalCall(server.url, "after")).toBe("after");
  });
});

describe("header blocks", () => {
  it("over --max-header-bytes are refused on HTTP/2 as on HTTP/1.1", async () => {
    const server = await startServer(["--max-header-bytes", "16384"]);
    const session = await h2Session(server.url);
    const answer = await responseOf(
      session.request(grpcHeaders({ "x-pad": "a".repeat(40_000) }), { endStream: true }),
    );
    expect(answer["grpc-status"]).toBe(String(Code.ResourceExhausted));
    expect(decodeURIComponent(String(answer["grpc-message"]))).toMatch(
      /over the limit of 16384 \(--max-header-bytes\)/,
    );
    session.close();

    const socket = await tcp(server.port);
    const reply = readUntilClosed(socket);
    socket.write(`GET /metrics HTTP/1.1\r\nhost: test\r\nx-pad: ${"a".repeat(40_000)}\r\n\r\n`);
    const text = await reply;
    expect(text).toMatch(/^HTTP\/1\.1 431 /);
    expect(text).toMatch(/limit of 16384 bytes \(--max-header-bytes\)/);

    // Headers under the limit are fine on both.
    const client = createClient(WorkerService, createGrpcTransport({ baseUrl: server.url }));
    const padded = await client.compute(
      { input: "padded" },
      { headers: { "x-pad": "a".repeat(8000) } },
    );
    expect(padded.digest).toBe("padded");
  });
});
