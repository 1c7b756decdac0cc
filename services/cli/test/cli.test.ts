import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonLines, oneLine, runCli, startCli } from "./cli.ts";

const brokerEntry = fileURLToPath(new URL("../../broker/src/main.ts", import.meta.url));
const workerEntry = fileURLToPath(new URL("../../worker/src/main.ts", import.meta.url));
const TOKEN = "cli-test-cluster-token-0123456789";

let broker: ServiceProcess;
let worker: ServiceProcess;
let dir: string;
let closedUrl: string;
let env: Record<string, string>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "quartet-cli-"));
  broker = await startServiceProcess(
    brokerEntry,
    ["--port", "0", "--data-dir", dir, "--queues", "jobs,held"],
    {
      env: { QUARTET_CLUSTER_TOKEN: TOKEN },
    },
  );
  worker = await startServiceProcess(workerEntry, [
    "--port",
    "0",
    "--id",
    "w1",
    "--broker-url",
    broker.url,
    "--request-subject",
    "compute.sha",
  ]);
  // A loopback port that was free a moment ago: nothing listens on it.
  closedUrl = `http://127.0.0.1:${await freePort()}`;
  env = { QUARTET_BROKER_URL: broker.url, QUARTET_CLUSTER_TOKEN: TOKEN };
});

afterAll(async () => {
  await worker?.kill("SIGTERM");
  await broker?.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
});

describe("pub and sub", () => {
  it("a subscriber started with --count 1 prints the published message and exits 0", async () => {
    const sub = startCli(["sub", "greet.>", "--count", "1", "--json"], env);
    // Listened for from the start: the subscriber may exit before the publisher does.
    const closed = new Promise((r) => sub.on("close", r));
    let stdout = "";
    sub.stdout.on("data", (d) => {
      stdout += d;
    });
    await new Promise<void>((resolve) => {
      sub.stderr.on("data", (d) => {
        if (String(d).includes("subscribed to")) resolve();
      });
    });
    const pub = await runCli(["pub", "greet.world", "hello", "--json"], env);
    expect(pub.code).toBe(0);
    expect(jsonLines(pub.stdout)).toEqual([{ subject: "greet.world", delivered: 1 }]);
    const code = await closed;
    expect(code).toBe(0);
    expect(jsonLines(stdout)).toMatchObject([{ subject: "greet.world", payload: "hello" }]);
  });

  it("pub reads @file and --base64 payloads; plain output is readable", async () => {
    const file = join(dir, "payload.txt");
    writeFileSync(file, "from a file");
    const fromFile = await runCli(["pub", "nobody.listens", `@${file}`], env);
    expect(fromFile.code).toBe(0);
    expect(fromFile.stdout).toBe("published to nobody.listens: 0 subscriber(s)\n");
    const b64 = await runCli(["pub", "nobody.listens", "aGk=", "--base64", "--json"], env);
    expect(jsonLines(b64.stdout)).toEqual([{ subject: "nobody.listens", delivered: 0 }]);
  });

  it("bad payloads and counts exit 2 with one line", async () => {
    const missing = await runCli(["pub", "x", "@/nonexistent/file"], env);
    expect(missing.code).toBe(2);
    expect(oneLine(missing.stderr)).toMatch(
      /^quartet: cannot read \/nonexistent\/file.*\(invalid_argument\)/,
    );
    const count = await runCli(["sub", "x", "--count", "zero"], env);
    expect(count.code).toBe(2);
    expect(oneLine(count.stderr)).toMatch(/--count must be a positive integer/);
  });
});

describe("request", () => {
  it("gets a worker's reply through the broker", async () => {
    // The payload is the binary ComputeRequest {input: "hello"}.
    const res = await runCli(["request", "compute.sha", "EgVoZWxsbw==", "--base64", "--json"], env);
    expect(res.code).toBe(0);
    const [reply] = jsonLines(res.stdout) as { payload: string }[];
    expect(Buffer.from(reply.payload, "base64").length).toBeGreaterThan(0);
  });

  it("with no responder fails with the Connect code named and exit 1", async () => {
    const res = await runCli(["request", "nobody.answers", "x", "--timeout", "200"], env);
    expect(res.code).toBe(1);
    expect(oneLine(res.stderr)).toMatch(
      /^quartet: .*\((deadline_exceeded|unavailable|not_found)\): /,
    );
  });
});

describe("queue", () => {
  it("enqueue, stats, consume (acking what it prints), stats again", async () => {
    const enq = await runCli(["queue", "enqueue", "jobs", "one", "two", "--json"], env);
    expect(enq.code).toBe(0);
    expect(jsonLines(enq.stdout)).toEqual([{ queue: "jobs", sequences: ["1", "2"] }]);

    const before = await runCli(["queue", "stats", "jobs", "--json"], env);
    expect(jsonLines(before.stdout)).toMatchObject([{ queue: "jobs", depth: 2, acked: 0 }]);

    const consume = await runCli(["queue", "consume", "jobs", "--count", "2", "--json"], env);
    expect(consume.code).toBe(0);
    expect(jsonLines(consume.stdout)).toMatchObject([
      { queue: "jobs", sequence: "1", payload: "one" },
      { queue: "jobs", sequence: "2", payload: "two" },
    ]);

    const after = await runCli(["queue", "stats", "jobs", "--json"], env);
    expect(jsonLines(after.stdout)).toMatchObject([{ queue: "jobs", depth: 0, acked: 2 }]);

    const table = await runCli(["queue", "stats"], env);
    expect(table.stdout.split("\n")[0]).toMatch(/^QUEUE\s+DEPTH\s+IN-FLIGHT/);
    expect(table.stdout).toMatch(/\njobs\s+0\s+0\s+0\s+2\s+2/);
  });

  it("consume --no-ack leaves the job unacknowledged", async () => {
    await runCli(["queue", "enqueue", "held", "keep-me"], env);
    const consume = await runCli(["queue", "consume", "held", "--count", "1", "--no-ack"], env);
    expect(consume.code).toBe(0);
    expect(consume.stdout).toBe("#1 keep-me\n");
    const stats = await runCli(["queue", "stats", "held", "--json"], env);
    expect(jsonLines(stats.stdout)).toMatchObject([{ queue: "held", acked: 0 }]);
  });
});

describe("call (any method via reflection)", () => {
  it("calls a unary method and prints the response as JSON", async () => {
    const res = await runCli([
      "call",
      worker.url,
      "quartet.worker.v1.WorkerService/Compute",
      '{"input": "hello"}',
    ]);
    expect(res.code).toBe(0);
    const [out] = jsonLines(res.stdout) as Record<string, unknown>[];
    expect(Object.keys(out).length).toBeGreaterThan(0);
  });

  it("prints one JSON per message of a server-streaming method", async () => {
    const res = await runCli([
      "call",
      worker.url,
      "quartet.worker.v1.WorkerService/Watch",
      '{"steps": 3, "iterationsPerStep": 1}',
    ]);
    expect(res.code).toBe(0);
    expect(jsonLines(res.stdout)).toHaveLength(3);
  });

  it("works on the broker too (reflection is served by every service)", async () => {
    const res = await runCli(
      ["call", broker.url, "quartet.broker.v1.BrokerService/Publish", '{"subject": "a.b"}'],
      env,
    );
    expect(res.code).toBe(0);
    expect(jsonLines(res.stdout)).toEqual([{ delivered: 0 }]);
  });

  it("an unknown method or service exits 1 naming not_found", async () => {
    const method = await runCli(["call", worker.url, "quartet.worker.v1.WorkerService/Nope", "{}"]);
    expect(method.code).toBe(1);
    expect(oneLine(method.stderr)).toMatch(/^quartet: no method .*Nope.* \(not_found\): /);
    const service = await runCli(["call", worker.url, "no.such.v1.Service/Nope", "{}"]);
    expect(service.code).toBe(1);
    expect(oneLine(service.stderr)).toMatch(/\(not_found\)/);
  });

  it("bad JSON, a request that does not fit, or a malformed method exit 2", async () => {
    const m = "quartet.worker.v1.WorkerService/Compute";
    for (const args of [
      [worker.url, m, "{not json"],
      [worker.url, m, '{"noSuchField": 1}'],
      [worker.url, "Compute", "{}"],
      ["not-a-url", m, "{}"],
    ]) {
      const res = await runCli(["call", ...args]);
      expect(res.code, args.join(" ")).toBe(2);
      expect(oneLine(res.stderr)).toMatch(/^quartet: .* \(invalid_argument\): /);
    }
  });

  it("an unreachable service exits 3", async () => {
    const res = await runCli(["call", closedUrl, "quartet.worker.v1.WorkerService/Compute", "{}"]);
    expect(res.code).toBe(3);
    expect(oneLine(res.stderr)).toMatch(/^quartet: cannot reach .* \(unavailable\): /);
  });
});

describe("status", () => {
  it("reports every target SERVING with exit 0, as a table and as JSON", async () => {
    const targets = `broker=${broker.url},worker=${worker.url}`;
    const json = await runCli(["status", "--targets", targets, "--json"]);
    expect(json.code).toBe(0);
    expect(jsonLines(json.stdout)).toEqual([
      [
        { name: "broker", url: broker.url, status: "SERVING" },
        { name: "worker", url: worker.url, status: "SERVING" },
      ],
    ]);
    const table = await runCli(["status", "--targets", targets]);
    expect(table.stdout).toMatch(/^SERVICE\s+URL\s+STATUS\n/);
    expect(table.stdout).toMatch(/broker\s+http:\S+\s+SERVING/);
  });

  it("an unreachable target makes it exit 3", async () => {
    const res = await runCli([
      "status",
      "--targets",
      `broker=${broker.url},gone=${closedUrl}`,
      "--json",
    ]);
    expect(res.code).toBe(3);
    expect(jsonLines(res.stdout)).toMatchObject([
      [{ status: "SERVING" }, { name: "gone", status: "UNREACHABLE" }],
    ]);
  });
});

describe("arguments and help", () => {
  it("--help works on every command", async () => {
    for (const cmd of [
      [],
      ["pub"],
      ["sub"],
      ["request"],
      ["queue"],
      ["queue", "consume"],
      ["call"],
      ["status"],
    ]) {
      const res = await runCli([...cmd, "--help"]);
      expect(res.code, cmd.join(" ")).toBe(0);
      expect(res.stdout).toMatch(/^Usage: quartet/);
    }
  });

  it("a missing argument or unknown option exits 2 with one line", async () => {
    for (const args of [["pub", "only-subject"], ["status", "--bogus"], ["nosuchcommand"]]) {
      const res = await runCli(args);
      expect(res.code, args.join(" ")).toBe(2);
      expect(oneLine(res.stderr)).toMatch(/^quartet: .* \(invalid_argument\): see quartet --help$/);
    }
  });

  it("an unreachable broker exits 3", async () => {
    const res = await runCli(["pub", "a", "b"], { QUARTET_BROKER_URL: closedUrl });
    expect(res.code).toBe(3);
    expect(oneLine(res.stderr)).toBe(
      `quartet: cannot reach ${closedUrl} (unavailable): check the URL and that the service is running (quartet status)`,
    );
  });
});
