import { readFileSync } from "node:fs";
import { type PickerKind, pickerKinds } from "@quartet/balancer";
import { ConsensusClient } from "@quartet/consensus-service/client";
import { createDashboardHandler, dashboardSettings } from "@quartet/dashboard/serve";
import { BalancerAdminService } from "@quartet/proto/quartet/balancer/v1/admin_pb";
import { closeOnSignals, consensusUrls, registerServer, registrySettings } from "@quartet/registry";
import {
  createLogger,
  loadClusterToken,
  loadConfig,
  serve,
  serveOptionsFrom,
  serverSettings,
} from "@quartet/server";
import { startTelemetry } from "@quartet/telemetry";
import { z } from "zod";
import { createAdminService } from "./admin-service.ts";
import { startDiscovery } from "./discovery.ts";
import { methodCatalog } from "./methods.ts";
import { openApiPage } from "./openapi-page.ts";
import { createProxy } from "./proxy.ts";
import { createRestHandler, sendRestNotFound } from "./rest.ts";
import { restRules } from "./rest-rules.ts";
import { Route } from "./route.ts";
import { parseRoutes } from "./routes-config.ts";

const config = loadConfig({
  name: "quartet-balancer",
  summary: "the gateway: proxies Connect, gRPC and gRPC-Web calls to the services' endpoints",
  settings: {
    ...serverSettings,
    ...dashboardSettings,
    ...registrySettings,
    port: {
      schema: z.coerce.number().int().min(0).max(65535).default(8080),
      help: "TCP port; 0 picks a free one.",
    },
    discovery: {
      schema: consensusUrls.optional(),
      help: "Consensus member URLs (comma-separated): routes come from the service registry there, live; --route and --routes-file still win for the services they name.",
      example: "http://127.0.0.1:7001,http://127.0.0.1:7002,http://127.0.0.1:7003",
    },
    route: {
      schema: z.string().optional(),
      help: "Static routes: service=url[,url...], several separated by ';'.",
      example: "quartet.worker.v1.WorkerService=http://127.0.0.1:7201,http://127.0.0.1:7202",
    },
    routesFile: {
      schema: z.string().optional(),
      help: 'JSON file of routes: [{"service","endpoints":[url],"picker"?,"hashHeader"?,"timeoutMs"?,"healthCheck"?}].',
    },
    picker: {
      schema: z.enum(pickerKinds as [PickerKind, ...PickerKind[]]).default("round_robin"),
      help: "Default picker of each route.",
    },
    hashHeader: {
      schema: z.string().min(1).optional(),
      help: "Request header keying ring_hash and maglev picks.",
    },
    routeTimeoutMs: {
      schema: z.coerce.number().int().min(1).default(30_000),
      help: "Cap on any call's duration through a route, whatever deadline the caller set.",
    },
    maxAttempts: {
      schema: z.coerce.number().int().min(1).max(10).default(3),
      help: "Endpoints one call may try (retries only when safe).",
    },
    rateLimit: {
      schema: z.coerce.number().min(0).default(0),
      help: "Calls per second each client may make (0: unlimited); past it, ResourceExhausted.",
    },
    rateBurst: {
      schema: z.coerce.number().int().min(1).optional(),
      help: "Token bucket size per client (default: one second's worth of --rate-limit).",
    },
    rateKeyHeader: {
      schema: z.string().min(1).optional(),
      help: "Key clients by this request header instead of their address.",
    },
  },
});

const telemetry = startTelemetry({ serviceName: "quartet-balancer" });
const logger = createLogger("quartet-balancer");
const clusterToken = loadClusterToken(config, "quartet-balancer");
const routes = new Map<string, Route>();
const routeDefaults = {
  picker: config.picker,
  timeoutMs: config.routeTimeoutMs,
  ...(config.hashHeader ? { hashHeader: config.hashHeader } : {}),
};
for (const r of parseRoutes(config.route, config.routesFile, routeDefaults)) {
  routes.set(r.service, new Route(r));
}
if (config.discovery) {
  const discovery = startDiscovery({
    client: new ConsensusClient({ endpoints: config.discovery }),
    routes,
    skip: new Set([...routes.keys(), BalancerAdminService.typeName]),
    defaults: routeDefaults,
    logger,
  });
  // Start with the registered routes when the registry answers soon; serve the static ones
  // (and the discovered ones as they come) when it does not.
  const first = await Promise.race([
    discovery.ready.then(() => true),
    new Promise<false>((resolve) => setTimeout(resolve, 5000, false).unref()),
  ]);
  if (!first)
    logger.warn({ discovery: config.discovery }, "registry not read yet: serving meanwhile");
}
const methods = methodCatalog();
const rules = restRules(methods);
const rest = createRestHandler({
  rules,
  routes,
  maxRequestBytes: config.maxRequestBytes,
  maxAttempts: config.maxAttempts,
});
// Generated at build time by scripts/openapi.ts (npm run generate), committed.
const openApiJson = readFileSync(new URL("./openapi.json", import.meta.url));
// The dashboard (services/dashboard's build) at /, beside the REST tier.
const dashboard = createDashboardHandler({
  dir: config.dashboardDir,
  controls: config.dashboardControls === "on",
  jaegerUrl: config.jaegerUrl,
});
const proxy = createProxy({
  routes,
  methods,
  rest: (req, res) => {
    if (dashboard(req, res)) return true;
    const path = req.url?.split("?", 1)[0];
    if (req.method === "GET" && path === "/openapi.json") {
      (res as import("node:http").ServerResponse).writeHead(200, {
        "content-type": "application/json",
      });
      res.end(openApiJson);
      return true;
    }
    if (req.method === "GET" && (path === "/openapi" || path === "/openapi.html")) {
      (res as import("node:http").ServerResponse).writeHead(200, {
        "content-type": "text/html; charset=utf-8",
      });
      res.end(openApiPage);
      return true;
    }
    return rest(req, res);
  },
  notFound: (req, res) =>
    sendRestNotFound(res, req.method ?? "", req.url?.split("?", 1)[0] ?? "/", rules),
  maxRequestBytes: config.maxRequestBytes,
  maxAttempts: config.maxAttempts,
  ...(config.rateLimit > 0
    ? {
        rateLimit: {
          perSecond: config.rateLimit,
          burst: config.rateBurst ?? Math.max(1, Math.ceil(config.rateLimit)),
          ...(config.rateKeyHeader ? { keyHeader: config.rateKeyHeader.toLowerCase() } : {}),
        },
      }
    : {}),
});
const server = await serve({
  ...serveOptionsFrom(config),
  name: "quartet-balancer",
  logger,
  telemetry,
  routes: (router) => router.service(BalancerAdminService, createAdminService(routes)),
  auth: {
    token: clusterToken,
    protects: (procedure) => procedure.startsWith(`/${BalancerAdminService.typeName}/`),
  },
  fallback: proxy,
});
logger.info({ routes: [...routes.keys()] }, "routes");
// The gateway registers itself too; deregistered before the drain on SIGTERM.
closeOnSignals(
  server,
  registerServer({
    config,
    server,
    logger,
    connect: (endpoints) => new ConsensusClient({ endpoints }),
  }),
);
