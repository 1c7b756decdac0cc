// The balanced transport over real worker processes: spread, SIGKILL under load, restart.
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { staticResolver } from "../src/resolver.ts";
import { type BalancedTransport, createBalancedTransport } from "../src/transport.ts";
import { until } from "./until.ts";

const entry = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "../../../services/worker/src/main.ts",
);
const ids = ["w1", "w2", "w3"];

describe("balanced transport over 3 worker processes", () => {
  const workers = new Map<string, ServiceProcess>();
  let transport: BalancedTransport;
  let client: ReturnType<typeof createClient<typeof WorkerService>>;

  beforeAll(async () => {
    const started = await Promise.all(
      ids.map((id) => startServiceProcess(entry, ["--port", "0", "--id", id])),
    );
    for (const [i, w] of started.entries()) workers.set(ids[i]!, w);
    transport = createBalancedTransport({
      resolver: staticResolver(ids.map((id) => ({ id, address: workers.get(id)!.url }))),
      picker: "round_robin",
      // Quick re-watch so the restarted worker is noticed soon after it listens again.
      healthCheck: { retryBaseMs: 50, retryMaxMs: 250 },
    });
    client = createClient(WorkerService, transport);
    await until(transport.pool, () => transport.stats().every((s) => s.serving === true));
  }, 60_000);

  afterAll(async () => {
    await transport?.close();
    await Promise.all([...workers.values()].map((w) => w.kill("SIGKILL")));
  });

  /** Runs `total` Compute calls, `concurrency` at a time; returns answering worker ids and errors. */
  async function load(total: number, concurrency: number, onProgress?: (done: number) => void) {
    const answered: string[] = [];
    const errors: unknown[] = [];
    let started = 0;
    let done = 0;
    const worker = async () => {
      while (started < total) {
        started++;
        try {
          const res = await client.compute(
            { iterations: 50, input: `call-${started}` },
            { timeoutMs: 10_000 },
          );
          answered.push(res.workerId);
        } catch (e) {
          errors.push(e);
        }
        onProgress?.(++done);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return { answered, errors };
  }

  function shares(list: string[]) {
    const counts: Record<string, number> = {};
    for (const id of list) counts[id] = (counts[id] ?? 0) + 1;
    return counts;
  }

  it("spreads calls as round robin says: equal shares by worker_id", async () => {
    const { answered, errors } = await load(300, 12);
    expect(errors).toEqual([]);
    expect(shares(answered)).toEqual({ w1: 100, w2: 100, w3: 100 });
  }, 60_000);

  it("loses no idempotent call when a worker is SIGKILLed under load", async () => {
    const victim = workers.get("w2")!;
    let killed: Promise<void> | undefined;
    const { answered, errors } = await load(900, 12, (done) => {
      if (done === 300) killed = victim.kill("SIGKILL");
    });
    await killed;
    expect(errors).toEqual([]);
    expect(answered.length).toBe(900);
    // w2 answered until it died; the survivors took the rest.
    const counts = shares(answered);
    expect(counts.w2).toBeGreaterThan(0);
    expect(counts.w1! + counts.w3!).toBeGreaterThan(600);
    const w2 = transport.pool.get("w2")!;
    await until(transport.pool, () => !w2.healthy);
    const after = await load(30, 6);
    expect(after.errors).toEqual([]);
    expect(after.answered).not.toContain("w2");
  }, 60_000);

  it("sends traffic to the restarted worker again once its health check passes", async () => {
    const port = workers.get("w2")!.port;
    workers.set("w2", await startServiceProcess(entry, ["--port", String(port), "--id", "w2"]));
    const w2 = transport.pool.get("w2")!;
    await until(transport.pool, () => w2.healthy);
    expect(transport.stats().find((s) => s.id === "w2")!.servingReason).toBe("watch: SERVING");
    const { answered, errors } = await load(30, 1);
    expect(errors).toEqual([]);
    expect(shares(answered)).toEqual({ w1: 10, w2: 10, w3: 10 });
  }, 60_000);
});
