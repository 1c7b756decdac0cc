import { setFlagsFromString } from "node:v8";

/**
 * Sets how far V8 lets the old generation grow past what its last full GC kept before the
 * next one starts (V8's `--heap-growing-percent`; 0 keeps V8's own adaptive factor). A member
 * keeps its whole store live, and V8 starts marking again once the room left is about the
 * size of its young generation, which is large under load: with V8's own factor a follower
 * ran a full GC every half second, each stopping it for 5-15 ms, its GC threads taking CPU
 * the leader needed on a 2-CPU machine. At 400 it runs one every few seconds (BENCHMARKS.md,
 * kv). The flag is read at each GC, so setting it once the process runs takes effect from the
 * next one.
 */
export function applyHeapGrowth(percent: number, setFlags = setFlagsFromString): void {
  if (percent > 0) setFlags(`--heap-growing-percent=${percent}`);
}
