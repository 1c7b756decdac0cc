// Reads a V8 .cpuprofile (node --cpu-prof) and lists the functions with the most self time.
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  where: string;
  percent: number;
}

/**
 * The `top` functions by self time, as a share of all samples (idle included), counting only
 * the last `windowMs` of the profile when given.
 */
export function topSelfTime(path: string, top = 20, windowMs?: number): SelfTime[] {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const micros = new Map<string, { name: string; where: string; us: number }>();
  const times: number[] = [];
  let t = 0;
  for (const dt of profile.timeDeltas) {
    t += dt;
    times.push(t);
  }
  const from = windowMs === undefined ? Number.NEGATIVE_INFINITY : t - windowMs * 1000;
  let total = 0;
  profile.samples.forEach((id, i) => {
    if (times[i]! < from) return;
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const frame = byNode.get(id)!.callFrame;
    const where = `${frame.url.replace(/^.*node_modules\//, "").replace(/^.*\/work\/main\//, "")}:${frame.lineNumber + 1}`;
    const key = `${frame.functionName}@${where}`;
    const entry = micros.get(key) ?? { name: frame.functionName || "(anonymous)", where, us: 0 };
    entry.us += dt;
    micros.set(key, entry);
  });
  return [...micros.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ name: e.name, where: e.where, percent: (100 * e.us) / total }));
}

/** Self time grouped by package (or Node internals), as shares of the window. */
export function selfTimeByPackage(rows: SelfTime[]): [string, number][] {
  const groups = new Map<string, number>();
  for (const r of rows) {
    const pkg = /^(@[^/]+\/[^/]+|[^/:]+)\//.exec(r.where)?.[1] ?? r.where.split(":")[0] ?? "";
    const key = r.where.startsWith("node:") ? "node internals" : pkg || r.name;
    groups.set(key, (groups.get(key) ?? 0) + r.percent);
  }
  return [...groups.entries()].sort((a, b) => b[1] - a[1]);
}
