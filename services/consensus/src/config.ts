import { createHash } from "node:crypto";
import { serverSettings } from "@quartet/server";
import { z } from "zod";
import { defaultSnapshotBytes, defaultSnapshotEntries } from "./node/raft-node.ts";
import { defaultMaxWatchesPerClient } from "./service/watch-limits.ts";

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** `1=http://127.0.0.1:7001,2=http://127.0.0.1:7002` -> id -> base URL. */
export function parsePeers(list: string): Map<number, string> {
  const peers = new Map<number, string>();
  for (const item of list
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^(\d+)=(https?:\/\/[^\s,]+)$/.exec(item);
    if (!m) throw new Error(`"${item}" is not id=url (e.g. 1=http://127.0.0.1:7001)`);
    const id = Number(m[1]);
    if (id < 1) throw new Error(`member ids start at 1, got ${id}`);
    if (peers.has(id)) throw new Error(`member ${id} is listed twice`);
    peers.set(id, (m[2] as string).replace(/\/$/, ""));
  }
  if (peers.size === 0) throw new Error("list at least one member");
  return peers;
}

/**
 * The cluster's id when none is given: a hash of the founding membership (ids only, so the
 * proxies tests put between members do not change it), as etcd derives its cluster id.
 */
export function defaultClusterId(peers: ReadonlyMap<number, string>): bigint {
  const ids = [...peers.keys()].sort((a, b) => a - b).join(",");
  return createHash("sha256").update(`quartet-cluster:${ids}`).digest().readBigUInt64BE(0);
}

export const consensusSettings = {
  ...serverSettings,
  port: {
    schema: int(0, 65535).optional(),
    help: "TCP port; default: the port of this member's URL in --peers.",
  },
  id: { schema: int(1, 0xffff_ffff), help: "This member's id (1, 2, 3...): its key in --peers." },
  peers: {
    schema: z.string().refine((s) => {
      try {
        parsePeers(s);
        return true;
      } catch {
        return false;
      }
    }, "give id=url pairs, comma-separated, e.g. 1=http://127.0.0.1:7001,2=http://127.0.0.1:7002"),
    help: "Every member's id and URL, this one's included: 1=http://127.0.0.1:7001,2=...",
    example: "1=http://127.0.0.1:7001,2=http://127.0.0.1:7002,3=http://127.0.0.1:7003",
  },
  dataDir: {
    schema: z.string().min(1),
    help: "Directory of this member's Raft log (a checksummed write-ahead log, fsync'd) and snapshots.",
  },
  join: {
    schema: z
      .enum(["true", "false"])
      .default("false")
      .transform((s) => s === "true"),
    help: "Join a running cluster (start empty and wait to be caught up) instead of founding one.",
  },
  clusterId: {
    schema: z.coerce.bigint().optional(),
    help: "The cluster's id; default: derived from the member ids in --peers (with --join: asked of those members), then kept in --data-dir.",
  },
  tickMs: {
    schema: int(1, 10_000).default(100),
    help: "Raft tick: heartbeats every tick, elections after 10-20 ticks without a leader.",
  },
  snapshotEntries: {
    schema: int(1, 100_000_000).default(defaultSnapshotEntries),
    help: "Take a snapshot and compact the log after this many applied entries.",
  },
  snapshotBytes: {
    schema: int(1024, 2 ** 40).default(defaultSnapshotBytes),
    help: "Also take a snapshot once the entries applied since the last one hold this many bytes of data (default 64 MiB, one log segment), so large values do not grow the log for thousands of entries.",
  },
  heapGrowthPercent: {
    schema: int(0, 10_000).default(400),
    help: "How far the JavaScript heap may grow past what the last full GC kept before the next one, in percent (V8's --heap-growing-percent; 0: V8's own choice). Higher: fewer full-GC pauses for more memory.",
  },
  maxWatchesPerClient: {
    schema: int(1, 10_000_000).default(defaultMaxWatchesPerClient),
    help: "Watch streams open at once per client (its IP address, or the quartet-client-id header of a caller with the cluster credential); past it Watch fails with RESOURCE_EXHAUSTED.",
  },
  faultControls: {
    schema: z
      .enum(["true", "false"])
      .default("false")
      .transform((s) => s === "true"),
    help: "Serve FaultService (isolate this member from its peers, crash it) to admin callers, for demonstrations.",
  },
};
