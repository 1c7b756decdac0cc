// The anchor: a fresh 3-member etcd 3.4 cluster on loopback, default fsync, driven over one h2c
// connection to the leader: puts and gets with the load generator's gRPC caller, watches with
// the npm etcd3 client.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { etcdPaths, h2KvCalls } from "./h2-grpc-client.ts";
import { freePort, type KvSide, pollUntil } from "./side.ts";

export async function startEtcd(dataRoot: string): Promise<KvSide> {
  const names = ["n1", "n2", "n3"];
  const ports = await Promise.all(
    names.map(async () => ({ client: await freePort(), peer: await freePort() })),
  );
  const initialCluster = names.map((n, i) => `${n}=http://127.0.0.1:${ports[i]!.peer}`).join(",");
  const children: ChildProcess[] = [];
  const output: string[] = [];
  const stopAll = async () => {
    await Promise.all(
      children.map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null) return;
        c.kill("SIGTERM");
        await once(c, "exit");
      }),
    );
  };
  try {
    for (const [i, name] of names.entries()) {
      const { client, peer } = ports[i]!;
      const child = spawn(
        "etcd",
        [
          "--name",
          name,
          "--data-dir",
          join(dataRoot, name),
          "--listen-client-urls",
          `http://127.0.0.1:${client}`,
          "--advertise-client-urls",
          `http://127.0.0.1:${client}`,
          "--listen-peer-urls",
          `http://127.0.0.1:${peer}`,
          "--initial-advertise-peer-urls",
          `http://127.0.0.1:${peer}`,
          "--initial-cluster",
          initialCluster,
          "--initial-cluster-token",
          "quartet-kv-bench",
          "--initial-cluster-state",
          "new",
          "--logger",
          "zap",
          "--log-level",
          "warn",
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      child.stdout!.on("data", (b: Buffer) => output.push(b.toString()));
      child.stderr!.on("data", (b: Buffer) => output.push(b.toString()));
      children.push(child);
    }
    const urls = ports.map((p) => `http://127.0.0.1:${p.client}`);
    const leaderIndex = await pollUntil("etcd leader", 30_000, async () => {
      for (const [i, url] of urls.entries()) {
        const probe = new Etcd3({ hosts: url, dialTimeout: 2000 });
        try {
          const status = await probe.maintenance.status();
          if (status.leader !== "0" && status.leader === status.header.member_id) return i;
        } finally {
          probe.close();
        }
      }
      return undefined;
    });
    const client = new Etcd3({ hosts: urls[leaderIndex]! });
    const calls = h2KvCalls(new URL(urls[leaderIndex]!).host, etcdPaths);
    return {
      name: "etcd",
      leaderPid: children[leaderIndex]!.pid!,
      pids: children.map((c) => c.pid!),
      put: calls.put,
      async get(key) {
        if ((await calls.count(key)) !== 1) throw new Error(`etcd: key ${key} missing`);
      },
      async watch(prefix, onEvents) {
        const watcher = await client.watch().prefix(prefix).create();
        watcher.on("data", (res) => onEvents(res.events.length));
        return () => void watcher.cancel();
      },
      async stop() {
        calls.close();
        client.close();
        await stopAll();
      },
    };
  } catch (e) {
    await stopAll();
    throw new Error(`${(e as Error).message}\netcd output:\n${output.join("").slice(-4000)}`);
  }
}
