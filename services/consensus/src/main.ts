import { registerServer, registrySettings, servedServices } from "@quartet/registry";
import { createLogger, loadClusterToken, loadConfig, serveOptionsFrom } from "@quartet/server";
import { startTelemetry } from "@quartet/telemetry";
import { ConsensusClient } from "./client.ts";
import { consensusSettings, defaultClusterId, parsePeers } from "./config.ts";
import { applyHeapGrowth } from "./heap-growth.ts";
import { saveClusterId, savedClusterId } from "./node/cluster-id.ts";
import { discoverCluster } from "./node/join.ts";
import { startMember } from "./node/member.ts";
import { createConsensusService } from "./service/consensus-service.ts";

const config = loadConfig({
  name: "quartet-consensus",
  summary:
    "a consensus member: Raft on durable storage, serving quartet.consensus.v1 (a replicated KV store)",
  settings: { ...consensusSettings, ...registrySettings },
});
applyHeapGrowth(config.heapGrowthPercent);
const peers = parsePeers(config.peers);
const self = peers.get(config.id);
if (self === undefined) {
  process.stderr.write(
    `quartet-consensus: --id ${config.id} is not in --peers; list this member too\n`,
  );
  process.exit(2);
}
const token = loadClusterToken(config, "quartet-consensus");
if (token === undefined) {
  process.stderr.write(
    "quartet-consensus: members need the cluster credential to talk to each other: set QUARTET_CLUSTER_TOKEN or --cluster-token-file\n",
  );
  process.exit(2);
}
const saved = savedClusterId(config.dataDir);
if (saved !== undefined && config.clusterId !== undefined && saved !== config.clusterId) {
  process.stderr.write(
    `quartet-consensus: --data-dir ${config.dataDir} belongs to cluster ${saved}, not --cluster-id ${config.clusterId}\n`,
  );
  process.exit(2);
}
// A joining member learns the cluster's id from the members it joins (and that it was added).
const clusterId =
  saved ??
  config.clusterId ??
  (config.join
    ? await discoverCluster({ self: config.id, peers, token }).catch((e: unknown) => {
        process.stderr.write(`quartet-consensus: cannot join: ${(e as Error).message}\n`);
        process.exit(2);
      })
    : defaultClusterId(peers));
if (saved === undefined) saveClusterId(config.dataDir, clusterId);
const telemetry = startTelemetry({ serviceName: "quartet-consensus" });
const logger = createLogger("quartet-consensus");
const member = await startMember({
  id: config.id,
  clusterId,
  peers,
  dataDir: config.dataDir,
  join: config.join,
  token,
  logger,
  tickMs: config.tickMs,
  snapshotEntries: config.snapshotEntries,
  snapshotBytes: config.snapshotBytes,
  service: createConsensusService({
    clusterId,
    self: config.id,
    logger,
    dataDir: config.dataDir,
    faultControls: config.faultControls,
    maxWatchesPerClient: config.maxWatchesPerClient,
    clusterToken: token,
  }),
  serve: {
    ...serveOptionsFrom({ ...config, port: config.port ?? Number(new URL(self).port) }),
    telemetry,
  },
}).catch((e: unknown) => {
  logger.fatal({ err: e }, "cannot start");
  process.stderr.write(`quartet-consensus: ${(e as Error).message}\n`);
  process.exit(1);
});
logger.info(
  { id: config.id, cluster: String(clusterId), url: member.server.url },
  "member started",
);
// A removed member stops serving for good (etcd's members exit too); it refuses to start again.
void member.removed.then(() =>
  member.close().then(
    () => process.exit(0),
    () => process.exit(1),
  ),
);
// With --registry (its own cluster's URLs, normally) the member registers its public services
// once the cluster has a leader (registration retries until then), and deregisters first on
// SIGTERM.
const registration = registerServer({
  config,
  server: member.server,
  logger,
  connect: (endpoints) => new ConsensusClient({ endpoints }),
  services: servedServices(member.server).filter((s) => s.startsWith("quartet.consensus.")),
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    Promise.resolve(registration?.close())
      .then(() => member.close())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  });
}
