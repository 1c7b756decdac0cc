import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ServerReflection } from "@quartet/proto/grpc/reflection/v1alpha/reflection_pb";
import { Health } from "@quartet/proto/health/v1/health_pb";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { afterEach, describe, expect, it } from "vitest";
import type { Server } from "../src/index.ts";
import { serveForTest } from "./fixtures.ts";

const servers: Server[] = [];
const start = async (...args: Parameters<typeof serveForTest>) => {
  const server = await serveForTest(...args);
  servers.push(server);
  return server;
};
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const errorOf = async (p: Promise<unknown>) =>
  ConnectError.from(
    await p.then(
      () => undefined,
      (e) => e,
    ),
  );

describe("TLS", () => {
  it("negotiates h2 and http/1.1 by ALPN on one port", async () => {
    const dir = mkdtempSync(join(tmpdir(), "quartet-tls-"));
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ],
      { stdio: "ignore" },
    );
    const cert = readFileSync(join(dir, "cert.pem"));
    const server = await start({ tls: { cert, key: readFileSync(join(dir, "key.pem")) } });
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    for (const httpVersion of ["1.1", "2"] as const) {
      const client = createClient(
        WorkerService,
        createConnectTransport({ baseUrl: server.url, httpVersion, nodeOptions: { ca: cert } }),
      );
      expect((await client.compute({ input: `tls-${httpVersion}` })).digest).toBe(
        `tls-${httpVersion}`,
      );
    }
    const session = http2.connect(server.url, { ca: cert });
    await new Promise((resolve) => session.once("connect", resolve));
    expect(session.alpnProtocol).toBe("h2");
    session.close();
  });
});

describe("auth", () => {
  const protects = (procedure: string) => procedure === "/quartet.worker.v1.WorkerService/Watch";
  const watchAll = async (url: string, token?: string) => {
    const client = createClient(
      WorkerService,
      createConnectTransport({ baseUrl: url, httpVersion: "1.1" }),
    );
    const steps: number[] = [];
    const headers = token ? { authorization: `Bearer ${token}` } : undefined;
    for await (const r of client.watch({ steps: 2 }, { headers })) steps.push(r.step);
    return steps;
  };

  it("lets a protected method through only with the cluster credential", async () => {
    const server = await start({ auth: { token: "s3cret-s3cret-s3cret", protects } });
    expect(await watchAll(server.url, "s3cret-s3cret-s3cret")).toEqual([1, 2]);
    const missing = await errorOf(watchAll(server.url));
    expect(missing.code).toBe(Code.Unauthenticated);
    expect(missing.rawMessage).toMatch(/needs the cluster credential/);
    const wrong = await errorOf(watchAll(server.url, "s3cret-s3cret-s3creX"));
    expect(wrong.code).toBe(Code.Unauthenticated);
    // Public methods need nothing.
    const client = createClient(
      WorkerService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    expect((await client.compute({ input: "public" })).digest).toBe("public");
  });

  it("refuses protected methods to everyone when no credential is configured", async () => {
    const server = await start({ auth: { token: undefined, protects } });
    const err = await errorOf(watchAll(server.url, "anything-at-all-here"));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toMatch(/no cluster credential configured/);
  });
});

describe("limits", () => {
  it("refuses calls beyond the concurrent-call limit with ResourceExhausted", async () => {
    // Compute holds its slot until the test opens the gate, and says when it has arrived.
    const arrivals: (() => void)[] = [];
    const arrived = [0, 1].map((i) => new Promise<void>((resolve) => (arrivals[i] = resolve)));
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let n = 0;
    const server = await start({
      limits: { maxConcurrentCalls: 2 },
      routes: (router) =>
        router.service(WorkerService, {
          async compute(req) {
            if (req.input === "hold") {
              arrivals[n++]?.();
              await gate;
            }
            return { digest: req.input };
          },
        }),
    });
    const client = createClient(WorkerService, createGrpcTransport({ baseUrl: server.url }));
    const held = [client.compute({ input: "hold" }), client.compute({ input: "hold" })];
    await Promise.all(arrived);
    const err = await errorOf(client.compute({ input: "third" }));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(/limit of 2 concurrent calls/);
    // A refused call held no place, so it gives none back: the limit still holds.
    expect((await errorOf(client.compute({ input: "fourth" }))).code).toBe(Code.ResourceExhausted);
    open();
    expect((await Promise.all(held)).map((r) => r.digest)).toEqual(["hold", "hold"]);
    expect((await client.compute({ input: "after" })).digest).toBe("after");
  });

  it("holds a streaming call's place until its stream ends or is cancelled", async () => {
    let ended!: () => void;
    const handlerEnded = new Promise<void>((resolve) => (ended = resolve));
    const server = await start({
      limits: { maxConcurrentCalls: 1 },
      routes: (router) =>
        router.service(WorkerService, {
          async compute(req) {
            return { digest: req.input };
          },
          async *watch(req, ctx) {
            yield { step: 1, totalSteps: req.steps };
            if (req.steps === 1) return;
            // Stays open until the client cancels.
            try {
              await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
            } finally {
              ended();
            }
          },
        }),
    });
    const client = createClient(WorkerService, createGrpcTransport({ baseUrl: server.url }));

    for await (const step of client.watch({ steps: 1 })) expect(step.step).toBe(1);
    expect((await client.compute({ input: "after a finished stream" })).digest).toBe(
      "after a finished stream",
    );

    const cancel = new AbortController();
    const open = client.watch({ steps: 2 }, { signal: cancel.signal })[Symbol.asyncIterator]();
    expect((await open.next()).value?.step).toBe(1);
    const err = await errorOf(client.compute({ input: "while the stream is open" }));
    expect(err.code).toBe(Code.ResourceExhausted);
    cancel.abort();
    await errorOf(open.next());
    await handlerEnded;
    expect((await client.compute({ input: "after a cancelled stream" })).digest).toBe(
      "after a cancelled stream",
    );
  });

  it("refuses a timeout above the maximum with InvalidArgument", async () => {
    const server = await start({ limits: { maxTimeoutMs: 1000 } });
    const client = createClient(
      WorkerService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    const err = await errorOf(client.compute({}, { timeoutMs: 5000 }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect((await client.compute({ input: "ok" }, { timeoutMs: 900 })).digest).toBe("ok");
  });

  it("announces the stream limit in HTTP/2 SETTINGS", async () => {
    const server = await start({ limits: { maxConcurrentStreams: 7 } });
    const session = http2.connect(server.url);
    const settings = await new Promise<http2.Settings>((resolve) =>
      session.once("remoteSettings", resolve),
    );
    expect(settings.maxConcurrentStreams).toBe(7);
    session.close();
  });
});

describe("health and reflection", () => {
  it("answers Check per service and NotFound for unknown ones", async () => {
    const server = await start();
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    expect((await health.check({ service: "quartet.worker.v1.WorkerService" })).status).toBe(1);
    expect((await health.check({ service: "" })).status).toBe(1);
    const err = await errorOf(health.check({ service: "nope.v1.Nope" }));
    expect(err.code).toBe(Code.NotFound);
    server.health.set("quartet.worker.v1.WorkerService", 2);
    expect((await health.check({ service: "quartet.worker.v1.WorkerService" })).status).toBe(2);
  });

  it("serves v1alpha reflection with the descriptors of the served files", async () => {
    const server = await start();
    const reflection = createClient(ServerReflection, createGrpcTransport({ baseUrl: server.url }));
    async function* requests() {
      yield { messageRequest: { case: "listServices" as const, value: "" } };
      yield {
        messageRequest: {
          case: "fileContainingSymbol" as const,
          value: "quartet.worker.v1.WorkerService.Compute",
        },
      };
      yield { messageRequest: { case: "fileContainingSymbol" as const, value: "no.such.Symbol" } };
    }
    const answers = [];
    for await (const answer of reflection.serverReflectionInfo(requests()))
      answers.push(answer.messageResponse);
    expect(answers[0]?.case).toBe("listServicesResponse");
    const names =
      answers[0]?.case === "listServicesResponse"
        ? answers[0].value.service.map((s) => s.name)
        : [];
    expect(names).toEqual(
      expect.arrayContaining(["quartet.worker.v1.WorkerService", "grpc.health.v1.Health"]),
    );
    expect(answers[1]?.case).toBe("fileDescriptorResponse");
    expect(answers[2]).toMatchObject({ case: "errorResponse", value: { errorCode: 5 } });
  });
});
