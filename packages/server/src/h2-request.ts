import type http2 from "node:http2";
import { constants } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { endedCallReason } from "./node-http.ts";

/**
 * A controller for the signal of an HTTP/2 request's call, aborted when the request's stream
 * closes. connect-node aborts it without a reason, which makes Node build a `DOMException`
 * (a stack trace) per call; here a clean close gives the shared `endedCallReason`, and a
 * reset stream the ConnectError connect-node gives for its code.
 */
export function abortedOnClose(req: http2.Http2ServerRequest): AbortController {
  const controller = new AbortController();
  req.once("close", () => controller.abort(resetError(req.stream.rstCode) ?? endedCallReason));
  return controller;
}

/** What connect-node reports for an HTTP/2 stream reset with each error code. */
const resetCodes = new Map<number, [string, Code]>([
  [constants.NGHTTP2_PROTOCOL_ERROR, ["PROTOCOL_ERROR", Code.Internal]],
  [constants.NGHTTP2_INTERNAL_ERROR, ["INTERNAL_ERROR", Code.Internal]],
  [constants.NGHTTP2_FLOW_CONTROL_ERROR, ["FLOW_CONTROL_ERROR", Code.Internal]],
  [constants.NGHTTP2_SETTINGS_TIMEOUT, ["SETTINGS_TIMEOUT", Code.Internal]],
  [constants.NGHTTP2_FRAME_SIZE_ERROR, ["FRAME_SIZE_ERROR", Code.Internal]],
  [constants.NGHTTP2_COMPRESSION_ERROR, ["COMPRESSION_ERROR", Code.Internal]],
  [constants.NGHTTP2_CONNECT_ERROR, ["CONNECT_ERROR", Code.Internal]],
  [constants.NGHTTP2_REFUSED_STREAM, ["REFUSED_STREAM", Code.Unavailable]],
  [constants.NGHTTP2_CANCEL, ["CANCEL", Code.Canceled]],
  [constants.NGHTTP2_ENHANCE_YOUR_CALM, ["ENHANCE_YOUR_CALM", Code.ResourceExhausted]],
  [constants.NGHTTP2_INADEQUATE_SECURITY, ["INADEQUATE_SECURITY", Code.PermissionDenied]],
  [constants.NGHTTP2_HTTP_1_1_REQUIRED, ["HTTP_1_1_REQUIRED", Code.PermissionDenied]],
]);

function resetError(rstCode: number): ConnectError | undefined {
  const known = resetCodes.get(rstCode);
  if (known === undefined) return undefined;
  return new ConnectError(
    `http/2 stream closed with error code ${known[0]} (0x${rstCode.toString(16)})`,
    known[1],
  );
}
