import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ServerReflection } from "@quartet/proto/grpc/reflection/v1/reflection_pb";
import { Health, HealthCheckResponse_ServingStatus } from "@quartet/proto/health/v1/health_pb";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { afterEach, describe, expect, it } from "vitest";
import type { Server } from "../src/index.ts";
import { serveForTest } from "./fixtures.ts";

let server: Server | undefined;
afterEach(() => server?.close());

describe("call budgets", () => {
  it("answers health checks and reflection while application calls fill the concurrent-call limit", async () => {
    const limit = 8;
    // Compute holds its place until the test opens the gate, and says when all have arrived.
    let arrived = 0;
    let allArrived!: () => void;
    const full = new Promise<void>((resolve) => (allArrived = resolve));
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    server = await serveForTest({
      limits: { maxConcurrentCalls: limit },
      routes: (router) =>
        router.service(WorkerService, {
          async compute(req) {
            if (++arrived === limit) allArrived();
            await gate;
            return { digest: req.input };
          },
        }),
    });
    const transport = createGrpcTransport({ baseUrl: server.url });
    const worker = createClient(WorkerService, transport);
    const held = Array.from({ length: limit }, (_, i) => worker.compute({ input: `slow ${i}` }));
    await full;
    const refused = await worker.compute({ input: "one more" }).catch((e) => ConnectError.from(e));
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.ResourceExhausted);

    const health = createClient(Health, transport);
    for (const service of ["", WorkerService.typeName]) {
      expect((await health.check({ service })).status).toBe(
        HealthCheckResponse_ServingStatus.SERVING,
      );
    }
    const reflection = createClient(ServerReflection, transport);
    async function* listServices() {
      yield { messageRequest: { case: "listServices" as const, value: "" } };
    }
    for await (const res of reflection.serverReflectionInfo(listServices())) {
      expect(res.messageResponse.case).toBe("listServicesResponse");
    }

    open();
    expect(await Promise.all(held)).toHaveLength(limit);
  });
});
