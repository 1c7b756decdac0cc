import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "../src/testing/index.ts";

const FIXTURE = fileURLToPath(new URL("./fixtures/traced-worker.ts", import.meta.url));
const SERVICE = "quartet.worker.v1.WorkerService";

interface Worker {
  child: ChildProcess;
  url: string;
  port: number;
  output: string[];
}

/** Starts the fixture on the same Node binary and waits for its {"port":N} line. */
async function startWorker(
  serviceName: string,
  receiver: OtlpReceiver,
  extra: { args?: string[]; env?: Record<string, string> } = {},
): Promise<Worker> {
  const child = spawn(process.execPath, [FIXTURE, ...(extra.args ?? [])], {
    env: {
      ...process.env,
      ...extra.env,
      OTEL_SERVICE_NAME: serviceName,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_COMPRESSION: "gzip",
      OTEL_BSP_SCHEDULE_DELAY: "20",
      OTEL_TRACES_SAMPLER: "parentbased_always_on",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  child.stderr?.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  const lines = createInterface({ input: child.stdout! });
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`${serviceName} exited with ${code} before listening:\n${output.join("")}`);
  });
  const listening = (async () => {
    for await (const line of lines) {
      output.push(line);
      if (line.startsWith('{"port"')) return (JSON.parse(line) as { port: number }).port;
    }
    throw new Error(`${serviceName} closed stdout before listening:\n${output.join("")}`);
  })();
  const port = await Promise.race([listening, exited]);
  return { child, url: `http://127.0.0.1:${port}`, port, output };
}

async function stopWorker(worker: Worker): Promise<number | null> {
  if (worker.child.exitCode !== null) return worker.child.exitCode;
  const exited = once(worker.child, "exit");
  worker.child.kill("SIGTERM");
  const [code] = await exited;
  return code as number | null;
}

let receiver: OtlpReceiver;
let front: Worker;
let back: Worker;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  [front, back] = await Promise.all([
    startWorker("fixture-front", receiver),
    startWorker("fixture-back", receiver, {
      args: ["--not-a-flag=command-line-secret"],
      env: { OTEL_RESOURCE_ATTRIBUTES: "service.instance.id=back-1,deployment.environment=test" },
    }),
  ]);
}, 30_000);

afterAll(async () => {
  for (const worker of [front, back]) if (worker) await stopWorker(worker);
  await receiver?.close();
});

describe("export over OTLP/HTTP protobuf to a real receiver", () => {
  it("delivers one trace across two processes: Fanout -> Compute x2", async () => {
    const traceId = "5b8efff798038103d269b633813fc60c";
    const callerSpanId = "eee19b7ec3c1b174";
    const client = createClient(
      WorkerService,
      createConnectTransport({ baseUrl: front.url, httpVersion: "2" }),
    );
    await client.fanout(
      { peers: [back.url, back.url], request: { input: "x" } },
      { headers: { traceparent: `00-${traceId}-${callerSpanId}-01` } },
    );
    const inTrace = (spans: ReceivedSpan[]) => spans.filter((s) => s.traceId === traceId);
    const spans = inTrace(await receiver.waitForSpans((all) => inTrace(all).length >= 5));
    expect(spans).toHaveLength(5);

    const fanout = spans.filter((s) => s.name === `${SERVICE}/Fanout`);
    expect(fanout).toHaveLength(1);
    expect(fanout[0]).toMatchObject({
      kind: "server",
      parentSpanId: callerSpanId,
      serviceName: "fixture-front",
      attributes: { "rpc.system": "connect_rpc", "rpc.service": SERVICE, "rpc.method": "Fanout" },
      status: { code: 0 },
    });

    const computeClients = spans.filter((s) => s.kind === "client");
    const computeServers = spans.filter(
      (s) => s.kind === "server" && s.name === `${SERVICE}/Compute`,
    );
    expect(computeClients).toHaveLength(2);
    expect(computeServers).toHaveLength(2);
    for (const clientSpan of computeClients) {
      expect(clientSpan).toMatchObject({
        name: `${SERVICE}/Compute`,
        parentSpanId: fanout[0]!.spanId,
        serviceName: "fixture-front",
        attributes: {
          "rpc.system": "connect_rpc",
          "rpc.method": "Compute",
          "server.address": "127.0.0.1",
          "server.port": back.port,
        },
      });
      const serverSpan = computeServers.find((s) => s.parentSpanId === clientSpan.spanId);
      expect(serverSpan).toMatchObject({ serviceName: "fixture-back" });
    }
  }, 30_000);

  it("tells instances apart by service.instance.id and exports no command line", async () => {
    const spans = await receiver.waitForSpans(
      (all) =>
        all.some((s) => s.serviceName === "fixture-front") &&
        all.some((s) => s.serviceName === "fixture-back"),
    );
    const front = spans.find((s) => s.serviceName === "fixture-front")!.resource;
    const back = spans.find((s) => s.serviceName === "fixture-back")!.resource;
    // A random UUID unless OTEL_RESOURCE_ATTRIBUTES names the instance.
    expect(front["service.instance.id"]).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(back["service.instance.id"]).toBe("back-1");
    expect(back["deployment.environment"]).toBe("test");
    expect(back["process.pid"]).toBe(back["process.pid"] as number);
    expect(back).not.toHaveProperty("process.command_args");
    expect(back).not.toHaveProperty("process.command_line");
    expect(JSON.stringify(spans)).not.toContain("command-line-secret");
  }, 30_000);

  it("flushes on SIGTERM and exits 0", async () => {
    expect(await stopWorker(front)).toBe(0);
    expect(await stopWorker(back)).toBe(0);
  }, 30_000);
});
