import { propagation } from "@opentelemetry/api";
import { afterEach, expect, it } from "vitest";
import { startTelemetry } from "../src/index.ts";

// Which headers a call carries downstream follows OTEL_PROPAGATORS, as the SDK's own start does.
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
});
