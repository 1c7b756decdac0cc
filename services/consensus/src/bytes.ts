import { setImmediate as nextTurn } from "node:timers/promises";

/** Bytes copied between two turns of the event loop by {@link concatBytesInParts}. */
const copiedPerTurn = 4 << 20;

/**
 * Copies `pieces` into one plain Uint8Array, pausing (yielding) every few megabytes. Not
 * Buffer.concat: a snapshot decoded from a Buffer would hand out Buffers as its bytes fields.
 */
function* copyPieces(pieces: readonly Uint8Array[]): Generator<void, Uint8Array> {
  let length = 0;
  for (const p of pieces) length += p.byteLength;
  const out = new Uint8Array(length);
  let at = 0;
  let sinceTurn = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.byteLength;
    sinceTurn += p.byteLength;
    if (sinceTurn >= copiedPerTurn) {
      sinceTurn = 0;
      yield;
    }
  }
  return out;
}

/** `pieces` as one plain Uint8Array. */
export function concatBytes(pieces: readonly Uint8Array[]): Uint8Array {
  const copy = copyPieces(pieces);
  for (;;) {
    const step = copy.next();
    if (step.done) return step.value;
  }
}

/**
 * {@link concatBytes}, letting the event loop turn every few megabytes: joining a 60 MB
 * snapshot in one piece held a leader's thread for a third of a second under load.
 */
export async function concatBytesInParts(pieces: readonly Uint8Array[]): Promise<Uint8Array> {
  const copy = copyPieces(pieces);
  for (;;) {
    const step = copy.next();
    if (step.done) return step.value;
    await nextTurn();
  }
}
