import { mkdirSync } from "node:fs";
import { defaultQueueSettings, LmdbQueueStore, PubSub, Queues } from "@quartet/broker";
import { ConsensusClient } from "@quartet/consensus-service/client";
import {
  BrokerAdminService,
  BrokerService,
  type Message,
} from "@quartet/proto/quartet/broker/v1/broker_pb";
import { closeOnSignals, registerServer, registrySettings } from "@quartet/registry";
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
import { createBrokerService } from "./broker-service.ts";
import { loadIdentities } from "./identity.ts";
import { defaultBrokerLimits } from "./limits.ts";

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const config = loadConfig({
  name: "quartet-broker",
  summary: "message broker serving quartet.broker.v1 (pub/sub, request-reply, work queues)",
  settings: {
    ...serverSettings,
    ...registrySettings,
    port: { schema: int(0, 65535).default(7100), help: "TCP port; 0 picks a free one." },
    dataDir: {
      schema: z.string().min(1).optional(),
      help: "Directory of the durable queue store (LMDB); without it only non-durable queues exist.",
    },
    queues: {
      schema: z
        .string()
        .optional()
        .transform((s) =>
          (s ?? "")
            .split(",")
            .map((q) => q.trim())
            .filter(Boolean),
        ),
      help: "Comma-separated work queues to create at start-up if missing (durable with --data-dir), e.g. jobs.",
    },
    maxMessageBytes: {
      schema: int(1, 64 * 1024 * 1024).default(defaultBrokerLimits.maxMessageBytes),
      help: "Largest message (payload plus headers) in bytes.",
    },
    maxSubscriptionsPerClient: {
      schema: int(1, 1_000_000).default(defaultBrokerLimits.maxSubscriptionsPerClient),
      help: "Subscribe streams open at once per client id (quartet-client-id header).",
    },
    maxBufferSize: {
      schema: int(1, 10_000_000).default(defaultBrokerLimits.maxBufferSize),
      help: "Largest per-subscriber buffer, in messages.",
    },
    maxSubscriptionBufferBytes: {
      schema: int(1024, 2 ** 40).default(defaultBrokerLimits.maxSubscriptionBufferBytes),
      help: "Bytes one subscription buffers for a slow reader; past it its overflow policy acts.",
    },
    maxClientBufferBytes: {
      schema: int(1024, 2 ** 40).default(defaultBrokerLimits.maxClientBufferBytes),
      help: "Bytes all subscriptions of one client id buffer together; past it its largest buffers give way.",
    },
    maxBufferBytes: {
      schema: int(1024, 2 ** 40).default(defaultBrokerLimits.maxBufferBytes),
      help: "Bytes all subscription buffers of this broker hold together; past it the largest give way.",
    },
    credentialsFile: {
      schema: z.string().min(1).optional(),
      help: "JSON file mapping bearer tokens to identities and their publish/subscribe/queue permissions (see README, Authorization).",
    },
    anonymous: {
      schema: z.enum(["open", "deny", "restricted"]).default("open"),
      help: "What clients without a token may do: open (everything; local use only), deny, or restricted (the credentials file's anonymous rules).",
    },
    slowConsumerLogIntervalMs: {
      schema: int(1, 86_400_000).default(defaultBrokerLimits.slowConsumerLogIntervalMs),
      help: "At most one slow-consumer log line per subscription per this many ms.",
    },
  },
});

const telemetry = startTelemetry({ serviceName: "quartet-broker" });
const logger = createLogger("quartet-broker");
let store: LmdbQueueStore | undefined;
if (config.dataDir) {
  mkdirSync(config.dataDir, { recursive: true });
  store = await LmdbQueueStore.open(config.dataDir);
}
const queues = new Queues({
  ...(store ? { store } : {}),
  onDeadLetter: (queue, seq, deliveries) =>
    logger.warn({ queue, seq, deliveries }, "message dead-lettered"),
});
for (const name of queues.names()) {
  logger.info({ queue: name, ...queues.stats(name) }, "queue recovered");
}
for (const name of config.queues) {
  if (queues.names().includes(name)) continue;
  await queues.create(name, { ...defaultQueueSettings, durable: store !== undefined });
  logger.info({ queue: name, durable: store !== undefined }, "queue created");
}
// Streams never end on their own: end them when a shutdown begins, so the drain is quick and
// clients reconnect elsewhere.
const closing = new AbortController();
for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => closing.abort());
const clusterToken = loadClusterToken(config, "quartet-broker");
const deps = {
  identities: loadIdentities(
    {
      ...(config.credentialsFile ? { file: config.credentialsFile } : {}),
      anonymous: config.anonymous,
      clusterToken,
    },
    "quartet-broker",
  ),
  closing: closing.signal,
  pubsub: new PubSub<Message>(),
  queues,
  limits: {
    maxMessageBytes: config.maxMessageBytes,
    maxSubscriptionsPerClient: config.maxSubscriptionsPerClient,
    maxBufferSize: config.maxBufferSize,
    maxSubscriptionBufferBytes: config.maxSubscriptionBufferBytes,
    maxClientBufferBytes: config.maxClientBufferBytes,
    maxBufferBytes: config.maxBufferBytes,
    slowConsumerLogIntervalMs: config.slowConsumerLogIntervalMs,
  },
  logger,
};
const server = await serve({
  ...serveOptionsFrom(config),
  name: "quartet-broker",
  logger,
  telemetry,
  auth: {
    token: clusterToken,
    protects: (procedure) => procedure.startsWith(`/${BrokerAdminService.typeName}/`),
  },
  routes: (router) => {
    router.service(BrokerService, createBrokerService(deps));
    router.service(BrokerAdminService, createAdminService(deps));
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
process.once("exit", () => queues.close());
