import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type CompareSchema,
  type RequestOpSchema,
  Compare_CompareResult as Result,
  type TxnRequestSchema,
} from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { badArguments } from "./output.ts";
import { prefixRange } from "./payload.ts";

type Compare = MessageInitShape<typeof CompareSchema>;
type RequestOp = MessageInitShape<typeof RequestOpSchema>;

const enc = (s: string) => new TextEncoder().encode(s);

const RESULTS: Record<string, Result> = {
  "=": Result.EQUAL,
  "==": Result.EQUAL,
  "!=": Result.NOT_EQUAL,
  ">": Result.GREATER,
  "<": Result.LESS,
};

/** etcdctl's compare targets and their abbreviations. */
const TARGETS: Record<string, "value" | "version" | "createRevision" | "modRevision" | "lease"> = {
  value: "value",
  val: "value",
  version: "version",
  ver: "version",
  create: "createRevision",
  c: "createRevision",
  mod: "modRevision",
  m: "modRevision",
  lease: "lease",
};

/**
 * Parses etcdctl's txn format: compares, a blank line, the success operations, a blank line,
 * the failure operations, one per line:
 *
 *     mod("config") = "4"
 *     value("owner") != "me"
 *
 *     put config "new value"
 *     del lock
 *
 *     get config
 *
 * Keys and values are bare words or JSON strings (double quotes, JSON escapes).
 */
export function parseTxn(text: string): MessageInitShape<typeof TxnRequestSchema> {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  // A blank line ends a section, as in etcdctl: one first means "no compares".
  const sections: { line: number; text: string }[][] = [[]];
  lines.forEach((raw, i) => {
    if (raw.trim() === "") {
      if (sections.length < 3) sections.push([]);
      else if (sections[2].length > 0) sections.push([]);
      return;
    }
    sections[sections.length - 1].push({ line: i + 1, text: raw.trim() });
  });
  if (sections.length > 3 && sections.slice(3).some((s) => s.length > 0))
    throw txnError(sections[3][0].line, "more than three sections", "compares, success, failure");
  const [compares = [], success = [], failure = []] = sections;
  if (compares.length + success.length + failure.length === 0)
    throw badArguments("the txn is empty", "write compares, a blank line, success operations...");
  return {
    compare: compares.map((l) => parseCompare(l.text, l.line)),
    success: success.map((l) => parseOp(l.text, l.line)),
    failure: failure.map((l) => parseOp(l.text, l.line)),
  };
}

function txnError(line: number, what: string, hint: string) {
  return badArguments(`txn line ${line}: ${what}`, hint);
}

const COMPARE = /^([a-z]+)\(\s*("(?:[^"\\]|\\.)*"|[^\s)]+)\s*\)\s*(==|=|!=|<|>)\s*(.+)$/;

function parseCompare(text: string, line: number): Compare {
  const m = COMPARE.exec(text);
  if (!m)
    throw txnError(
      line,
      `not a compare: ${text}`,
      'write e.g. value("key") = "v", or mod("key") > "0" (targets value, version, create, mod, lease)',
    );
  const [, targetName, keyToken, op, valueToken] = m;
  const target = TARGETS[targetName];
  if (!target)
    throw txnError(
      line,
      `unknown compare target ${targetName}`,
      "use value, version, create, mod or lease",
    );
  const key = enc(word(keyToken, line));
  const valueTokens = tokens(valueToken, line);
  if (valueTokens.length !== 1)
    throw txnError(line, `one value after ${op}, got ${valueTokens.length}`, 'quote it: "a b"');
  const value = valueTokens[0];
  const result = RESULTS[op];
  if (target === "value") return { key, result, targetUnion: { case: "value", value: enc(value) } };
  if (!/^\d+$/.test(value))
    throw txnError(
      line,
      `${targetName} compares with a number, got "${value}"`,
      `e.g. ${targetName}("k") > "0"`,
    );
  return { key, result, targetUnion: { case: target, value: BigInt(value) } };
}

function parseOp(text: string, line: number): RequestOp {
  const [verb, ...rest] = tokens(text, line);
  const flags = new Map<string, string | true>();
  const args: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const t = rest[i];
    if (!t.startsWith("--")) {
      args.push(t);
      continue;
    }
    const [name, inline] = t.slice(2).split("=", 2);
    if (name === "lease") {
      const value = inline ?? rest[++i];
      if (value === undefined || !/^\d+$/.test(value))
        throw txnError(line, "--lease needs a lease id", "e.g. --lease=1");
      flags.set(name, value);
    } else if (name === "prefix" && inline === undefined) flags.set(name, true);
    else
      throw txnError(
        line,
        `unknown option --${name}`,
        "put takes --lease=ID, get and del --prefix",
      );
  }
  const expect = (n: number, usage: string) => {
    if (args.length !== n)
      throw txnError(line, `${verb} takes ${usage}, got: ${text}`, `write ${verb} ${usage}`);
  };
  const range = () => {
    const key = enc(args[0]);
    return flags.has("prefix") ? prefixRange(key) : { key };
  };
  switch (verb) {
    case "put": {
      expect(2, "<key> <value> [--lease=ID]");
      if (flags.has("prefix")) throw txnError(line, "put takes no --prefix", "drop it");
      const lease = flags.get("lease");
      return {
        request: {
          case: "requestPut",
          value: {
            key: enc(args[0]),
            value: enc(args[1]),
            lease: lease ? BigInt(lease as string) : 0n,
          },
        },
      };
    }
    case "get":
      expect(1, "<key> [--prefix]");
      return { request: { case: "requestRange", value: range() } };
    case "del":
    case "delete":
      expect(1, "<key> [--prefix]");
      return { request: { case: "requestDeleteRange", value: range() } };
    default:
      throw txnError(line, `unknown operation "${verb ?? ""}"`, "use put, get or del");
  }
}

/** Whitespace-separated words; a word in double quotes is a JSON string. */
function tokens(text: string, line: number): string[] {
  const out: string[] = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|[^\s"]+)/y;
  let at = 0;
  while (at < text.length) {
    if (text.slice(at).trim() === "") break;
    re.lastIndex = at;
    const m = re.exec(text);
    if (!m) throw txnError(line, `unterminated quote: ${text}`, 'close the string with "');
    out.push(word(m[1], line));
    at = re.lastIndex;
  }
  return out;
}

function word(token: string, line: number): string {
  if (!token.startsWith('"')) return token;
  try {
    return JSON.parse(token) as string;
  } catch {
    throw txnError(line, `bad string ${token}`, 'use JSON escapes inside "..."');
  }
}
