/** Errors of a connection that was never opened: nothing of a call on it was sent. */
const notConnected = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
]);

/**
 * True when `error` or one of its causes says the connection to the peer was never opened
 * (refused, unknown host, no route): the call provably never reached it, so it may go
 * elsewhere or again whatever it does. connect-node keeps the socket's error as the cause.
 */
export function neverConnected(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (notConnected.has((e as NodeJS.ErrnoException).code ?? "")) return true;
  }
  return false;
}
