import { badArguments } from "./output.ts";

/** A commander option parser for a positive integer (`--count`, `--timeout`, `--limit`). */
export function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0)
      throw badArguments(
        `${name} must be a positive integer, got "${value}"`,
        `pass ${name} 1 or more`,
      );
    return n;
  };
}

/** A revision, lease or member id: a decimal integer that fits the wire's 64 bits. */
export function parseId(name: string, value: string, { allowZero = false } = {}): bigint {
  if (!/^\d+$/.test(value) || BigInt(value) > 0x7fff_ffff_ffff_ffffn)
    throw badArguments(`${name} must be a decimal integer, got "${value}"`, `e.g. ${name} 1`);
  const n = BigInt(value);
  if (n === 0n && !allowZero)
    throw badArguments(`${name} must be 1 or more, got 0`, `e.g. ${name} 1`);
  return n;
}

/** Ends a stream on Ctrl-C instead of dying mid-line. */
export function interruptible(): AbortController {
  const abort = new AbortController();
  process.once("SIGINT", () => abort.abort());
  return abort;
}
