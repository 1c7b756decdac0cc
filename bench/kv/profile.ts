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

/** The `top` functions by self time, as a share of all samples (idle included). */
export function topSelfTime(path: string, top = 20): SelfTime[] {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const micros = new Map<string, { name: string; where: string; us: number }>();
  let total = 0;
  profile.samples.forEach((id, i) => {
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
