import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ConsensusClient } from "@quartet/consensus-service/client";
import { Event_EventType } from "@quartet/proto/quartet/consensus/v1/watch_pb";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { instanceKey, prefixEnd, servicePrefix } from "@quartet/registry";
import { Cluster } from "@quartet/registry/testing";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, describe, expect, it } from "vitest";
import { startGateway, startWorker } from "./processes.ts";

const service = "quartet.worker.v1.WorkerService";
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

let cluster: Cluster | undefined;
const started: ServiceProcess[] = [];
afterAll(async () => {
  await Promise.all(started.map((p) => p.kill("SIGKILL")));
  await cluster?.stop();
});

/** A worker that registers itself with a 3 s lease; resolves with its instance id too. */
async function registeredWorker(id: string, urls: string[]) {
  const worker = await startWorker(id, ["--registry", urls.join(","), "--registry-ttl-s", "3"]);
  started.push(worker);
  const line = await worker.waitForLog((l) => l.msg === "registered");
  return { worker, instanceId: String(line.instanceId) };
}

describe("gateway discovery from the registry", () => {
  it("spreads calls over registered workers; a SIGKILLed one leaves at its lease expiry and a SIGTERMed one deregisters before draining, with no idempotent call failing; a new one is served without a restart", async () => {
    cluster = await Cluster.start();
    const urls = cluster.urls;
    const registry = new ConsensusClient({ endpoints: urls });
    const workers = await Promise.all(["d1", "d2", "d3"].map((id) => registeredWorker(id, urls)));
    const gateway = await startGateway(["--discovery", urls.join(",")]);
    started.push(gateway);
    const client = createClient(WorkerService, createGrpcTransport({ baseUrl: gateway.url }));

    // Load: 6 loops of Compute (NO_SIDE_EFFECTS, so the gateway may retry it elsewhere) until
    // told to stop; any failure fails the test.
    const answered = new Map<string, number>();
    let stop = false;
    // The first failed call ends every wait at once (with the gateway's last log lines).
    const failed = new AbortController();
    const call = async (i: number) => {
      try {
        const res = await client.compute(
          { iterations: 100, input: `x${i}` },
          { timeoutMs: 20_000 },
        );
        answered.set(res.workerId, (answered.get(res.workerId) ?? 0) + 1);
      } catch (e) {
        failed.abort(
          new Error(
            `a Compute through the gateway failed: ${e}\n${gateway.lines.slice(-10).join("\n")}`,
          ),
        );
        throw failed.signal.reason;
      }
    };
    const loop = async () => {
      for (let i = 0; !stop && !failed.signal.aborted; i++) await call(i);
    };
    const prefix = enc(servicePrefix(service));
    const load = Promise.all(Array.from({ length: 6 }, loop));
    load.catch(() => {}); // its failure is reported where the test awaits
    /**
     * Waits for the deletion of `key` as a registry event after `revision`. (Other events may
     * come first: on a loaded machine a survivor's renewal can miss its TTL, and it registers
     * again.)
     */
    const deletion = async (revision: bigint, key: string) => {
      const events = registry.watch(
        { key: prefix, rangeEnd: prefixEnd(prefix), startRevision: revision },
        failed.signal,
      );
      for await (const event of events) {
        if (event.type === Event_EventType.DELETE && dec(event.kv!.key) === key) return key;
      }
      failed.signal.throwIfAborted();
    };
    const waitFor = async (what: string, done: () => boolean) => {
      // Bounded: each turn waits for at least one more answer.
      for (let turn = 0; turn < 5000 && !done(); turn++) {
        await call(turn);
      }
      if (!done()) throw new Error(`gave up waiting for ${what}: ${JSON.stringify([...answered])}`);
    };
    await waitFor("every registered worker to answer", () =>
      ["d1", "d2", "d3"].every((w) => (answered.get(w) ?? 0) > 0),
    );

    // SIGKILL d1 under load: it cannot deregister, so its key goes when its lease expires.
    const before = await registry.range({ key: prefix, rangeEnd: prefixEnd(prefix) });
    const killed = instanceKey(service, workers[0]!.instanceId);
    expect(before.kvs.map((kv) => dec(kv.key))).toContain(killed);
    await workers[0]!.worker.kill("SIGKILL");
    expect(await deletion(before.header!.revision + 1n, killed)).toBe(killed);

    // A fourth worker registers and gets calls through the same gateway.
    await registeredWorker("d4", urls);
    await waitFor("the new worker to answer", () => (answered.get("d4") ?? 0) > 0);

    // SIGTERM d2 under load: it deregisters first, then drains.
    const now = await registry.range({ key: prefix, rangeEnd: prefixEnd(prefix) });
    const stopped = instanceKey(service, workers[1]!.instanceId);
    await workers[1]!.worker.kill("SIGTERM");
    expect(await deletion(now.header!.revision + 1n, stopped)).toBe(stopped);
    const messages = workers[1]!.worker.lines.map((l) => /"msg":"([^"]*)"/.exec(l)?.[1]);
    expect(messages.indexOf("deregistered")).toBeGreaterThan(-1);
    expect(messages.indexOf("deregistered")).toBeLessThan(
      messages.findIndex((m) => m?.startsWith("shutting down")),
    );
    const served = answered.get("d3")!;
    await waitFor("more calls after the drain", () => answered.get("d3")! > served + 20);
    stop = true;
    await load;
    expect(answered.get("d2")).toBeGreaterThan(0);
    expect(answered.get("d3")).toBeGreaterThan(0);
  }, 180_000);
});
