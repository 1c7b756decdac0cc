import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { type OtlpReceiver, startOtlpReceiver } from "@quartet/telemetry/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseConfig, serverSettings } from "../src/index.ts";
import { type ServiceProcess, startServiceProcess } from "../src/testing/index.ts";

const child = fileURLToPath(new URL("./fixtures/authed-child.ts", import.meta.url));
const token = "known-cluster-token-7f3a9c2e51";
const watchPath = "/quartet.worker.v1.WorkerService/Watch";

let receiver: OtlpReceiver;
const started: ServiceProcess[] = [];
beforeAll(async () => {
  receiver = await startOtlpReceiver();
});
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.kill()));
});
afterAll(() => receiver?.close());

async function start(env: Record<string, string>): Promise<ServiceProcess> {
  const server = await startServiceProcess(child, ["--port", "0"], {
    env: {
      QUARTET_LOG_LEVEL: "trace",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: "20",
      OTEL_TRACES_SAMPLER: "always_on",
      ...env,
    },
  });
  started.push(server);
  return server;
}

/** The message of the error a call ends with, or "" when it succeeds. */
async function errorOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "";
  } catch (e) {
    return ConnectError.from(e).message;
  }
}

async function watch(url: string, authorization?: string) {
  const client = createClient(
    WorkerService,
    createConnectTransport({ baseUrl: url, httpVersion: "1.1" }),
  );
  const headers = authorization === undefined ? {} : { authorization };
  const steps = [];
  for await (const res of client.watch({ steps: 2 }, { headers })) steps.push(res.step);
  return steps;
}

describe("the cluster token", () => {
  it("appears in none of /metrics, the logs, the exported spans or error messages", async () => {
    const server = await start({ QUARTET_CLUSTER_TOKEN: token });
    const client = createClient(
      WorkerService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    await client.compute({ input: "x" });
    expect(await watch(server.url, `Bearer ${token}`)).toEqual([1, 2]);
    const errors = [
      await errorOf(watch(server.url)),
      await errorOf(watch(server.url, "Bearer wrong-token-wrong-token")),
      await errorOf(watch(server.url, `Bearer ${token.slice(0, -1)}`)),
    ];
    for (const message of errors) expect(message).toMatch(/cluster credential/);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/target_info/);
    const spans = await receiver.waitForSpans(
      (all) =>
        all.some((s) => s.name.endsWith("/Watch")) && all.some((s) => s.name.endsWith("/Compute")),
    );
    await server.kill("SIGTERM");

    const everything = [metrics, ...server.lines, JSON.stringify(spans), ...errors].join("\n");
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(token.slice(0, -1));
    expect(spans.some((s) => s.name === watchPath.slice(1))).toBe(true);
    expect(spans[0]!.resource).not.toHaveProperty("process.command_args");
  }, 30_000);

  it("is read from --cluster-token-file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "quartet-token-"));
    const file = join(dir, "token");
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    const server = await start({ QUARTET_CLUSTER_TOKEN_FILE: file });
    expect(await watch(server.url, `Bearer ${token}`)).toEqual([1, 2]);
    expect(await errorOf(watch(server.url, `Bearer ${token}\n`.trim().concat("x")))).toMatch(
      /cluster credential/,
    );
  }, 30_000);

  it("is refused on the command line, with a start-up error that says where to put it", () => {
    for (const args of [["--cluster-token", token], [`--cluster-token=${token}`]]) {
      const run = spawnSync(process.execPath, [child, "--port", "0", ...args], {
        encoding: "utf8",
        env: { ...process.env, QUARTET_CLUSTER_TOKEN: undefined },
      });
      expect(run.status).toBe(2);
      expect(run.stderr).toMatch(/--cluster-token is not accepted/);
      expect(run.stderr).toMatch(/QUARTET_CLUSTER_TOKEN\b/);
      expect(run.stderr).toMatch(/--cluster-token-file/);
      expect(run.stderr + run.stdout).not.toContain(token);
    }
  }, 30_000);

  it("never shows in a configuration error", () => {
    const short = "short-secret";
    const problem = () =>
      parseConfig({ name: "t", summary: "t", settings: serverSettings }, ["--port", "0"], {
        QUARTET_CLUSTER_TOKEN: short,
      });
    expect(problem).toThrow(/QUARTET_CLUSTER_TOKEN: use at least 16 characters/);
    expect(problem).not.toThrow(new RegExp(short));
  });
});
