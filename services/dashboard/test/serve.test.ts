// The gateway's dashboard handler on a real HTTP server: what it serves, what it leaves to the
// gateway, and what a gateway whose dashboard was never built says.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer, get, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, test } from "vitest";
import { createDashboardHandler, type DashboardOptions } from "../src/serve.ts";

let server: Server | undefined;
afterEach(() => server?.close());

/** A server where the dashboard answers first and anything else gets 418 ("the gateway's"). */
async function gateway(options: DashboardOptions): Promise<string> {
  const dashboard = createDashboardHandler(options);
  server = createServer((req, res) => {
    if (dashboard(req, res)) return;
    res.writeHead(418).end("gateway");
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function built(): string {
  const dir = mkdtempSync(join(tmpdir(), "dashboard-dist-"));
  mkdirSync(join(dir, "assets"));
  writeFileSync(join(dir, "index.html"), "<!doctype html><title>Quartet</title>");
  writeFileSync(join(dir, "assets", "index-abc123.js"), "console.log(1)");
  return dir;
}

test("serves the page at / and its hashed assets, cached for good, and leaves other paths to the gateway", async () => {
  const url = await gateway({ dir: built(), controls: true });
  const page = await fetch(`${url}/`);
  expect(page.status).toBe(200);
  expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
  expect(page.headers.get("cache-control")).toBe("no-cache");
  expect(await page.text()).toContain("<title>Quartet</title>");
  const asset = await fetch(`${url}/assets/index-abc123.js`);
  expect(asset.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
  expect(asset.headers.get("cache-control")).toContain("immutable");
  expect((await fetch(`${url}/assets/nope.js`)).status).toBe(404);
  // Calls, REST paths and POSTs are the gateway's.
  for (const [method, path] of [
    ["POST", "/quartet.worker.v1.WorkerService/Compute"],
    ["GET", "/v1/compute/hello"],
    ["POST", "/"],
  ]) {
    expect((await fetch(`${url}${path}`, { method })).status).toBe(418);
  }
});

test("never serves a file outside the build directory", async () => {
  const url = new URL(await gateway({ dir: built(), controls: true }));
  // Sent as written (fetch would normalise the dots away before they reach the server).
  const status = (path: string) =>
    new Promise<number | undefined>((resolve, reject) =>
      get({ host: url.hostname, port: url.port, path }, (res) => {
        res.resume();
        resolve(res.statusCode);
      }).on("error", reject),
    );
  for (const path of [
    "/assets/../../../../etc/passwd",
    "/assets/..%2f..%2f..%2f..%2fetc%2fpasswd",
  ]) {
    expect(await status(path)).toBe(418);
  }
});

test("tells the page where Jaeger is and whether the fault controls are on", async () => {
  const url = await gateway({ dir: built(), controls: false, jaegerUrl: "http://jaeger:16686" });
  expect(await (await fetch(`${url}/dashboard.json`)).json()).toEqual({
    jaegerUrl: "http://jaeger:16686",
    controls: false,
  });
});

test("a gateway whose dashboard was never built says how to build it", async () => {
  const url = await gateway({ dir: join(tmpdir(), "no-such-dashboard-build"), controls: true });
  const res = await fetch(`${url}/`);
  expect(res.status).toBe(503);
  expect(await res.text()).toContain("npm run build -w services/dashboard");
});
