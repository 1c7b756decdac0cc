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
