import type { DescMessage, Message } from "@bufbuild/protobuf";
import type { RestRule } from "./rest-rules.ts";

// A REST user reads one resource and expects 404 when it is not there; the RPC behind it
// answers a range that may be empty. These rules say when an empty answer means "not found".
// They live here, by REST route, because the RPC's contract (an empty range is a success) is
// right for RPC callers and stays as it is.

interface EmptyMeansNotFound {
  /** The answer's repeated field that lists what was found. */
  readonly listed: string;
  /** Request fields that, when set, make the call a range or count rather than one resource. */
  readonly unlessSet: readonly string[];
  /** The field naming the resource, for the message. */
  readonly named: string;
}

const byRoute: ReadonlyMap<string, EmptyMeansNotFound> = new Map([
  ["GET /v1/kv/{key=**}", { listed: "kvs", unlessSet: ["rangeEnd", "countOnly"], named: "key" }],
]);

/** The routes that answer 404 for an empty answer, for the OpenAPI document. */
export function answersNotFound(rule: RestRule): boolean {
  return byRoute.has(`${rule.verb} ${rule.template}`);
}

/** A NotFound message when this rule's answer is empty and means "not found", else undefined. */
export function notFoundWhenEmpty(
  rule: RestRule,
  request: Message,
  answer: Message,
): string | undefined {
  const how = byRoute.get(`${rule.verb} ${rule.template}`);
  if (!how) return undefined;
  const fields = request as unknown as Record<string, unknown>;
  if (how.unlessSet.some((name) => isSet(fields[name]))) return undefined;
  const listed = (answer as unknown as Record<string, unknown>)[how.listed];
  if (!Array.isArray(listed) || listed.length > 0) return undefined;
  return `${describe(rule.method.input, how.named)} ${show(fields[how.named])} not found`;
}

function isSet(value: unknown): boolean {
  if (value instanceof Uint8Array || typeof value === "string") return value.length > 0;
  return Boolean(value);
}

function describe(message: DescMessage, field: string): string {
  return message.field[field]?.name ?? field;
}

/** A bytes key as text when it is UTF-8, else percent-encoded, as it appears in the path. */
function show(value: unknown): string {
  if (!(value instanceof Uint8Array)) return JSON.stringify(value);
  try {
    return JSON.stringify(new TextDecoder("utf-8", { fatal: true }).decode(value));
  } catch {
    return JSON.stringify([...value].map((b) => `%${b.toString(16).padStart(2, "0")}`).join(""));
  }
}
