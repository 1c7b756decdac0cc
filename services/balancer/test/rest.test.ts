import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { promisify } from "node:util";
import type { ServiceProcess } from "@quartet/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, startWorker } from "./processes.ts";

const run = promisify(execFile);
let worker: ServiceProcess;
let gateway: ServiceProcess;

beforeAll(async () => {
  worker = await startWorker("rest-w");
  gateway = await startGateway(["--route", `quartet.worker.v1.WorkerService=${worker.url}`]);
}, 60_000);
afterAll(async () => {
  await gateway?.kill("SIGTERM");
  await worker?.kill("SIGTERM");
});

/** curl, as the README prints it. */
async function curl(args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await run("curl", ["-s", "-w", "\n%{http_code}", ...args]);
  const cut = stdout.lastIndexOf("\n");
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}

describe("the REST tier", () => {
  it("POST /v1/compute with a JSON body calls WorkerService.Compute", async () => {
    const res = await curl([
      `${gateway.url}/v1/compute`,
      "-H",
      "content-type: application/json",
      "-d",
      '{"input":"hi"}',
    ]);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({
      digest: createHash("sha256").update("hi").digest("hex"),
      workerId: "rest-w",
    });
  });

  it("maps a backend error to its HTTP status with a JSON error", async () => {
    const res = await curl([
      `${gateway.url}/v1/compute`,
      "-d",
      '{"fault":{"failCode":"CODE_NOT_FOUND","failMessage":"gone"}}',
    ]);
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body)).toEqual({ code: 5, message: "gone", details: [] });
  });

  it("a body that is not the message is 400 naming the field", async () => {
    const res = await curl([`${gateway.url}/v1/compute`, "-d", '{"iterationz":1}']);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).message).toContain("iterationz");
    const typed = await curl([`${gateway.url}/v1/compute`, "-d", '{"iterations":"many"}']);
    expect(typed.status).toBe(400);
    expect(JSON.parse(typed.body).message).toContain("iterations");
  });

  it("GET /v1/compute/{input} takes the path variable and query parameters", async () => {
    const res = await curl([`${gateway.url}/v1/compute/hello%20world?iterations=0`]);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).digest).toBe(
      createHash("sha256").update("hello world").digest("hex"),
    );
    const more = await curl([`${gateway.url}/v1/compute/x?iterations=2`]);
    expect(JSON.parse(more.body).iterations).toBe(2);
  });

  it("a query parameter of the wrong type or unknown is 400 naming it", async () => {
    const typed = await curl([`${gateway.url}/v1/compute/x?iterations=lots`]);
    expect(typed.status).toBe(400);
    expect(JSON.parse(typed.body).message).toContain("iterations");
    const unknown = await curl([`${gateway.url}/v1/compute/x?speed=fast`]);
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.body).message).toContain('"speed"');
  });

  it("an unknown path is 404 naming the REST routes", async () => {
    const res = await curl([`${gateway.url}/v1/nothing`]);
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body).message).toContain("POST /v1/compute");
  });

  it("serves the OpenAPI document and a page that renders it", async () => {
    const doc = await curl([`${gateway.url}/openapi.json`]);
    expect(doc.status).toBe(200);
    expect(JSON.parse(doc.body).paths["/v1/compute"].post.operationId).toBe(
      "quartet.worker.v1.WorkerService.Compute",
    );
    const page = await curl([`${gateway.url}/openapi`]);
    expect(page.status).toBe(200);
    expect(page.body).toContain("/openapi.json");
  });
});
