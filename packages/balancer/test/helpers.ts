import { createEndpoint, type Endpoint } from "../src/endpoint.ts";

/** Endpoints e0..e(n-1) at distinct loopback URLs, with optional weights. */
export function endpoints(n: number, weights?: number[]): Endpoint[] {
  return Array.from({ length: n }, (_, i) =>
    createEndpoint({
      id: `e${i}`,
      address: `http://127.0.0.1:${7000 + i}`,
      weight: weights?.[i] ?? 1,
    }),
  );
}

/** How many of `picks` went to each endpoint id. */
export function tally(picks: (Endpoint | undefined)[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const p of picks) {
    const id = p?.id ?? "none";
    counts[id] = (counts[id] ?? 0) + 1;
  }
  return counts;
}
