import { readFileSync } from "node:fs";
import { badArguments } from "./output.ts";

/** A payload argument: text, `@file`, or base64 with `--base64`. */
export function readPayload(arg: string, base64: boolean): Uint8Array {
  if (arg.startsWith("@")) {
    try {
      return new Uint8Array(readFileSync(arg.slice(1)));
    } catch (e) {
      throw badArguments(`cannot read ${arg.slice(1)}: ${(e as Error).message}`, "check the path");
    }
  }
  if (base64) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(arg))
      throw badArguments("payload is not base64", "drop --base64 or encode the payload");
    return new Uint8Array(Buffer.from(arg, "base64"));
  }
  return new TextEncoder().encode(arg);
}

/** Shows a payload: as text when it is valid UTF-8, else base64. */
export function showPayload(payload: Uint8Array, base64: boolean): string {
  if (base64) return Buffer.from(payload).toString("base64");
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(payload);
  } catch {
    return Buffer.from(payload).toString("base64");
  }
}

/** A key or value argument: UTF-8 text, or base64 with `--base64` (no `@file`: keys may start with @). */
export function readBytes(arg: string, base64: boolean, what = "key"): Uint8Array {
  if (!base64) return new TextEncoder().encode(arg);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(arg))
    throw badArguments(`${what} is not base64: "${arg}"`, "drop --base64 or encode it");
  return new Uint8Array(Buffer.from(arg, "base64"));
}

/**
 * A key or value for a person: the text when it is valid UTF-8, else `base64:` and its
 * base64 (what `--base64` takes back). With `base64` set, always the bare base64.
 */
export function showBytes(bytes: Uint8Array, base64 = false): string {
  if (base64) return Buffer.from(bytes).toString("base64");
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return `base64:${Buffer.from(bytes).toString("base64")}`;
  }
}

/**
 * The range [key, rangeEnd) of every key that starts with `prefix` (etcd's prefix range): the
 * end is the prefix with its last byte below 0xff incremented; the empty prefix, or one of
 * only 0xff bytes, reaches to the last key ("\0" as range_end means "every key from key on").
 */
export function prefixRange(prefix: Uint8Array): { key: Uint8Array; rangeEnd: Uint8Array } {
  const key = prefix.length === 0 ? new Uint8Array([0]) : prefix;
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] < 0xff) {
      const end = prefix.slice(0, i + 1);
      end[i]++;
      return { key, rangeEnd: end };
    }
  }
  return { key, rangeEnd: new Uint8Array([0]) };
}
