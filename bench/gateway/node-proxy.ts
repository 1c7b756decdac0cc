// The floor of any proxy written on Node, as a side of the gateway bench: Node's HTTP/1.1 and
// HTTP/2 servers on one port, each request held whole and sent to the next worker (round
// robin) over undici's keep-alive HTTP/1.1 pool, as the gateway sends unary calls, and the
// answer relayed with its length. Nothing else: no limits, deadlines, retries, breakers,
// health checks, figures or tracing. What the gateway costs beyond this is its own; what this
// costs is the runtime's.
//
// Run as a process: `node node-proxy.ts --route <service>=<url>,<url>,...`; it logs
// {"msg":"listening","url":...} as the services do.
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { type Dispatcher, Pool } from "undici";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

const route = process.argv[process.argv.indexOf("--route") + 1] ?? "";
const pools = route
  .slice(route.indexOf("=") + 1)
  .split(",")
  .map((url) => new Pool(url));
if (pools.length === 0) throw new Error("usage: node-proxy.ts --route <service>=<url>,<url>,...");
let next = 0;

/** Headers that belong to one connection (RFC 9110, 7.6.1) or that undici writes itself. */
const perConnection = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "host",
  "content-length",
  "http2-settings",
]);

function forwarded(headers: http.IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && name.charCodeAt(0) !== 58 /* ":" */ && !perConnection.has(name))
      out[name] = value;
  }
  return out;
}

function proxy(req: Request, res: Response): void {
  const body: Buffer[] = [];
  req.on("data", (chunk: Buffer) => body.push(chunk));
  req.on("end", () => {
    const pool = pools[next++ % pools.length]!;
    let status = 0;
    let headers: http.IncomingHttpHeaders = {};
    const answer: Buffer[] = [];
    const handler: Dispatcher.DispatchHandler = {
      // undici requires it; there is nothing to cancel.
      onRequestStart() {},
      onResponseStart(_controller, statusCode, h) {
        status = statusCode;
        headers = h;
      },
      onResponseData(_controller, chunk) {
        answer.push(chunk);
      },
      onResponseEnd() {
        const whole = Buffer.concat(answer);
        const out = forwarded(headers);
        out["content-length"] = String(whole.length);
        (res as http.ServerResponse).writeHead(status, out);
        res.end(whole);
      },
      onResponseError(_controller, error) {
        (res as http.ServerResponse).writeHead(502);
        res.end(error.message);
      },
    };
    pool.dispatch(
      {
        method: (req.method ?? "POST") as Dispatcher.HttpMethod,
        path: req.url ?? "/",
        headers: forwarded(req.headers),
        body: Buffer.concat(body),
      },
      handler,
    );
  });
}

const h1 = http.createServer({ keepAliveTimeout: 60_000 }, proxy);
const h2 = http2.createServer(proxy);
const preface = "PRI * HTTP/2.0";
// One port for both, as the gateway: an HTTP/2 client opens with the connection preface.
const server = net.createServer({ noDelay: true }, (socket) => {
  let seen = Buffer.alloc(0);
  const sniff = (chunk: Buffer) => {
    seen = Buffer.concat([seen, chunk]);
    if (seen.length < preface.length) return;
    socket.off("data", sniff);
    socket.pause();
    socket.unshift(seen);
    const isH2 = seen.subarray(0, preface.length).toString("latin1") === preface;
    (isH2 ? h2 : h1).emit("connection", socket);
    if (!isH2) socket.resume();
  };
  socket.on("data", sniff);
});
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as net.AddressInfo;
  console.log(JSON.stringify({ msg: "listening", url: `http://127.0.0.1:${port}` }));
});
process.on("SIGTERM", () => process.exit(0));
