import { context, createContextKey, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { expect, it } from "vitest";
import {
  CALL_CONTEXT_KEY,
  currentCall,
  ensureContextManager,
  HandlerCallContext,
} from "../src/call-context.ts";

const A = createContextKey("test.a");
const B = createContextKey("test.b");

it("a handler call context behaves as an immutable OTel Context over its parent", () => {
  const signal = new AbortController().signal;
  const call = new HandlerCallContext(
    ROOT_CONTEXT.setValue(A, 1),
    undefined,
    signal,
    1234,
    "pkg.S/M",
  );
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

it("a handler call context carries the call's span, or else its parent's, as the active span", () => {
  const signal = new AbortController().signal;
  const remote = trace.wrapSpanContext({
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: "b7ad6b7169203331",
    traceFlags: 1,
    isRemote: true,
  });
  const own = trace.wrapSpanContext({
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: "00f067aa0ba902b7",
    traceFlags: 1,
  });
  const parent = trace.setSpan(ROOT_CONTEXT, remote);
  expect(trace.getSpan(new HandlerCallContext(parent, own, signal, undefined, "p.S/M"))).toBe(own);
  expect(trace.getSpan(new HandlerCallContext(parent, undefined, signal, undefined, "p.S/M"))).toBe(
    remote,
  );
  const call = new HandlerCallContext(ROOT_CONTEXT, own, signal, undefined, "p.S/M");
  expect(trace.getSpan(trace.deleteSpan(call))).toBeUndefined();
  expect(trace.getSpan(trace.setSpan(call, remote))).toBe(remote);
});

it("currentCall() returns the handler call whose context is active", async () => {
  ensureContextManager();
  const signal = new AbortController().signal;
  const call = new HandlerCallContext(ROOT_CONTEXT, undefined, signal, undefined, "pkg.S/M");
  const seen = await context.with(call, async () => {
    await Promise.resolve();
    return currentCall();
  });
  expect(seen).toBe(call);
  expect(seen?.procedure).toBe("pkg.S/M");
  expect(seen?.signal).toBe(signal);
  expect(currentCall()).toBeUndefined();
});
