import {
  type Context,
  context,
  createContextKey,
  propagation,
  ROOT_CONTEXT,
  type Span,
  trace,
} from "@opentelemetry/api";
import {
  CompositePropagator,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from "@opentelemetry/core";
import { afterEach, beforeEach, expect, it } from "vitest";
import {
  CALL_CONTEXT_KEY,
  currentCall,
  ensureContextManager,
  HandlerCallContext,
} from "../src/call-context.ts";
import { RpcSystem } from "../src/rpc-semantics.ts";

const A = createContextKey("test.a");
const B = createContextKey("test.b");
const signal = new AbortController().signal;

beforeEach(() => {
  propagation.setGlobalPropagator(
    new CompositePropagator({
      propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
    }),
  );
});
afterEach(() => propagation.disable());

/** A call with the given request headers, arrived now. */
const callWith = (
  headers: Record<string, string>,
  options: { system?: RpcSystem; caller?: Context; span?: Span } = {},
) =>
  new HandlerCallContext(
    new Headers(headers),
    options.system ?? RpcSystem.connect,
    performance.now(),
    signal,
    "pkg.S/M",
    options.caller,
    options.span,
  );

it("a handler call context behaves as an immutable OTel Context over its caller's", () => {
  const call = callWith({}, { caller: ROOT_CONTEXT.setValue(A, 1) });
  expect(call.getValue(CALL_CONTEXT_KEY)).toBe(call);
  expect(call.getValue(A)).toBe(1);
  expect(call.getValue(B)).toBeUndefined();

  const child = call.setValue(B, 2);
  expect(child.getValue(B)).toBe(2);
  expect(child.getValue(A)).toBe(1);
  expect(child.getValue(CALL_CONTEXT_KEY)).toBe(call);
  expect(call.getValue(B)).toBeUndefined();

  const withoutA = child.deleteValue(A);
  expect(withoutA.getValue(A)).toBeUndefined();
  expect(withoutA.getValue(B)).toBe(2);
  expect(child.getValue(A)).toBe(1);
  // Setting the call key again hides the call, like any other key.
  expect(call.setValue(CALL_CONTEXT_KEY, undefined).getValue(CALL_CONTEXT_KEY)).toBeUndefined();
});

it("reads the caller's trace context and baggage from the request headers", () => {
  const call = callWith({
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    baggage: "tenant=acme",
  });
  const remote = trace.getSpanContext(call);
  expect(remote?.traceId).toBe("0af7651916cd43dd8448eb211c80319c");
  expect(remote?.spanId).toBe("b7ad6b7169203331");
  expect(remote?.isRemote).toBe(true);
  expect(propagation.getBaggage(call)?.getEntry("tenant")?.value).toBe("acme");
  expect(trace.getSpan(callWith({}))).toBeUndefined();
});

it("carries the call's span, or else the caller's, as the active span", () => {
  const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const own = trace.wrapSpanContext({
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: "00f067aa0ba902b7",
    traceFlags: 1,
  });
  expect(trace.getSpan(callWith({ traceparent }, { span: own }))).toBe(own);
  expect(trace.getSpanContext(callWith({ traceparent }))?.spanId).toBe("b7ad6b7169203331");
  const call = callWith({}, { span: own });
  expect(trace.getSpan(trace.deleteSpan(call))).toBeUndefined();
  const other = trace.wrapSpanContext({ ...own.spanContext(), spanId: "1111111111111111" });
  expect(trace.getSpan(trace.setSpan(call, other))).toBe(other);
});

it("takes its deadline from the request's timeout, counted from the request's arrival", () => {
  const before = Date.now();
  const connect = callWith({ "connect-timeout-ms": "5000" }).deadline;
  const grpc = callWith({ "grpc-timeout": "2S" }, { system: RpcSystem.grpc }).deadline;
  const after = Date.now();
  // The deadline is derived from two clocks; allow their millisecond rounding.
  expect(connect).toBeGreaterThanOrEqual(before + 5000 - 1);
  expect(connect).toBeLessThanOrEqual(after + 5000 + 1);
  expect(grpc).toBeGreaterThanOrEqual(before + 2000 - 1);
  expect(grpc).toBeLessThanOrEqual(after + 2000 + 1);
  expect(callWith({}).deadline).toBeUndefined();
  expect(callWith({ "connect-timeout-ms": "soon" }).deadline).toBeUndefined();
  // A Connect request's grpc-timeout header is not its timeout.
  expect(callWith({ "grpc-timeout": "2S" }).deadline).toBeUndefined();
});

it("currentCall() returns the handler call whose context is active", async () => {
  ensureContextManager();
  const call = callWith({});
  const seen = await context.with(call, async () => {
    await Promise.resolve();
    return currentCall();
  });
  expect(seen).toBe(call);
  expect(seen?.procedure).toBe("pkg.S/M");
  expect(seen?.signal).toBe(signal);
  expect(currentCall()).toBeUndefined();
});
