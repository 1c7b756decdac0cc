import { readFileSync } from "node:fs";

/** What the load generator needs of a cluster; every call goes to the leader. */
export interface KvSide {
  readonly name: "etcd" | "quartet" | "nodefloor";
  /** The leader's process id (for strace and the CPU profile). */
  readonly leaderPid: number;
  /** Every member's process id, leader included (for CPU accounting). */
  readonly pids: number[];
  put(key: Buffer): Promise<void>;
  /** A linearizable read of one existing key (throws if it is missing). */
  get(key: Buffer): Promise<void>;
  /** Watches every key under `prefix`; resolves once the watch is live, with its cancel. */
  watch(prefix: Buffer, onEvents: (count: number) => void): Promise<() => void>;
  /** Stops every process it started and deletes their data. */
  stop(): Promise<void>;
}

export { freePort } from "@quartet/server/testing";

/** Calls `probe` every 100 ms until it returns a value, or fails after `timeoutMs`. */
export async function pollUntil<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  while (performance.now() < deadline) {
    try {
      const found = await probe();
      if (found !== undefined) return found;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms${last ? `: ${String(last)}` : ""}`);
}

/** CPU seconds (user + system) the processes have used so far, from /proc (Linux). */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    // Fields after the command name (which may hold spaces): utime and stime are 12th/13th.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / 100; // USER_HZ is 100 on Linux
}
