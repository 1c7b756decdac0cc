import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { Http2SessionManager, type Http2SessionOptions } from "@connectrpc/connect-node";

/**
 * Marks a call whose HTTP/2 stream was never opened: connecting failed (connection refused,
 * unreachable host) or the session died before the request went out. Such a call provably
 * never reached the server, so it can be retried elsewhere whatever the method's idempotency.
 */
export class RequestNotSentError extends Error {
  override readonly name = "RequestNotSentError";
}

/** True when `error` or anything in its `cause` chain is a `RequestNotSentError`. */
export function requestNotSent(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof RequestNotSentError) return true;
  }
  return false;
}

/**
 * One endpoint's HTTP/2 connection: connect-node's `Http2SessionManager` (keepalive PINGs,
 * reconnects), with failures to open a stream tagged as "request not sent".
 */
export class EndpointSession {
  readonly authority: string;
  readonly #manager: Http2SessionManager;

  constructor(baseUrl: string, options?: Http2SessionOptions) {
    this.#manager = new Http2SessionManager(baseUrl, options);
    this.authority = this.#manager.authority;
  }

  async request(
    method: string,
    path: string,
    headers: http2.OutgoingHttpHeaders,
    options: Omit<http2.ClientSessionRequestOptions, "signal">,
  ): Promise<http2.ClientHttp2Stream> {
    try {
      return await this.#manager.request(method, path, headers, options);
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new ConnectError(
        `${this.authority}: no connection, request not sent (${reason})`,
        Code.Unavailable,
        undefined,
        undefined,
        new RequestNotSentError(reason, { cause }),
      );
    }
  }

  notifyResponseByteRead(stream: http2.ClientHttp2Stream): void {
    this.#manager.notifyResponseByteRead(stream);
  }

  state(): ReturnType<Http2SessionManager["state"]> {
    return this.#manager.state();
  }

  /** Closes the connection and any stream still open on it. */
  close(): void {
    this.#manager.abort(new ConnectError("endpoint removed from the balancer", Code.Canceled));
  }
}
