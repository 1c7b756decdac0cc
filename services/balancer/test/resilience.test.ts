import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterEach, describe, expect, it } from "vitest";
import { startGateway, startWorker } from "./processes.ts";

const service = "quartet.worker.v1.WorkerService";
const started: ServiceProcess[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.kill("SIGKILL")));
});
async function track<T extends ServiceProcess | ServiceProcess[]>(p: Promise<T>): Promise<T> {
  const v = await p;
  started.push(...(Array.isArray(v) ? v : [v]));
  return v;
}
const codeOf = (e: unknown) => ConnectError.from(e).code;

describe("gateway resilience against real workers", () => {
  // Half the callers speak gRPC (HTTP/2 to the workers), half Connect over HTTP/1.1 (HTTP/1.1
  // to the workers): both ways a call lost with its worker is retried on another.
  it("a worker killed with SIGKILL under load: no idempotent call fails", async () => {
    const workers = await track(
      Promise.all([startWorker("k1"), startWorker("k2"), startWorker("k3")]),
    );
    const gateway = await track(
      startGateway(["--route", `${service}=${workers.map((w) => w.url).join(",")}`]),
    );
    const clients = [
      createClient(WorkerService, createGrpcTransport({ baseUrl: gateway.url })),
      createClient(
        WorkerService,
        createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
      ),
    ];
    const answered = new Set<string>();
    let killed = false;
    const loop = async (n: number, client: (typeof clients)[number]) => {
      for (let i = 0; i < n; i++) {
        const res = await client.compute(
          { iterations: 200, input: `x${i}` },
          { timeoutMs: 20_000 },
        );
        answered.add(res.workerId);
        if (!killed && answered.size === 3) {
          killed = true;
          await workers[0]!.kill("SIGKILL");
        }
      }
    };
    // Every call must succeed: the gateway retries Compute (NO_SIDE_EFFECTS) elsewhere.
    await Promise.all(Array.from({ length: 8 }, (_, i) => loop(40, clients[i % 2]!)));
    expect(killed).toBe(true);
  }, 120_000);

  it("the route timeout cap ends a longer call with DeadlineExceeded", async () => {
    const [w] = await track(Promise.all([startWorker("slow")]));
    const gateway = await track(
      startGateway(["--route", `${service}=${w!.url}`, "--route-timeout-ms", "300"]),
    );
    // A gRPC call goes to the worker over HTTP/2, a Connect one over HTTP/1.1.
    for (const transport of [
      createGrpcTransport({ baseUrl: gateway.url }),
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" }),
    ]) {
      const client = createClient(WorkerService, transport);
      const err = await client
        .compute({ fault: { delayMs: 30_000 } }, { timeoutMs: 60_000 })
        .catch((e: unknown) => e);
      expect(codeOf(err)).toBe(Code.DeadlineExceeded);
      expect(ConnectError.from(err).rawMessage).toContain("300 ms");
    }
  }, 60_000);

  it("a slow backend trips its breaker and calls go to the other endpoint", async () => {
    const [slow, fast] = await track(Promise.all([startWorker("slow-a"), startWorker("fast-b")]));
    const gateway = await track(
      startGateway([
        "--route",
        `${service}=${slow!.url},${fast!.url}`,
        "--route-timeout-ms",
        "1000",
      ]),
    );
    const client = createClient(
      WorkerService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" }),
    );
    // A stopped process keeps its connections open and answers nothing: the slowest backend.
    process.kill(slow!.pid, "SIGSTOP");
    let timeouts = 0;
    const answeredBy: string[] = [];
    for (let i = 0; i < 20; i++) {
      try {
        answeredBy.push((await client.compute({ input: String(i) })).workerId);
      } catch (e) {
        expect(codeOf(e)).toBe(Code.DeadlineExceeded);
        timeouts++;
      }
    }
    // Five timeouts in a row open slow-a's breaker (consecutiveFailures 5); then every call
    // goes to fast-b.
    expect(timeouts).toBe(5);
    expect(answeredBy.slice(-10)).toEqual(Array(10).fill("fast-b"));
  }, 60_000);

  it("a client past its rate limit gets ResourceExhausted while another client is served", async () => {
    const [w] = await track(Promise.all([startWorker("rl")]));
    const gateway = await track(
      startGateway([
        "--route",
        `${service}=${w!.url}`,
        "--rate-limit",
        "0.01",
        "--rate-burst",
        "3",
        "--rate-key-header",
        "x-client",
      ]),
    );
    const transport = createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" });
    const client = createClient(WorkerService, transport);
    const as = (id: string) => ({ headers: { "x-client": id } });
    for (let i = 0; i < 3; i++) await client.compute({}, as("alice"));
    const err = await client.compute({}, as("alice")).catch((e: unknown) => e);
    expect(codeOf(err)).toBe(Code.ResourceExhausted);
    expect((await client.compute({}, as("bob"))).workerId).toBe("rl");
  }, 60_000);

  it("ring_hash keyed by a header sends each key to one endpoint", async () => {
    const workers = await track(
      Promise.all([startWorker("h1"), startWorker("h2"), startWorker("h3")]),
    );
    const gateway = await track(
      startGateway([
        "--route",
        `${service}=${workers.map((w) => w.url).join(",")}`,
        "--picker",
        "ring_hash",
        "--hash-header",
        "x-user",
      ]),
    );
    const client = createClient(
      WorkerService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" }),
    );
    const homes = new Map<string, Set<string>>();
    for (let round = 0; round < 3; round++) {
      for (let user = 0; user < 12; user++) {
        const res = await client.compute({}, { headers: { "x-user": `user-${user}` } });
        const set = homes.get(`user-${user}`) ?? new Set<string>();
        set.add(res.workerId);
        homes.set(`user-${user}`, set);
      }
    }
    for (const set of homes.values()) expect(set.size).toBe(1);
    // 12 keys over 3 endpoints: more than one endpoint gets keys.
    expect(new Set([...homes.values()].flatMap((s) => [...s])).size).toBeGreaterThan(1);
  }, 60_000);

  it("no endpoint that can be reached: Unavailable naming the service", async () => {
    const gateway = await track(startGateway(["--route", `${service}=http://127.0.0.1:1`]));
    const client = createClient(
      WorkerService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
    );
    const err = await client.compute({}).catch((e: unknown) => e);
    expect(codeOf(err)).toBe(Code.Unavailable);
    expect(ConnectError.from(err).rawMessage).toContain(service);
  }, 60_000);
});
