import { createHash } from "node:crypto";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";

/** Rounds hashed between returns to the event loop, so a long computation stays cancellable. */
export const sliceRounds = 2_000;

/**
 * Hashes `input` with SHA-256, then re-hashes the digest `rounds` more times, and returns the
 * hex digest. Yields to the event loop between slices and stops when `signal` aborts.
 */
export async function hashRounds(
  input: string,
  rounds: number,
  signal: AbortSignal,
): Promise<string> {
  let digest = createHash("sha256").update(input).digest();
  for (let done = 0; done < rounds; ) {
    signal.throwIfAborted();
    const end = Math.min(rounds, done + sliceRounds);
    for (; done < end; done++) digest = createHash("sha256").update(digest).digest();
    if (done < rounds) await yieldToEventLoop();
  }
  return digest.toString("hex");
}
