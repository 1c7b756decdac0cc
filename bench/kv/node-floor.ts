// The floor side of the kv bench (BENCH_FLOOR=1): node-floor-server.ts as a leader and two
// followers, driven over the same gRPC caller and the same KVService.Put as Quartet's side.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startServiceProcess } from "@quartet/server/testing";
import { h2KvCalls, quartetPaths } from "./h2-grpc-client.ts";
import type { KvSide } from "./side.ts";

const entry = fileURLToPath(new URL("./node-floor-server.ts", import.meta.url));

export async function startNodeFloor(dataRoot: string): Promise<KvSide> {
  mkdirSync(dataRoot, { recursive: true });
  const followers = await Promise.all(
    ["f1", "f2"].map((name) => startServiceProcess(entry, ["follower", join(dataRoot, name)])),
  );
  const ports = followers.map((f) => new URL(f.url).port);
  const leader = await startServiceProcess(entry, ["leader", join(dataRoot, "leader"), ...ports]);
  const processes = [leader, ...followers];
  const client = h2KvCalls(new URL(leader.url).host, quartetPaths);
  const notServed = async (): Promise<never> => {
    throw new Error("the Node floor serves puts only");
  };
  return {
    name: "nodefloor",
    leaderPid: leader.pid,
    pids: processes.map((p) => p.pid),
    put: client.put,
    get: notServed,
    watch: notServed,
    async stop() {
      client.close();
      await Promise.all(processes.map((p) => p.kill("SIGTERM")));
    },
  };
}
