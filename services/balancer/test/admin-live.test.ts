import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import {
  BalancerAdminService,
  type EndpointStatus,
  type WatchRoutesResponse,
} from "@quartet/proto/quartet/balancer/v1/admin_pb";
import {
  Code as FaultCode,
  WorkerAdminService,
  WorkerService,
} from "@quartet/proto/quartet/worker/v1/worker_pb";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, startWorker } from "./processes.ts";

const service = "quartet.worker.v1.WorkerService";
const token = "admin-live-test-token-0123456789abcdef";
const env = { QUARTET_CLUSTER_TOKEN: token };
const auth = { headers: { authorization: `Bearer ${token}` } };
let workers: ServiceProcess[] = [];
let gateway: ServiceProcess;

beforeAll(async () => {
  workers = await Promise.all(
    ["live-1", "live-2"].map((id) => startWorker(id, ["--fault-controls", "true"], { env })),
  );
  gateway = await startGateway(
    [
      "--route",
      `${service}=${workers.map((w) => w.url).join(",")};quartet.worker.v1.WorkerAdminService=${workers[0]!.url}`,
      ...["--hash-header", "x-key"],
    ],
    { env },
  );
}, 60_000);
afterAll(async () => {
  await gateway?.kill("SIGTERM");
  await Promise.all(workers.map((w) => w.kill("SIGTERM")));
});

const transport = () => createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" });

describe("the gateway's live admin API", () => {
  it("switches the picker, and KeyOwnership says where the proxy sends each key", async () => {
    const admin = createClient(BalancerAdminService, transport());
    const notHashing = await admin
      .keyOwnership({ service, keys: ["a"] }, auth)
      .catch((e: unknown) => ConnectError.from(e));
    expect((notHashing as ConnectError).code).toBe(Code.FailedPrecondition);
    const unknown = await admin
      .setPicker({ service, picker: "fastest" }, auth)
      .catch((e: unknown) => ConnectError.from(e));
    expect((unknown as ConnectError).code).toBe(Code.InvalidArgument);
    expect((unknown as ConnectError).rawMessage).toContain("maglev");

    const switched = await admin.setPicker({ service, picker: "maglev" }, auth);
    expect(switched.route?.picker).toBe("maglev");
    expect((await admin.listRoutes({}, auth)).routes[0]?.picker).toBe("maglev");

    const keys = Array.from({ length: 8 }, (_, i) => `user-${i}`);
    const owned = await admin.keyOwnership({ service, keys, samples: 2000 }, auth);
    expect(owned.picker).toBe("maglev");
    expect(owned.shares.map((s) => s.endpoint).sort()).toEqual(workers.map((w) => w.url).sort());
    expect(owned.shares.reduce((sum, s) => sum + s.share, 0)).toBeCloseTo(1, 6);
    // Each key's call goes to the endpoint KeyOwnership named.
    const worker = createClient(WorkerService, transport());
    const nameOf = new Map(workers.map((w, i) => [w.url, `live-${i + 1}`]));
    for (const placement of owned.keys) {
      const res = await worker.compute({}, { headers: { "x-key": placement.key } });
      expect(res.workerId).toBe(nameOf.get(placement.endpoint));
    }
    await admin.setPicker({ service, picker: "round_robin" }, auth);
  });

  it("passes the caller's credential through to an admin backend, and only the caller's", async () => {
    const viaGateway = createClient(WorkerAdminService, transport());
    const anonymous = await viaGateway.getFault({}).catch((e: unknown) => ConnectError.from(e));
    expect((anonymous as ConnectError).code).toBe(Code.Unauthenticated);
    const standing = await viaGateway.getFault({}, auth);
    expect(standing.standing?.calls).toBe(0n);
  });

  it("WatchRoutes shows an endpoint's breaker opening when its worker fails", async () => {
    const admin = createClient(BalancerAdminService, transport());
    const controller = new AbortController();
    const messages: WatchRoutesResponse[] = [];
    let notify: (() => void) | undefined;
    const reading = (async () => {
      for await (const m of admin.watchRoutes(
        { intervalMs: 200 },
        { ...auth, signal: controller.signal },
      )) {
        messages.push(m);
        notify?.();
      }
    })().catch(() => {});
    const until = async (match: (e: EndpointStatus) => boolean): Promise<EndpointStatus> => {
      for (;;) {
        for (const m of messages) {
          const found = m.routes[0]?.endpoints.find(match);
          if (found) return found;
        }
        await new Promise<void>((resolve) => {
          notify = resolve;
        });
      }
    };
    try {
      const failing = workers[0]!;
      const closed = await until((e) => e.address === failing.url);
      expect(closed.breakerState).toBe("closed");
      expect(closed.failureThreshold).toBe(0.5);

      const workerAdmin = createClient(
        WorkerAdminService,
        createGrpcTransport({ baseUrl: failing.url }),
      );
      await workerAdmin.setFault({ fault: { failCode: FaultCode.UNAVAILABLE }, seed: 1n }, auth);
      // Compute is free of side effects: the gateway retries it elsewhere, so callers still
      // get answers while the failing endpoint's breaker counts its failures.
      const worker = createClient(WorkerService, transport());
      const calls = (async () => {
        for (let i = 0; i < 40 && !controller.signal.aborted; i++) {
          await worker.compute({ input: String(i) }).catch(() => {});
        }
      })();
      const open = await until((e) => e.address === failing.url && e.breakerState === "open");
      expect(open.ejected).toBe(true);
      expect(open.errors).toBeGreaterThan(0n);
      expect(open.transitions.at(-1)).toMatchObject({ from: "closed", to: "open" });
      expect(open.transitions.at(-1)!.atUnixMs).toBeGreaterThan(0n);
      await calls;
      await workerAdmin.setFault({}, auth);
    } finally {
      controller.abort();
      await reading;
    }
  });
});
