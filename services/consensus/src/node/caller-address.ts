import { type ContextValues, createContextKey, createContextValues } from "@connectrpc/connect";
import type { NodeHandler } from "@quartet/server";

/** The IP address a call came from (per-client limits key on it). */
export const callerAddress = createContextKey<string>("unknown", {
  description: "the caller's IP address",
});

/** serve()'s `contextValues`: every call's context knows the address it came from. */
export function callerContext(req: Parameters<NodeHandler>[0]): ContextValues {
  return createContextValues().set(callerAddress, req.socket?.remoteAddress ?? "unknown");
}
