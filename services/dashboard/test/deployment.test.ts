// The dashboard as a deployment configures it on the gateway: fault controls off, trace ids
// linked to a Jaeger UI. A real gateway process alone (no suite behind it) and real Chromium.
import { fileURLToPath } from "node:url";
import { type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import { buildDashboard, dashboardBuildNeeded } from "../src/build.ts";

const gatewayEntry = fileURLToPath(new URL("../../balancer/src/main.ts", import.meta.url));
const jaeger = "http://jaeger.example:16686";
let gateway: ServiceProcess | undefined;
let browser: Browser | undefined;

beforeAll(async () => {
  if (dashboardBuildNeeded()) await buildDashboard();
  const launching = chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  gateway = await startServiceProcess(
    gatewayEntry,
    ["--port", "0", "--dashboard-controls", "off", "--jaeger-url", jaeger],
    { env: { QUARTET_CLUSTER_TOKEN: "dashboard-deployment-test-token" } },
  );
  browser = await launching;
});
afterAll(async () => {
  await browser?.close();
  await gateway?.kill("SIGTERM");
});

test("with the controls off the page hides them, and each action's trace id links to Jaeger", async () => {
  const page = await browser!.newPage();
  await page.goto(`${gateway!.url}/#/raft`);
  await page.locator("#credential", { hasText: "fault controls are off" }).waitFor();
  expect(await page.locator("form.control").isVisible()).toBe(false);
  // An action (this gateway routes nothing, so it fails) still shows its trace, as a link.
  await page.goto(`${gateway!.url}/#/queues`);
  await page.locator("#publish button").click();
  const link = page.locator("#actions li a");
  await link.waitFor();
  const traceId = await link.innerText();
  expect(traceId).toMatch(/^[0-9a-f]{32}$/);
  expect(await link.getAttribute("href")).toBe(`${jaeger}/trace/${traceId}`);
  await page.locator("#actions li .error", { hasText: "unimplemented" }).waitFor();
});
