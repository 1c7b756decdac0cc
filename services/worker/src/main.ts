import { ConsensusClient } from "@quartet/consensus-service/client";
import { seededRandom } from "@quartet/determinism";
import { WorkerAdminService, WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { closeOnSignals, registerServer, registrySettings } from "@quartet/registry";
import {
  createLogger,
  loadClusterToken,
  loadConfig,
  serve,
  serveOptionsFrom,
  serverSettings,
} from "@quartet/server";
import { createTelemetryTransport, startTelemetry } from "@quartet/telemetry";
import { z } from "zod";
import { startConsumerRole } from "./consumer.ts";
import { StandingFault } from "./standing-fault.ts";
import { defaultWorkLimits, hostList } from "./validate.ts";
import { createWorkerAdminService } from "./worker-admin-service.ts";
import { createWorkerService } from "./worker-service.ts";

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const config = loadConfig({
  name: "quartet-worker",
  summary: "demo worker serving quartet.worker.v1.WorkerService (Compute, Fanout, Watch)",
  settings: {
    ...serverSettings,
    ...registrySettings,
    port: {
      schema: z.coerce.number().int().min(0).max(65535).default(7201),
      help: "TCP port; 0 picks a free one.",
    },
    id: {
      schema: z.string().min(1).optional(),
      help: "Worker identity reported in responses (default worker-<port>, or worker-pid<pid> with port 0).",
    },
    seed: {
      schema: z.coerce.number().int().default(1),
      help: "Seed of the generator behind fault fractions.",
    },
    // A string, not a Set: --help shows the default as JSON, and a Set prints as {}.
    fanoutHosts: {
      schema: z
        .string()
        .default("127.0.0.1,localhost,::1")
        .refine((s) => hostList(s).length > 0, "name at least one host"),
      help: "Comma-separated hosts Fanout may call.",
    },
    maxIterations: {
      schema: int(0, 0xffff_ffff).default(defaultWorkLimits.maxIterations),
      help: "Rounds of SHA-256 one call may ask for: a Compute's iterations, a Watch's steps x iterations_per_step (InvalidArgument beyond). The default takes about 0.2 s.",
    },
    maxFanoutPeers: {
      schema: int(1, 1024).default(defaultWorkLimits.maxFanoutPeers),
      help: "Peers one Fanout may name (InvalidArgument beyond).",
    },
    maxFanoutIterations: {
      schema: int(0, Number.MAX_SAFE_INTEGER).default(defaultWorkLimits.maxFanoutIterations),
      help: "Rounds one Fanout may ask for in all, peers x request.iterations (InvalidArgument beyond).",
    },
    maxFanoutDepth: {
      schema: int(1, 100).default(defaultWorkLimits.maxFanoutDepth),
      help: "Fanouts a chain of calls may pass through, counted in the quartet-fanout-depth header (FailedPrecondition beyond).",
    },
    brokerUrl: {
      schema: z.url().optional(),
      help: "Broker base URL; with --queue or --request-subject the worker also consumes from it.",
    },
    queue: {
      schema: z.string().min(1).optional(),
      help: "Work queue of ComputeRequest jobs to consume (acked on success, nacked on failure).",
    },
    requestSubject: {
      schema: z.string().min(1).optional(),
      help: 'Subject on which to answer ComputeRequest requests (queue group "workers").',
    },
    consumerMaxInFlight: {
      schema: z.coerce.number().int().min(1).max(10_000).default(16),
      help: "Jobs held unacknowledged at once.",
    },
    consumerFault: {
      schema: z.enum(["none", "stall"]).default("none"),
      help: 'Demo fault: "stall" takes jobs and never finishes them.',
    },
    faultControls: {
      schema: z
        .enum(["true", "false"])
        .default("false")
        .transform((s) => s === "true"),
      help: "Let admin callers set a standing fault (WorkerAdminService.SetFault), for demonstrations.",
    },
    brokerWarnAfterMs: {
      schema: int(0, 3_600_000).default(30_000),
      help: "While the broker cannot be reached, retries are logged at debug level; one warning follows after this long.",
    },
  },
});

const telemetry = startTelemetry({ serviceName: "quartet-worker" });
const logger = createLogger("quartet-worker");
const workerId =
  config.id ?? (config.port === 0 ? `worker-pid${process.pid}` : `worker-${config.port}`);
const standing = new StandingFault();
const worker = createWorkerService({
  id: workerId,
  logger,
  random: seededRandom(config.seed),
  fanoutHosts: new Set(hostList(config.fanoutHosts)),
  transportFor: (baseUrl) => createTelemetryTransport({ baseUrl, httpVersion: "2" }),
  limits: {
    maxIterations: config.maxIterations,
    maxFanoutPeers: config.maxFanoutPeers,
    maxFanoutIterations: config.maxFanoutIterations,
    maxFanoutDepth: config.maxFanoutDepth,
  },
  maxTimeoutMs: config.maxTimeoutMs,
  standing,
});
const server = await serve({
  ...serveOptionsFrom(config),
  name: "quartet-worker",
  logger,
  telemetry,
  routes: (router) => {
    router.service(WorkerService, worker);
    router.service(
      WorkerAdminService,
      createWorkerAdminService({ standing, enabled: config.faultControls, logger }),
    );
  },
  auth: {
    token: loadClusterToken(config, "quartet-worker"),
    protects: (procedure) => procedure.startsWith(`/${WorkerAdminService.typeName}/`),
  },
});
// Registered once listening and serving; deregistered before the drain on SIGTERM.
closeOnSignals(
  server,
  registerServer({
    config,
    server,
    logger,
    connect: (endpoints) => new ConsensusClient({ endpoints }),
  }),
);
if (config.brokerUrl && (config.queue || config.requestSubject)) {
  startConsumerRole({
    brokerUrl: config.brokerUrl,
    ...(config.queue ? { queue: config.queue } : {}),
    ...(config.requestSubject ? { requestSubject: config.requestSubject } : {}),
    maxInFlight: config.consumerMaxInFlight,
    fault: config.consumerFault,
    warnAfterMs: config.brokerWarnAfterMs,
    workerId,
    worker,
    logger,
  });
}
