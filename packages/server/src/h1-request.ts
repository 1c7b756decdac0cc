import type http from "node:http";
import { endedCallReason } from "./node-http.ts";

/**
 * A controller for the signal of the call of an HTTP/1.1 request read in full, aborted when
 * its response closes, as connect-node's is (the request itself closes as soon as its body
 * is read, nodejs/node#40775). connect-node also listens for the request's errors, which give
 * the reason, but a request read in full has already been destroyed by Node at its 'end' and
 * can fail no more: a client that goes away mid-call just closes the response, and
 * connect-node aborts without a reason, which builds a `DOMException` per call. Here that is
 * the shared `endedCallReason`.
 */
export function abortedOnResponseClose(res: http.ServerResponse): AbortController {
  const controller = new AbortController();
  res.once("close", () => controller.abort(endedCallReason));
  return controller;
}
