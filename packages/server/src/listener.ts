import http from "node:http";
import http2 from "node:http2";
import net from "node:net";

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

export interface ListenerLimits {
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection. */
  maxConcurrentStreams: number;
  /** Largest request header block accepted, in bytes. */
  maxHeaderBytes: number;
}

/** The sockets behind one port, whatever protocol each connection speaks. */
export interface Listener {
  /** The server that owns the port. */
  readonly server: net.Server;
  /** Open HTTP/2 sessions, so shutdown can send them GOAWAY. */
  readonly sessions: Set<http2.Http2Session>;
  /** HTTP/1.1 server (cleartext or behind TLS), so shutdown can close its idle connections. */
  readonly http1: http.Server | undefined;
}

const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Flow-control windows: how much a peer may send before the server reads it. */
const streamWindowBytes = 1 << 20;
const connectionWindowBytes = 4 << 20;

/**
 * One TCP port for HTTP/1.1 and cleartext HTTP/2 with prior knowledge (h2c), or, given TLS
 * material, for TLS with ALPN (h2, http/1.1). In cleartext the first bytes of a connection tell
 * which protocol it speaks: an HTTP/2 client always opens with the connection preface.
 */
export function createListener(
  handler: NodeHandler,
  limits: ListenerLimits,
  tls: TlsOptions | undefined,
): Listener {
  const sessions = new Set<http2.Http2Session>();
  const trackSessions = (server: http2.Http2Server | http2.Http2SecureServer) =>
    server.on("session", (session) => {
      sessions.add(session);
      session.once("close", () => sessions.delete(session));
      // HTTP/2's default 64 KiB connection window stalls a busy stream (a publisher, a
      // subscription) on loopback long before the network is the limit.
      session.once("localSettings", () => session.setLocalWindowSize(connectionWindowBytes));
    });
  const settings = {
    maxConcurrentStreams: limits.maxConcurrentStreams,
    maxHeaderListSize: limits.maxHeaderBytes,
    initialWindowSize: streamWindowBytes,
  };
  const h2Options = { settings, maxSessionInvalidFrames: 1000 };
  // Each server is typed for its own request and response classes; the handler takes both.
  const h2Handler = handler as (
    req: http2.Http2ServerRequest,
    res: http2.Http2ServerResponse,
  ) => void;

  if (tls) {
    const server = http2.createSecureServer(
      {
        ...h2Options,
        cert: tls.cert,
        key: tls.key,
        allowHTTP1: true,
        ALPNProtocols: ["h2", "http/1.1"],
      },
      h2Handler,
    );
    trackSessions(server);
    return { server, sessions, http1: undefined };
  }

  const h2 = http2.createServer(h2Options, h2Handler);
  trackSessions(h2);
  const h1 = http.createServer({ maxHeaderSize: limits.maxHeaderBytes }, handler);
  // The HTTP/1.1 server never listens itself, but its connection tracking starts on
  // "listening": without it, header and request timeouts are not enforced and shutdown
  // cannot close idle keep-alive connections.
  h1.emit("listening");
  const server = net.createServer({ noDelay: true }, (socket) => sniff(socket, h1, h2));
  return { server, sessions, http1: h1 };
}

function sniff(socket: net.Socket, h1: http.Server, h2: http2.Http2Server): void {
  let seen: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, h2Preface.length);
    const isH2 = seen.subarray(0, n).equals(h2Preface.subarray(0, n));
    if (isH2 && seen.length < h2Preface.length) return; // need more bytes to decide
    socket.off("data", onData);
    socket.off("error", onEarlyError);
    socket.pause();
    socket.unshift(seen);
    // Each server takes over the socket and reads the unshifted bytes first.
    (isH2 ? h2 : h1).emit("connection", socket);
    if (!isH2) socket.resume();
  };
  const onEarlyError = () => socket.destroy();
  socket.on("data", onData);
  socket.on("error", onEarlyError);
}
