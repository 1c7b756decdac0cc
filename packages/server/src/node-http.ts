import type http from "node:http";
import type http2 from "node:http2";

/** A request and response of node:http (HTTP/1.1) or of node:http2's compatibility API. */
export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/**
 * The reason of a signal aborted after its call ended normally: what `abort()` without a
 * reason gives (an AbortError), built once instead of once per call.
 */
export const endedCallReason = new DOMException("This operation was aborted", "AbortError");

/** The authority connect-node builds a request's URL from; without one it has no URL. */
export function authorityOf(req: NodeRequest): string | undefined {
  return "authority" in req ? req.authority : req.headers.host;
}

/** The request's absolute URL, as connect-node gives it to handlers. */
export function requestUrl(req: NodeRequest, authority: string): string {
  return new URL(req.url ?? "", `${scheme(req)}://${authority}`).toString();
}

function scheme(req: NodeRequest): "http" | "https" {
  return "encrypted" in req.socket && req.socket.encrypted ? "https" : "http";
}

/**
 * `requestUrl` that remembers the last URL it built: the calls of one method mostly come
 * with one authority and path, and parsing them into a URL is a few microseconds of a
 * small call's CPU.
 */
export function rememberingRequestUrl(): (req: NodeRequest, authority: string) => string {
  let last = { scheme: "", authority: "", path: "", url: "" };
  return (req, authority) => {
    const path = req.url ?? "";
    const s = scheme(req);
    if (path !== last.path || authority !== last.authority || s !== last.scheme) {
      last = { scheme: s, authority, path, url: requestUrl(req, authority) };
    }
    return last.url;
  };
}

/**
 * Node's request headers as Fetch API Headers, HTTP/2 pseudo-headers left out (as
 * connect-node), appended to `header` (new ones by default).
 */
export function webHeaders(
  headers: Readonly<http.IncomingHttpHeaders>,
  header: Headers = new Headers(),
): Headers {
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* ":" */) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === "string") header.append(name, value);
    else for (const v of value) header.append(name, v);
  }
  return header;
}

/** A header Node may give as a list (an unknown one sent twice) as connect sees it. */
export function headerValue(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return typeof value === "string" ? value : value.join(", ");
}

/** Fetch API Headers as Node's outgoing headers (as connect-node's own conversion). */
export function nodeHeaders(header: Headers): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  header.forEach((value, name) => {
    const existing = out[name];
    if (existing === undefined) out[name] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else out[name] = [String(existing), value];
  });
  return out;
}

/** The client went away: its HTTP/2 stream or HTTP/1.1 connection is gone. */
export function clientGone(req: NodeRequest): boolean {
  return "stream" in req ? req.stream.destroyed : req.socket.destroyed;
}
