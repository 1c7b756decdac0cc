import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { endCallWithError } from "./call-error.ts";
import { forgetClosedStream } from "./closed-stream.ts";
import { ConnectionLimit, http1Refusal, http2Refusal } from "./connection-limit.ts";
import { createLimitLog } from "./limit-log.ts";
import type { Limits } from "./limits.ts";
import { LiveSet } from "./live-set.ts";
import type { Logger } from "./logger.ts";
import { TokenBucket } from "./token-bucket.ts";

/** A request handler for both HTTP/1.1 and HTTP/2 requests. */
export type NodeHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** TLS material; with it the port speaks TLS and negotiates h2 or http/1.1 by ALPN. */
export interface TlsOptions {
  cert: string | Buffer;
  key: string | Buffer;
}

export type ListenerLimits = Pick<
  Limits,
  | "maxConcurrentStreams"
  | "maxHeaderBytes"
  | "maxConnections"
  | "maxConnectionsPerPeer"
  | "maxStreams"
  | "requestArrivalTimeoutMs"
  | "idleTimeoutMs"
  | "maxResetsPerConnection"
  | "maxResets"
>;

/** The sockets behind one port, whatever protocol each connection speaks. */
export interface Listener {
  /** The server that owns the port. */
  readonly server: net.Server;
  /** Open HTTP/2 sessions, so shutdown can send them GOAWAY. */
  readonly sessions: LiveSet<http2.Http2Session>;
  /** HTTP/1.1 server (cleartext or behind TLS), so shutdown can close its idle connections. */
  readonly http1: http.Server | undefined;
}

const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Flow-control windows: how much a peer may send before the server reads it. */
const streamWindowBytes = 1 << 20;
const connectionWindowBytes = 4 << 20;

/** Reset budgets are counted over this window, refilling continuously. */
const resetWindowMs = 10_000;
/**
 * A connection refused for a limit gets this long to show which protocol it speaks (so the
 * refusal can be one it understands), and at most this many wait at once; beyond, or
 * silent, it is closed without a word.
 */
const refusalGraceMs = 2_000;
const maxPendingRefusals = 256;

/**
 * One TCP port for HTTP/1.1 and cleartext HTTP/2 with prior knowledge (h2c), or, given TLS
 * material, for TLS with ALPN (h2, http/1.1). In cleartext the first bytes of a connection tell
 * which protocol it speaks: an HTTP/2 client always opens with the connection preface.
 *
 * The transport limits live here: connections in all and per peer, connections that stay
 * idle, requests in progress over the whole process, header blocks, and HTTP/2 streams the
 * client resets (the "rapid reset" attack), per connection and overall.
 */
export function createListener(
  handler: NodeHandler,
  limits: ListenerLimits,
  tls: TlsOptions | undefined,
  logger?: Logger,
): Listener {
  const warn = createLimitLog(logger);
  const guarded = guardRequests(handler, limits, warn);
  const sessions = new LiveSet<http2.Http2Session>();
  const resetsOverall = new TokenBucket(limits.maxResets, resetWindowMs);
  const trackSessions = (server: http2.Http2Server | http2.Http2SecureServer) =>
    server.on("session", (session) => {
      session.once("close", sessions.add(session));
      // HTTP/2's default 64 KiB connection window stalls a busy stream (a publisher, a
      // subscription) on loopback long before the network is the limit.
      session.once("localSettings", () => session.setLocalWindowSize(connectionWindowBytes));
      closeWhenIdle(session, limits.idleTimeoutMs);
      budgetResets(session, limits, resetsOverall, warn);
      session.on("stream", (stream: http2.ServerHttp2Stream) =>
        stream.once("close", () => forgetClosedStream(stream)),
      );
    });
  const settings = {
    maxConcurrentStreams: limits.maxConcurrentStreams,
    maxHeaderListSize: limits.maxHeaderBytes,
    initialWindowSize: streamWindowBytes,
  };
  const h2Options = { settings, maxSessionInvalidFrames: 1000 };
  // Each server is typed for its own request and response classes; the handler takes both.
  const h2Handler = guarded as (
    req: http2.Http2ServerRequest,
    res: http2.Http2ServerResponse,
  ) => void;
  const connections = new ConnectionLimit(limits);

  if (tls) {
    const server = http2.createSecureServer(
      {
        ...h2Options,
        cert: tls.cert,
        key: tls.key,
        allowHTTP1: true,
        ALPNProtocols: ["h2", "http/1.1"],
        // A client that never finishes its handshake is idle.
        handshakeTimeout: limits.idleTimeoutMs,
      },
      h2Handler,
    );
    // HTTP/1.1 behind TLS is served by this same server, which reads the HTTP/1.1 timeouts
    // from itself.
    Object.assign(server, http1Timeouts(limits));
    server.prependListener("connection", (socket: net.Socket) => {
      const refusal = connections.admit(socket);
      if (refusal === undefined) return;
      // Before the handshake there is no way to tell the client why.
      warn("connections", { peer: socket.remoteAddress }, refusal);
      socket.destroy();
    });
    trackSessions(server);
    return { server, sessions, http1: undefined };
  }

  const h2 = http2.createServer(h2Options, h2Handler);
  trackSessions(h2);
  const h1 = http.createServer(
    {
      maxHeaderSize: limits.maxHeaderBytes,
      // Expired header and keep-alive timers are looked for this often.
      connectionsCheckingInterval: Math.min(1000, limits.requestArrivalTimeoutMs),
      ...http1Timeouts(limits),
    },
    guarded,
  );
  Object.assign(h1, http1Timeouts(limits));
  h1.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) =>
    answerClientError(err, socket, limits),
  );
  // The HTTP/1.1 server never listens itself, but its connection tracking starts on
  // "listening": without it, header and request timeouts are not enforced and shutdown
  // cannot close idle keep-alive connections.
  h1.emit("listening");
  let pendingRefusals = 0;
  const server = net.createServer({ noDelay: true }, (socket) => {
    const refusal = connections.admit(socket);
    if (refusal === undefined) {
      sniff(socket, limits.idleTimeoutMs, (isH2) => (isH2 ? h2 : h1).emit("connection", socket));
      return;
    }
    warn("connections", { peer: socket.remoteAddress }, refusal);
    if (pendingRefusals >= maxPendingRefusals) {
      socket.destroy();
      return;
    }
    pendingRefusals++;
    socket.once("close", () => pendingRefusals--);
    sniff(socket, refusalGraceMs, (isH2) => {
      socket.removeAllListeners("data");
      socket.on("error", () => socket.destroy());
      socket.end(isH2 ? http2Refusal(refusal) : http1Refusal(refusal));
      socket.resume();
    });
  });
  return { server, sessions, http1: h1 };
}

/** HTTP/1.1: headers must arrive in time, and a kept-alive connection closes when idle. */
function http1Timeouts(limits: ListenerLimits) {
  return {
    headersTimeout: limits.requestArrivalTimeoutMs,
    // Bodies are held to the arrival deadline per call (request-arrival.ts), where a
    // streaming call's body is allowed to keep coming.
    requestTimeout: 0,
    keepAliveTimeout: limits.idleTimeoutMs,
  };
}

/**
 * Reads the first bytes of a connection to tell HTTP/2 from HTTP/1.1 and hands the socket on
 * with those bytes put back; a connection that does not say enough within `timeoutMs` is idle
 * and closed.
 */
function sniff(socket: net.Socket, timeoutMs: number, decided: (isH2: boolean) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, h2Preface.length);
    const isH2 = seen.subarray(0, n).equals(h2Preface.subarray(0, n));
    if (isH2 && seen.length < h2Preface.length) return; // need more bytes to decide
    clearTimeout(timer);
    socket.off("data", onData);
    socket.off("error", onEarlyError);
    socket.off("close", onClose);
    socket.pause();
    socket.unshift(seen);
    // Each server takes over the socket and reads the unshifted bytes first.
    decided(isH2);
    if (!isH2) socket.resume();
  };
  const onEarlyError = () => socket.destroy();
  const onClose = () => clearTimeout(timer);
  socket.on("data", onData);
  socket.on("error", onEarlyError);
  socket.once("close", onClose);
}

/**
 * Applies the per-request transport limits before `handler` sees a request: the process-wide
 * count of requests in progress, and the header block size on HTTP/2 (HTTP/1.1's parser
 * enforces the same number itself).
 */
function guardRequests(
  handler: NodeHandler,
  limits: ListenerLimits,
  warn: ReturnType<typeof createLimitLog>,
): NodeHandler {
  let inProgress = 0;
  return (req, res) => {
    if (inProgress >= limits.maxStreams) {
      const message = `server is at its limit of ${limits.maxStreams} requests in progress (--max-streams); retry later (this one was not started)`;
      warn("streams", { inProgress }, message);
      // Unavailable, not RST_STREAM REFUSED_STREAM: Connect clients report the latter as an
      // internal error, where this says what happened and that a retry is safe.
      endCallWithError(req, res, new ConnectError(message, Code.Unavailable));
      return;
    }
    if ("stream" in req) {
      const size = headerListSize(req.rawHeaders);
      if (size > limits.maxHeaderBytes) {
        const message = `request headers are ${size} bytes, over the limit of ${limits.maxHeaderBytes} (--max-header-bytes)`;
        warn("header-bytes", { size }, message);
        endCallWithError(req, res, new ConnectError(message, Code.ResourceExhausted));
        return;
      }
    }
    inProgress++;
    res.once("close", () => inProgress--);
    handler(req, res);
  };
}

/**
 * Header list size as HTTP/2 defines it (RFC 9113, 6.5.2): name + value + 32 per field.
 * Node decodes header bytes one to one into characters, so string lengths are byte counts.
 */
function headerListSize(rawHeaders: string[]): number {
  let size = 0;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    size += rawHeaders[i]!.length + rawHeaders[i + 1]!.length + 32;
  }
  return size;
}

/**
 * Closes an HTTP/2 session once it has had no open stream for `idleMs`. A stream in progress,
 * however quiet (a subscription waiting for messages), keeps the session open; pings do not.
 */
function closeWhenIdle(session: http2.Http2Session, idleMs: number): void {
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    timer = setTimeout(() => session.close(), idleMs);
  };
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open++;
    clearTimeout(timer);
    stream.once("close", () => {
      if (--open === 0 && !session.closed) arm();
    });
  });
  session.once("close", () => clearTimeout(timer));
  arm();
}

/** How long a connection cut for its resets may take to end the calls it has open. */
const cutGraceMs = 1_000;

/**
 * Counts streams the client resets (RST_STREAM with an error code), against a budget per
 * connection and one over all connections; a connection that overdraws either is sent GOAWAY
 * ENHANCE_YOUR_CALM and closed. (nghttp2 cuts one connection after about 1,000 resets by
 * itself; the process-wide budget stops the same attack spread over many connections.)
 */
function budgetResets(
  session: http2.Http2Session,
  limits: ListenerLimits,
  overall: TokenBucket,
  warn: ReturnType<typeof createLimitLog>,
): void {
  let own: TokenBucket | undefined;
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    stream.once("close", () => {
      // Any error code counts, whether or not the server had started to answer: a client
      // that sends END_STREAM and RST_STREAM at once still made the server start a call.
      if (stream.rstCode === http2.constants.NGHTTP2_NO_ERROR) return;
      if (session.closed || session.destroyed) return;
      own ??= new TokenBucket(limits.maxResetsPerConnection, resetWindowMs);
      const ownOk = own.take();
      const overallOk = overall.take();
      if (ownOk && overallOk) return;
      const message = ownOk
        ? `the server's budget of ${limits.maxResets} reset streams per 10 s over all connections is spent (--max-resets); closing this connection, which resets streams`
        : `this connection reset more than ${limits.maxResetsPerConnection} streams in 10 s (--max-resets-per-connection)`;
      warn(ownOk ? "resets" : "resets-per-connection", {}, message);
      session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, 0, Buffer.from(message));
      // Closed, not destroyed at once: a socket destroyed with the client's frames still
      // unread is reset by the kernel, and the client may lose the GOAWAY that says why.
      // New streams are refused from here; what is still open gets a moment to end.
      session.close();
      setTimeout(() => session.destroy(), cutGraceMs).unref();
    });
  });
}

/**
 * Node's answers to requests its HTTP/1.1 parser refuses, with a message for the header
 * limit (a listener replaces the default answer, so the others are kept as they were).
 */
function answerClientError(
  err: NodeJS.ErrnoException,
  socket: net.Socket,
  limits: ListenerLimits,
): void {
  if (!socket.writable || err.code === "ECONNRESET") {
    socket.destroy();
    return;
  }
  const [status, body] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? [
          "431 Request Header Fields Too Large",
          `request headers exceed the limit of ${limits.maxHeaderBytes} bytes (--max-header-bytes)\n`,
        ]
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [
            "408 Request Timeout",
            `request headers did not arrive within ${limits.requestArrivalTimeoutMs} ms (--request-arrival-timeout-ms)\n`,
          ]
        : ["400 Bad Request", ""];
  socket.end(
    `HTTP/1.1 ${status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
