import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Request header counting the Fanouts a call has passed through. A Fanout's calls to its
 * peers carry its own depth plus one; a proxy in between forwards it like any header.
 */
export const FANOUT_DEPTH_HEADER = "quartet-fanout-depth";

/** Fanouts the call passed through before reaching this one: 0 for a call from a client. */
export function fanoutDepthOf(header: Headers): number {
  const raw = header.get(FANOUT_DEPTH_HEADER);
  if (raw === null) return 0;
  if (!/^\d{1,4}$/.test(raw)) {
    throw new ConnectError(
      `${FANOUT_DEPTH_HEADER}: "${raw}" is not a count of Fanouts (0 to 9999); leave the header out on a call from a client`,
      Code.InvalidArgument,
    );
  }
  return Number(raw);
}

/**
 * Refuses a Fanout that would make a chain of Fanouts longer than `maxDepth`, so a loop
 * (a peer that leads back to a Fanout) stops instead of multiplying work.
 */
export function checkFanoutDepth(depth: number, maxDepth: number): void {
  if (depth < maxDepth) return;
  throw new ConnectError(
    `Fanout reached through ${depth} other Fanout${depth === 1 ? "" : "s"} (${FANOUT_DEPTH_HEADER}: ${depth}); ` +
      `this worker serves Fanouts nested ${maxDepth} deep at most (--max-fanout-depth)`,
    Code.FailedPrecondition,
  );
}
