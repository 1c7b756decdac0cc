import { readFileSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { type ServiceProcess, startServiceProcess } from "../src/testing/index.ts";

const serveChild = fileURLToPath(new URL("./fixtures/serve-child.ts", import.meta.url));

const started: ServiceProcess[] = [];
/** Kills every server startServer() started; for afterEach. */
export async function stopServers(): Promise<void> {
  await Promise.all(started.splice(0).map((p) => p.kill()));
}

/** A real serve() process on a free loopback port, with server flags; killed after the test. */
export async function startServer(flags: string[] = []): Promise<ServiceProcess> {
  const server = await startServiceProcess(serveChild, ["--port", "0", ...flags], {
    env: { QUARTET_LOG_LEVEL: "info" },
  });
  started.push(server);
  return server;
}

/** Resident set size of a process, in MiB (Linux). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
  return kib / 1024;
}

/**
 * Attack traffic comes from another loopback address than the test's own calls, so limits per
 * peer can tell the two apart, as they would tell an attacker from everyone else.
 */
export const attacker = "127.0.0.2";

/** An HTTP/2 session (h2c) from `localAddress`, connecting. */
export function h2Connect(url: string, localAddress?: string): http2.ClientHttp2Session {
  const { hostname, port } = new URL(url);
  const session = http2.connect(url, {
    createConnection: () =>
      net.connect({
        host: hostname,
        port: Number(port),
        ...(localAddress ? { localAddress } : {}),
      }),
  });
  session.on("error", () => {});
  return session;
}

/** An HTTP/2 session that has finished its handshake. */
export async function h2Session(
  url: string,
  localAddress?: string,
): Promise<http2.ClientHttp2Session> {
  const session = h2Connect(url, localAddress);
  await new Promise<void>((resolve, reject) => {
    session.once("connect", () => resolve());
    session.once("close", () => reject(new Error("session closed before it connected")));
  });
  return session;
}

/** A plain TCP connection. */
export async function tcp(port: number, localAddress?: string): Promise<net.Socket> {
  const socket = net.connect({
    port,
    host: "127.0.0.1",
    ...(localAddress ? { localAddress } : {}),
  });
  socket.on("error", () => {});
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  return socket;
}

/** Everything a socket receives until the server closes it. */
export function readUntilClosed(socket: net.Socket): Promise<string> {
  let text = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    text += chunk;
  });
  return new Promise((resolve) => socket.once("close", () => resolve(text)));
}

export const computePath = "/quartet.worker.v1.WorkerService/Compute";

/** Request headers of a gRPC call to Compute. */
export function grpcHeaders(extra: http2.OutgoingHttpHeaders = {}): http2.OutgoingHttpHeaders {
  return {
    ":method": "POST",
    ":path": computePath,
    "content-type": "application/grpc",
    te: "trailers",
    ...extra,
  };
}

/** The status headers of a trailers-only gRPC response (or the response headers). */
export function responseOf(stream: http2.ClientHttp2Stream): Promise<http2.IncomingHttpHeaders> {
  stream.on("error", () => {});
  stream.resume();
  return new Promise((resolve, reject) => {
    stream.once("response", resolve);
    stream.once("close", () =>
      reject(new Error(`stream closed (rst ${stream.rstCode}) without a response`)),
    );
  });
}

/** A normal call, as any client would make it, from the test's own address. */
export async function normalCall(url: string, input: string): Promise<string> {
  const client = createClient(WorkerService, createGrpcTransport({ baseUrl: url }));
  // Bounded, so a call the server never answers fails its test with a reason, not a timeout.
  return (await client.compute({ input }, { timeoutMs: 10_000 })).digest;
}
