import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { propagation } from "@opentelemetry/api";
import { afterEach, expect, it } from "vitest";
import { startTelemetry } from "../src/index.ts";

// The standard variables the SDK's own start read, which startTelemetry reads as it did.
afterEach(() => {
  delete process.env.OTEL_PROPAGATORS;
});

async function fieldsWith(setting: string | undefined): Promise<string[]> {
  if (setting !== undefined) process.env.OTEL_PROPAGATORS = setting;
  const telemetry = startTelemetry({ serviceName: "propagators-test" });
  try {
    return propagation.fields();
  } finally {
    await telemetry.shutdown();
  }
}

it("propagates W3C trace context and baggage by default, or what OTEL_PROPAGATORS names", async () => {
  expect(await fieldsWith(undefined)).toEqual(["traceparent", "tracestate", "baggage"]);
  expect(await fieldsWith("baggage")).toEqual(["baggage"]);
  expect(await fieldsWith("tracecontext")).toEqual(["traceparent", "tracestate"]);
  expect(await fieldsWith("none")).toEqual([]);
});

it("refuses a propagator it does not build in, naming the ones it does", () => {
  process.env.OTEL_PROPAGATORS = "tracecontext,b3";
  expect(() => startTelemetry({ serviceName: "propagators-test" })).toThrow(
    /OTEL_PROPAGATORS names "b3": Quartet propagates tracecontext and baggage/,
  );
  // Refused before anything global was set.
  expect(propagation.fields()).toEqual([]);
});

it("logs the SDK's own messages to the console at OTEL_LOG_LEVEL until shutdown, and none without it", () => {
  // In a process of its own: the test runner stands in for the console.
  const script = [
    `import { diag } from "@opentelemetry/api";`,
    `import { startTelemetry } from ${JSON.stringify(fileURLToPath(new URL("../src/index.ts", import.meta.url)))};`,
    `const t = startTelemetry({ serviceName: "log-level-test" });`,
    `diag.debug("a debug message");`,
    `await t.shutdown();`,
    `diag.debug("a message after shutdown");`,
  ].join("\n");
  const run = (env: Record<string, string>) =>
    execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      // (undefined leaves a variable out, whatever the runner's environment holds)
      env: { ...process.env, OTEL_SDK_DISABLED: "true", OTEL_LOG_LEVEL: undefined, ...env },
      encoding: "utf8",
    });
  const logged = run({ OTEL_LOG_LEVEL: "debug" });
  expect(logged).toContain("a debug message");
  // shutdown() leaves the console logger no more set than the other globals.
  expect(logged).not.toContain("a message after shutdown");
  expect(run({})).not.toContain("a debug message");
});
