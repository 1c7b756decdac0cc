import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { BalancerAdminService } from "@quartet/proto/quartet/balancer/v1/admin_pb";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayEntry, startWorker } from "./processes.ts";

const service = "quartet.worker.v1.WorkerService";
const token = "admin-test-token-0123456789abcdef";
let workers: ServiceProcess[] = [];
let gateway: ServiceProcess;

beforeAll(async () => {
  workers = await Promise.all([startWorker("a1"), startWorker("a2")]);
  gateway = await startServiceProcess(
    gatewayEntry,
    ["--port", "0", "--route", `${service}=${workers.map((w) => w.url).join(",")}`],
    { env: { QUARTET_CLUSTER_TOKEN: token } },
  );
}, 60_000);
afterAll(async () => {
  await gateway?.kill("SIGTERM");
  await Promise.all(workers.map((w) => w.kill("SIGTERM")));
});

const transport = () => createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" });
const auth = { headers: { authorization: `Bearer ${token}` } };

describe("the admin API", () => {
  it("needs the cluster credential", async () => {
    const admin = createClient(BalancerAdminService, transport());
    const err = await admin.listRoutes({}).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.Unauthenticated);
  });

  it("lists routes with per-endpoint state and figures", async () => {
    const worker = createClient(WorkerService, transport());
    for (let i = 0; i < 4; i++) await worker.compute({ input: String(i) });
    const admin = createClient(BalancerAdminService, transport());
    const { routes } = await admin.listRoutes({}, auth);
    expect(routes.map((r) => r.service)).toEqual([service]);
    const endpoints = routes[0]!.endpoints;
    expect(endpoints.map((e) => e.address).sort()).toEqual(workers.map((w) => w.url).sort());
    for (const e of endpoints) {
      expect(e.calls).toBe(2n);
      expect(e.errors).toBe(0n);
      expect(e.breakerState).toBe("closed");
      expect(e.p99Ms).toBeGreaterThan(0);
      expect(e.rps).toBeGreaterThan(0);
    }
  });

  it("a drained endpoint takes no new calls until it is returned", async () => {
    const admin = createClient(BalancerAdminService, transport());
    const worker = createClient(WorkerService, transport());
    const res = await admin.drainEndpoint(
      { service, endpoint: workers[0]!.url, drained: true },
      auth,
    );
    expect(res.endpoint?.drained).toBe(true);
    const ids = new Set<string>();
    for (let i = 0; i < 6; i++) ids.add((await worker.compute({})).workerId);
    expect(ids).toEqual(new Set(["a2"]));
    await admin.drainEndpoint({ service, endpoint: workers[0]!.url, drained: false }, auth);
    const after = new Set<string>();
    for (let i = 0; i < 6; i++) after.add((await worker.compute({})).workerId);
    expect(after).toEqual(new Set(["a1", "a2"]));
  });

  it("an unknown endpoint is NotFound naming the known ones", async () => {
    const admin = createClient(BalancerAdminService, transport());
    const err = await admin
      .drainEndpoint({ service, endpoint: "http://nowhere:1", drained: true }, auth)
      .catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect((err as ConnectError).rawMessage).toContain(workers[0]!.url);
  });
});
