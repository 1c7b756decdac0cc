// The ports of `npm start` relative to QUARTET_PORT_BASE (scripts/start.ts), and how a test
// finds a base whose ports are all free so it can run a whole suite beside any other.
import { createServer } from "node:net";

/** Consensus members, broker, workers, gateway, supervisor. */
export const suiteOffsets = [-99, -98, -97, 0, 101, 102, 103, 980, 981];

export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A base whose suite ports are all free now: a walk seeded by `seed`, so a run is reproducible. */
export async function freeSuiteBase(seed: number): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const base = 20_000 + (seed % 30_000);
    if ((await Promise.all(suiteOffsets.map((o) => portFree(base + o)))).every(Boolean))
      return base;
  }
  throw new Error("no port base with every suite port free");
}
