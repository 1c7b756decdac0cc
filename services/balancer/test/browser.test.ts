import { createHash } from "node:crypto";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import type { ServiceProcess } from "@quartet/server/testing";
import { type OtlpReceiver, startOtlpReceiver } from "@quartet/telemetry/testing";
import { build } from "esbuild";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PageResult } from "./browser/page.ts";
import { startGateway, startWorker } from "./processes.ts";

// Real Chromium (the Debian binary; playwright-core downloads none) loads a page from its own
// origin whose script calls a worker through the gateway with @connectrpc/connect-web: CORS,
// unary and server streaming, and the page's trace continued by the gateway and the worker,
// as a real OTLP receiver collects them.
let receiver: OtlpReceiver;
let worker: ServiceProcess;
let gateway: ServiceProcess;
let site: Server;
let siteUrl: string;
let browser: Browser;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "50" };
  const bundling = build({
    entryPoints: [fileURLToPath(new URL("./browser/page.ts", import.meta.url))],
    bundle: true,
    format: "esm",
    platform: "browser",
    write: false,
    logLevel: "silent",
  });
  worker = await startWorker("browser-w", [], { env });
  // The gateway's default CORS origins are this machine's (http://127.0.0.1:*), the page's.
  gateway = await startGateway(["--route", `quartet.worker.v1.WorkerService=${worker.url}`], {
    env,
  });
  const script = (await bundling).outputFiles[0]!.text;
  site = createServer((req, res) => {
    if (req.url === "/page.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(script);
      return;
    }
    res.writeHead(200, { "content-type": "text/html" });
    res.end(
      '<!doctype html><title>browser test</title><script type="module" src="/page.js"></script>',
    );
  });
  site.listen(0, "127.0.0.1");
  await once(site, "listening");
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/`;
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  site?.close();
  await gateway?.kill("SIGTERM");
  await worker?.kill("SIGTERM");
  await receiver?.close();
});

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest();

describe("a browser calling a worker through the gateway", () => {
  it("unary and server streaming with connect-web, in one trace from the page to the worker", async () => {
    const page = await browser.newPage();
    await page.goto(siteUrl);
    await page.waitForFunction(() => "quartetRun" in globalThis);
    const traceId = "5a7c0e2f9b1d4c3e8f6a2b1c0d9e8f7a";
    const pageSpans = ["1111111111111111", "2222222222222222"];
    const result = await page.evaluate(
      ([url, trace, spans]) =>
        (
          globalThis as unknown as {
            quartetRun: (u: string, t: string, s: string[]) => Promise<PageResult>;
          }
        ).quartetRun(url, trace, spans),
      [gateway.url, traceId, pageSpans] as const,
    );
    await page.close();

    const digest = sha256(sha256("from the browser"));
    expect(result.digest).toBe(digest.toString("hex"));
    expect(result.workerId).toBe("browser-w");
    expect(result.steps).toEqual([1, 2, 3]);
    expect(result.lastDigest).toMatch(/^[0-9a-f]{64}$/);

    // The page's two spans are each the parent of a gateway span, each of which is the parent
    // of the worker's server span: browser -> gateway -> worker, one trace.
    const methods = ["Compute", "Watch"];
    const spans = await receiver.waitForSpans(
      (all) => all.filter((s) => s.traceId === traceId && s.kind === "server").length >= 4,
    );
    const inTrace = spans.filter((s) => s.traceId === traceId);
    methods.forEach((method, i) => {
      const path = `quartet.worker.v1.WorkerService/${method}`;
      const atGateway = inTrace.find((s) => s.name === `gateway ${path}`);
      expect(atGateway?.parentSpanId, `gateway span of ${method}`).toBe(pageSpans[i]);
      expect(atGateway?.serviceName).toBe("quartet-balancer");
      const atWorker = inTrace.find((s) => s.name === path && s.kind === "server");
      expect(atWorker?.parentSpanId, `worker span of ${method}`).toBe(atGateway?.spanId);
    });
  });

  it("the gateway's /openapi page renders the REST routes with how their parameters are written", async () => {
    const page = await browser.newPage();
    await page.goto(`${gateway.url}/openapi`);
    const kvPut = page.locator(".op", { hasText: "quartet.consensus.v1.KVService.Put" });
    await kvPut.waitFor();
    expect(await kvPut.textContent()).toContain("/v1/kv/{key}");
    expect(await kvPut.textContent()).toContain("percent-encoded");
    const doc = JSON.parse(readFileSync(new URL("../src/openapi.json", import.meta.url), "utf8"));
    const operations = Object.values(doc.paths as Record<string, object>).flatMap(Object.keys);
    expect(await page.locator(".op").count()).toBe(operations.length);
    await page.close();
  });
});
