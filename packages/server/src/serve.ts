import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import { Health } from "@quartet/proto/health/v1/health_pb";
import { createServerInterceptors, type Telemetry } from "@quartet/telemetry";
import { type AuthOptions, createAuthGate } from "./auth.ts";
import { createCallBudgets } from "./call-budgets.ts";
import type { ConfigOf, serverSettings } from "./config.ts";
import { type AllowedOrigins, createCors, localhostOrigins } from "./cors.ts";
import { applyDefaultTimeout } from "./default-timeout.ts";
import { HealthRegistry } from "./health.ts";
import { guardHttp2ClientSessions } from "./http2-client-guard.ts";
import { InFlightCalls } from "./in-flight-calls.ts";
import { createLimitLog } from "./limit-log.ts";
import { defaultLimits, type Limits } from "./limits.ts";
import { createListener, type NodeHandler, type TlsOptions } from "./listener.ts";
import { LiveSet } from "./live-set.ts";
import { createLogger, type Logger } from "./logger.ts";
import { createNodeAdapter } from "./node-adapter.ts";
import { registerReflection } from "./reflection.ts";
import { createRequestArrival } from "./request-arrival.ts";
import {
  checkEnvelopeFlagsOf,
  createDecodeErrorGate,
  requestCompressions,
  strictJson,
} from "./request-errors.ts";

export interface ServeOptions {
  /** Service name for logs, e.g. "quartet-worker". */
  name: string;
  /** Registers the service implementations, as for connectNodeAdapter. */
  routes: (router: ConnectRouter) => void;
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  tls?: TlsOptions;
  /** Browser origins allowed by CORS; default: localhost origins. */
  corsOrigins?: AllowedOrigins;
  limits?: Partial<Limits>;
  /** Internal and admin procedures that need the cluster credential. */
  auth?: AuthOptions;
  /** How long in-flight calls may take to finish after a shutdown begins. */
  drainTimeoutMs?: number;
  /** From startTelemetry(): serves /metrics, and is flushed on shutdown. */
  telemetry?: Telemetry;
  logger?: Logger;
  /** Extra interceptors, inside the tracing interceptor (which applies the call limit too). */
  interceptors?: Interceptor[];
  /**
   * Answers requests for paths no registered procedure serves (a gateway proxies them);
   * they still pass the listener's limits, CORS and /metrics. Default: 404.
   */
  fallback?: NodeHandler;
  /** Values each call's handler context starts with (e.g. the caller's address from `req.socket`). */
  contextValues?: (req: Parameters<NodeHandler>[0]) => ContextValues;
  /**
   * Response messages of at least this many bytes are compressed for a client that accepts
   * gzip or br. Default: none are. Compressed requests are accepted either way.
   */
  compressMinBytes?: number;
}

export interface Server {
  /** e.g. "http://127.0.0.1:7201" */
  readonly url: string;
  readonly port: number;
  readonly health: HealthRegistry;
  readonly logger: Logger;
  /**
   * Graceful shutdown: marks every service NOT_SERVING, stops accepting connections, lets
   * in-flight calls finish until the drain deadline, then aborts what is left.
   */
  close(): Promise<void>;
  /** Runs close() on SIGTERM or SIGINT, then exits 0 (1 if the shutdown failed). */
  closeOnSignals(): void;
}

/** Serves Connect, gRPC and gRPC-Web on one port, with health, reflection, CORS and limits. */
/**
 * The interceptor chain every Quartet server runs in front of its handlers: telemetry
 * (spans, durations, call context) applying the concurrency limit.
 */
export function serverInterceptors(limits: Pick<Limits, "maxConcurrentCalls">): Interceptor[] {
  // Health and reflection have a budget of their own: never starved by application calls.
  return createServerInterceptors({ admission: createCallBudgets(limits.maxConcurrentCalls) });
}

export async function serve(options: ServeOptions): Promise<Server> {
  const logger = options.logger ?? createLogger(options.name);
  guardHttp2ClientSessions(logger);
  const limits = { ...defaultLimits, ...options.limits };
  let health: HealthRegistry | undefined;
  // Paths of the methods whose request is one message (unary, server-streaming).
  const singleMessagePaths = new Set<string>();
  // Paths of unary methods: they get the server's max timeout when they come without one.
  const unaryPaths = new Set<string>();

  const interceptors = [...serverInterceptors(limits), ...(options.interceptors ?? [])];
  const decodeErrors = createDecodeErrorGate(options.auth && createAuthGate(options.auth));
  // connect-node's adapter with two per-call costs taken out (node-adapter.ts).
  const rpc = createNodeAdapter({
    routes: (router) => {
      options.routes(router);
      const services = uniqueServices(router.handlers.map((h) => h.service));
      health = new HealthRegistry(services.map((s) => s.typeName));
      router.service(Health, health.service());
      registerReflection(router, [...services, Health]);
      for (const h of router.handlers) {
        const kind = h.method.methodKind;
        if (kind === "unary" || kind === "server_streaming") singleMessagePaths.add(h.requestPath);
        if (kind === "unary") unaryPaths.add(h.requestPath);
      }
      decodeErrors.learn(services);
    },
    checkBody: checkEnvelopeFlagsOf,
    jsonOptions: strictJson,
    acceptCompression: requestCompressions,
    // Quartet's services talk over a LAN, where compressing costs the server more than it
    // saves (a consensus leader gzipping every watch batch once per watcher); connect would
    // compress any response message of 1 KiB or more.
    compressMinBytes: options.compressMinBytes ?? Number.POSITIVE_INFINITY,
    interceptors,
    readMaxBytes: limits.maxRequestBytes,
    writeMaxBytes: limits.maxResponseBytes,
    maxTimeoutMs: limits.maxTimeoutMs,
    // No shutdownSignal: connect would link every call's signal to it (a listener and an
    // abort per call). Destroying the connections at the drain deadline aborts the calls
    // still running just as well.
    requestGate: decodeErrors.gate,
    fallback: options.fallback ?? notFound,
    ...(options.contextValues ? { contextValues: options.contextValues } : {}),
    onError: (err, handler) =>
      logger.error(
        { err, procedure: `${handler.service.typeName}/${handler.method.name}` },
        "handler failed after its response had started",
      ),
  });
  const registry = health!;
  const cors = createCors(options.corsOrigins ?? localhostOrigins);
  const metrics = options.telemetry?.metricsHandler;
  const inFlight = new InFlightCalls();
  const arrival = createRequestArrival(limits, singleMessagePaths, createLimitLog(logger));
  const handle: NodeHandler = (req, res) => {
    if (cors(req, res)) return;
    if (metrics && req.url === "/metrics" && req.method === "GET") return metrics(req, res);
    inFlight.track(req, res);
    if (unaryPaths.has(pathOf(req.url))) applyDefaultTimeout(req.headers, limits.maxTimeoutMs);
    arrival(req, res, rpc);
  };
  const listener = createListener(handle, limits, options.tls, logger);

  const sockets = new LiveSet<Socket>();
  listener.server.on("connection", (socket: Socket) => {
    socket.once("close", sockets.add(socket));
  });

  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    listener.server.once("error", reject);
    listener.server.listen(options.port ?? 0, host, () => {
      listener.server.off("error", reject);
      resolve();
    });
  });
  const address = listener.server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  const url = `${options.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
  logger.info({ url, services: [...registryNames(registry)] }, "listening");

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= drain();
    return closing;
  };

  async function drain(): Promise<void> {
    const drainTimeoutMs = options.drainTimeoutMs ?? 10_000;
    logger.info({ drainTimeoutMs }, "shutting down: NOT_SERVING, draining in-flight calls");
    registry.shutdown();
    const closed = new Promise<void>((resolve) => listener.server.close(() => resolve()));
    for (const session of listener.sessions.values()) session.close();
    // Keep-alive HTTP/1.1 connections close as soon as their in-flight request is answered.
    const idleSweep = setInterval(() => listener.http1?.closeIdleConnections(), 50);
    listener.http1?.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<"deadline">((resolve) => {
      timer = setTimeout(() => resolve("deadline"), drainTimeoutMs);
    });
    if ((await Promise.race([closed, deadline])) === "deadline") {
      logger.warn(
        { open: sockets.size, calls: inFlight.size },
        "drain deadline passed: ending the calls still running with Unavailable",
      );
      // Each client is told its call failed; closing the connections alone would end its
      // stream with no status, which a client may wait on forever.
      inFlight.endAll(
        new ConnectError(
          `server is shutting down and the call outlived its drain deadline of ${drainTimeoutMs} ms; retry on another instance`,
          Code.Unavailable,
        ),
      );
      // The sessions, told GOAWAY at the start, close once those answers are out; a peer too
      // slow to take them has a second before its connection is cut.
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise((resolve) => (grace = setTimeout(resolve, 1000)))]);
      clearTimeout(grace);
      for (const session of listener.sessions.values()) session.destroy();
      for (const socket of sockets.values()) socket.destroy();
      await closed;
    }
    clearTimeout(timer);
    clearInterval(idleSweep);
    await options.telemetry?.shutdown();
    logger.info("stopped");
  }

  return {
    url,
    port,
    health: registry,
    logger,
    close,
    closeOnSignals() {
      const onSignal = (signal: NodeJS.Signals) => {
        logger.info({ signal }, "signal received");
        close().then(
          () => process.exit(0),
          (e: unknown) => {
            logger.error({ err: e }, "shutdown failed");
            process.exit(1);
          },
        );
      };
      process.once("SIGTERM", onSignal);
      process.once("SIGINT", onSignal);
    },
  };
}

/** serve() options from the shared settings (`serverSettings`) of a parsed config. */
export function serveOptionsFrom(config: ConfigOf<typeof serverSettings>): Partial<ServeOptions> {
  return {
    host: config.host,
    port: config.port,
    ...(config.tlsCert && config.tlsKey
      ? { tls: { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) } }
      : {}),
    ...(config.corsOrigins ? { corsOrigins: config.corsOrigins } : {}),
    limits: {
      maxRequestBytes: config.maxRequestBytes,
      maxTimeoutMs: config.maxTimeoutMs,
      maxConcurrentStreams: config.maxConcurrentStreams,
      maxConcurrentCalls: config.maxConcurrentCalls,
      maxHeaderBytes: config.maxHeaderBytes,
      maxConnections: config.maxConnections,
      maxConnectionsPerPeer: config.maxConnectionsPerPeer,
      maxStreams: config.maxStreams,
      maxUnfinishedRequests: config.maxUnfinishedRequests,
      requestArrivalTimeoutMs: config.requestArrivalTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      maxResetsPerConnection: config.maxResetsPerConnection,
      maxResets: config.maxResets,
      maxBufferedBytesPerConnection: config.maxBufferedBytesPerConnection,
      maxBufferedBytes: config.maxBufferedBytes,
    },
    drainTimeoutMs: config.drainTimeoutMs,
    ...(config.compressMinBytes !== undefined ? { compressMinBytes: config.compressMinBytes } : {}),
  };
}

/** connect-node's answer to a path no procedure serves. */
const notFound: NodeHandler = (_req, res) => {
  res.statusCode = 404;
  res.end();
};

/** The path of a request target, without its query (Connect GET requests carry one). */
function pathOf(url: string | undefined): string {
  if (url === undefined) return "";
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}

function uniqueServices(services: DescService[]): DescService[] {
  return [...new Map(services.map((s) => [s.typeName, s])).values()];
}

function* registryNames(health: HealthRegistry): Iterable<string> {
  for (const name of health.names()) if (name) yield name;
}
