// Quartet's side: a fresh 3-member consensus cluster (services/consensus/src/main.ts on the
// pinned Node), driven over one h2c connection to the leader: puts and gets with the load
// generator's gRPC caller, as on etcd's side (BENCH_KV_CLIENT=connect: with Connect's
// createGrpcTransport instead), watches with Connect.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { MaintenanceService } from "@quartet/proto/quartet/consensus/v1/cluster_pb";
import { KVService } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { WatchService } from "@quartet/proto/quartet/consensus/v1/watch_pb";
import { type ServiceProcess, startServiceProcess } from "@quartet/server/testing";
import { h2KvCalls, type KvCalls, quartetPaths } from "./h2-grpc-client.ts";
import { value } from "./load.ts";
import { freePort, type KvSide, pollUntil } from "./side.ts";

const mainTs = fileURLToPath(new URL("../../services/consensus/src/main.ts", import.meta.url));
const token = "quartet-kv-bench-token-0123456789";

/** The first key after every key that starts with `prefix` (etcd's rule). */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** `nodeArgs` go to every member (e.g. `--cpu-prof`). */
export async function startQuartet(dataRoot: string, nodeArgs: string[] = []): Promise<KvSide> {
  const ids = [1, 2, 3];
  const ports = await Promise.all(ids.map(() => freePort()));
  const peers = ids.map((id, i) => `${id}=http://127.0.0.1:${ports[i]}`).join(",");
  const members: ServiceProcess[] = [];
  const stopAll = () => Promise.all(members.map((m) => m.kill("SIGTERM")));
  try {
    for (const id of ids) {
      members.push(
        await startServiceProcess(
          mainTs,
          [
            ...["--id", String(id), "--peers", peers, "--data-dir", join(dataRoot, `m${id}`)],
            // etcd 3.4's default --snapshot-count: with Quartet's own default (10,000) every
            // member would write its whole state to a file (29 MB after 100,000 puts of 256
            // bytes) ten times as often, while an etcd snapshot is small (its data is in bbolt).
            ...["--snapshot-entries", "100000"],
          ],
          {
            env: { QUARTET_CLUSTER_TOKEN: token, OTEL_SDK_DISABLED: "true" },
            nodeArgs,
          },
        ),
      );
    }
    const leaderIndex = await pollUntil("Quartet leader", 30_000, async () => {
      for (const [i, m] of members.entries()) {
        const admin = createClient(MaintenanceService, createGrpcTransport({ baseUrl: m.url }));
        const status = await admin.status({}, { headers: { authorization: `Bearer ${token}` } });
        if (status.leader !== 0n && status.leader === status.header?.memberId) return i;
      }
      return undefined;
    });
    const leader = members[leaderIndex]!;
    const transport = createGrpcTransport({ baseUrl: leader.url });
    const watch = createClient(WatchService, transport);
    const kv =
      process.env.BENCH_KV_CLIENT === "connect"
        ? connectKv(createClient(KVService, transport))
        : h2KvCalls(new URL(leader.url).host, quartetPaths);
    return {
      name: "quartet",
      leaderPid: leader.pid,
      pids: members.map((m) => m.pid),
      put: kv.put,
      async get(key) {
        if ((await kv.count(key)) !== 1) throw new Error(`quartet: key ${key} missing`);
      },
      watch(prefix, onEvents) {
        const stop = new AbortController();
        return new Promise((resolve, reject) => {
          void (async () => {
            try {
              let live = false;
              for await (const res of watch.watch(
                { key: prefix, rangeEnd: prefixEnd(prefix) },
                { signal: stop.signal },
              )) {
                // The first response (no events) says the watch is live.
                if (!live) {
                  live = true;
                  resolve(() => stop.abort());
                }
                onEvents(res.events.length);
              }
            } catch (e) {
              if (!stop.signal.aborted) reject(e);
            }
          })();
        });
      },
      async stop() {
        kv.close();
        await stopAll();
      },
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/** The load generator's calls over Connect's gRPC transport (BENCH_KV_CLIENT=connect). */
function connectKv(client: Client<typeof KVService>): KvCalls {
  return {
    async put(key) {
      await client.put({ key, value });
    },
    async count(key) {
      return (await client.range({ key })).kvs.length;
    },
    close() {},
  };
}
