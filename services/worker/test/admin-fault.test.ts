import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  Code as FaultCode,
  WorkerAdminService,
  WorkerService,
} from "@quartet/proto/quartet/worker/v1/worker_pb";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterEach, describe, expect, it } from "vitest";
import { startWorker } from "./workers.ts";

const TOKEN = "admin-fault-test-token-0123456789";
const auth = { headers: { authorization: `Bearer ${TOKEN}` } };
const env = { QUARTET_CLUSTER_TOKEN: TOKEN };

let worker: ServiceProcess | undefined;
afterEach(async () => {
  await worker?.kill("SIGKILL");
  worker = undefined;
});

function clients(w: ServiceProcess) {
  const transport = createGrpcTransport({ baseUrl: w.url });
  return {
    admin: createClient(WorkerAdminService, transport),
    worker: createClient(WorkerService, transport),
  };
}

const failure = (e: unknown) => ConnectError.from(e);

/** Makes `n` Compute calls one after another; returns which failed (and that they were Unavailable). */
async function outcomes(w: ReturnType<typeof clients>["worker"], n: number): Promise<boolean[]> {
  const failed: boolean[] = [];
  for (let i = 0; i < n; i++) {
    const error = await w.compute({ input: `call-${i}` }).then(() => undefined, failure);
    if (error) expect(error.code).toBe(Code.Unavailable);
    failed.push(error !== undefined);
  }
  return failed;
}

describe("WorkerAdminService.SetFault", () => {
  it("fails the chosen fraction of calls within a binomial bound, the same calls for the same seed", async () => {
    worker = await startWorker("w-fault", ["--fault-controls", "true"], { env });
    const { admin, worker: compute } = clients(worker);
    const fault = { failCode: FaultCode.UNAVAILABLE, failFraction: 0.3 };
    await admin.setFault({ fault, seed: 42n }, auth);
    const n = 400;
    const first = await outcomes(compute, n);
    const failed = first.filter(Boolean).length;
    // Mean 120, sd sqrt(400 * 0.3 * 0.7) ~ 9.2: 4 sd either side.
    expect(failed).toBeGreaterThanOrEqual(120 - 37);
    expect(failed).toBeLessThanOrEqual(120 + 37);
    const standing = (await admin.getFault({}, auth)).standing!;
    expect(standing.calls).toBe(BigInt(n));
    expect(standing.failed).toBe(BigInt(failed));

    // Set again with the same seed: the very same calls fail (a demo replays).
    await admin.setFault({ fault, seed: 42n }, auth);
    expect(await outcomes(compute, n)).toEqual(first);

    // Cleared: every call succeeds.
    await admin.setFault({}, auth);
    expect((await outcomes(compute, 20)).some(Boolean)).toBe(false);
    expect((await admin.getFault({}, auth)).standing?.fault).toBeUndefined();
  }, 30_000);

  it("needs the credential, --fault-controls, and a valid fault", async () => {
    worker = await startWorker("w-guarded", [], { env });
    const { admin } = clients(worker);
    const fault = { failCode: FaultCode.UNAVAILABLE, failFraction: 0.5 };
    const anonymous = await admin.setFault({ fault }).then(() => undefined, failure);
    expect(anonymous?.code).toBe(Code.Unauthenticated);
    const off = await admin.setFault({ fault }, auth).then(() => undefined, failure);
    expect(off?.code).toBe(Code.PermissionDenied);
    expect(off?.rawMessage).toContain("--fault-controls");
    await worker.kill("SIGKILL");

    worker = await startWorker("w-invalid", ["--fault-controls", "true"], { env });
    const bad = await clients(worker)
      .admin.setFault({ fault: { failCode: FaultCode.UNAVAILABLE, failFraction: 1.5 } }, auth)
      .then(() => undefined, failure);
    expect(bad?.code).toBe(Code.InvalidArgument);
    expect(bad?.rawMessage).toBe("fault.fail_fraction: 1.5 is not in [0, 1]");
  }, 30_000);
});
