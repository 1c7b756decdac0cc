import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
import { endCallWithError } from "./call-error.ts";
import type { LimitLog } from "./limit-log.ts";
import type { Limits } from "./limits.ts";
import { LiveSet } from "./live-set.ts";
import type { RpcHandler } from "./node-adapter.ts";
import {
  clientGone,
  type NodeRequest as Request,
  type NodeResponse as Response,
} from "./node-http.ts";

export type ArrivalLimits = Pick<
  Limits,
  | "maxRequestBytes"
  | "maxUnfinishedRequests"
  | "requestArrivalTimeoutMs"
  | "maxBufferedBytesPerConnection"
  | "maxBufferedBytes"
>;

/** A gRPC or Connect envelope's prefix: flags and length. */
const envelopePrefixBytes = 5;

/**
 * Holds a call whose request is a single message (unary and server-streaming methods, named
 * by their paths in `singleMessagePaths`) until that message has arrived in full, and only then
 * passes it to `next`, so a request that never finishes costs its bytes and nothing else:
 *
 * - it must arrive within the arrival deadline, or the call's own deadline (grpc-timeout,
 *   connect-timeout-ms) if that is sooner: the call's deadline runs from its first byte, and
 *   the handler is told only what is left of it;
 * - its bytes count against budgets per connection and over the process;
 * - at most `maxUnfinishedRequests` wait at once; beyond, the one waiting longest is dropped,
 *   so a crowd of requests that never finish cannot keep out the ones that arrive at once.
 *
 * Streaming requests (client-streaming, bidi) go straight on: their body is a stream that may
 * rightly keep coming for hours, and they count as calls from their first byte.
 */
export function createRequestArrival(
  limits: ArrivalLimits,
  singleMessagePaths: ReadonlySet<string>,
  warn: LimitLog,
) {
  // Each one's fail(); the oldest has waited longest.
  const unfinished = new LiveSet<(error: ConnectError) => void>();
  const bufferedPerConnection = new WeakMap<object, number>();
  let buffered = 0;
  const maxBodyBytes = limits.maxRequestBytes + envelopePrefixBytes;

  return function receive(req: Request, res: Response, next: RpcHandler): void {
    const path = req.url?.split("?", 1)[0] ?? "";
    if (!singleMessagePaths.has(path) || req.complete) {
      next(req, res);
      return;
    }
    const start = performance.now();
    const callTimeoutMs = requestedTimeoutMs(req);
    const waitMs = Math.min(limits.requestArrivalTimeoutMs, callTimeoutMs ?? Infinity);
    const connection = "stream" in req ? req.stream.session : req.socket;
    const chunks: Buffer[] = [];
    let bytes = 0;

    const release = () => {
      clearTimeout(timer);
      req.off("data", onData);
      req.off("end", onEnd);
      res.off("close", onClose);
      leave();
      buffered -= bytes;
      if (connection) {
        bufferedPerConnection.set(connection, (bufferedPerConnection.get(connection) ?? 0) - bytes);
      }
    };
    const fail = (error: ConnectError) => {
      release();
      chunks.length = 0;
      endCallWithError(req, res, error);
    };
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      buffered += chunk.length;
      const ofConnection = (bufferedPerConnection.get(connection ?? req) ?? 0) + chunk.length;
      if (connection) bufferedPerConnection.set(connection, ofConnection);
      chunks.push(chunk);
      if (bytes > maxBodyBytes) {
        fail(
          new ConnectError(
            `request body is larger than ${maxBodyBytes} bytes (--max-request-bytes ${limits.maxRequestBytes} plus its 5-byte prefix)`,
            Code.ResourceExhausted,
          ),
        );
      } else if (ofConnection > limits.maxBufferedBytesPerConnection) {
        const message = `this connection's unfinished requests hold more than ${limits.maxBufferedBytesPerConnection} bytes (--max-buffered-bytes-per-connection); send fewer large requests at once`;
        warn("buffered-bytes-per-connection", {}, message);
        fail(new ConnectError(message, Code.ResourceExhausted));
      } else if (buffered > limits.maxBufferedBytes) {
        const message = `the server's unfinished requests hold more than ${limits.maxBufferedBytes} bytes (--max-buffered-bytes); retry later`;
        warn("buffered-bytes", {}, message);
        fail(new ConnectError(message, Code.ResourceExhausted));
      }
    };
    const onEnd = () => {
      release();
      // A reset HTTP/2 stream ends its request too: there is no one left to answer.
      if (clientGone(req)) return;
      if (callTimeoutMs !== undefined)
        tellRemaining(req, callTimeoutMs - (performance.now() - start));
      // The body is read: the handler takes it as it is.
      next(req, res, chunks);
    };
    const onClose = () => release();
    const timer = setTimeout(() => {
      const message =
        callTimeoutMs !== undefined && callTimeoutMs <= limits.requestArrivalTimeoutMs
          ? `the call's deadline of ${callTimeoutMs} ms passed while its request was still arriving (${bytes} bytes so far)`
          : `the request did not arrive in full within ${limits.requestArrivalTimeoutMs} ms (--request-arrival-timeout-ms; ${bytes} bytes so far); send the whole request promptly`;
      warn("request-arrival", { path }, message);
      fail(new ConnectError(message, Code.DeadlineExceeded));
    }, waitMs);

    if (unfinished.size >= limits.maxUnfinishedRequests) {
      const message = `the server has ${limits.maxUnfinishedRequests} requests still arriving (--max-unfinished-requests) and dropped this one, which waited longest; send the whole request promptly`;
      warn("unfinished-requests", {}, message);
      unfinished.oldest()?.(new ConnectError(message, Code.ResourceExhausted));
    }
    const leave = unfinished.add(fail);
    req.on("data", onData);
    req.once("end", onEnd);
    res.once("close", onClose);
  };
}

/** The deadline the client asked for, in ms; undefined when it asked for none or a bad one. */
function requestedTimeoutMs(req: Request): number | undefined {
  const grpc = req.headers["grpc-timeout"];
  if (typeof grpc === "string") return parseGrpcTimeout(grpc, Number.MAX_SAFE_INTEGER).timeoutMs;
  const connect = req.headers["connect-timeout-ms"];
  if (typeof connect === "string") {
    return parseConnectTimeout(connect, Number.MAX_SAFE_INTEGER).timeoutMs;
  }
  return undefined;
}

/** Rewrites the request's deadline header to what is left of it, for the handler to apply. */
function tellRemaining(req: Request, remainingMs: number): void {
  const ms = Math.max(1, Math.floor(remainingMs));
  if (typeof req.headers["grpc-timeout"] === "string") req.headers["grpc-timeout"] = `${ms}m`;
  else req.headers["connect-timeout-ms"] = String(ms);
}
