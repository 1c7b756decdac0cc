import { Compare_CompareResult as Result } from "@quartet/proto/quartet/consensus/v1/kv_pb";
import { describe, expect, it } from "vitest";
import { CliError } from "../src/output.ts";
import { parseTxn } from "../src/txn.ts";

const enc = (s: string) => new TextEncoder().encode(s);

/** The message of the bad-arguments error `text` gets. */
function refusal(text: string): string {
  try {
    parseTxn(text);
  } catch (e) {
    expect(e).toBeInstanceOf(CliError);
    expect((e as CliError).exitCode).toBe(2);
    return (e as CliError).message;
  }
  throw new Error(`parsed: ${text}`);
}

describe("kv txn's format (etcdctl's)", () => {
  it("reads compares, success and failure operations with etcdctl's abbreviations", () => {
    const txn = parseTxn(
      [
        'val("a") != "x y"',
        'ver("a") > "2"',
        "c(b) < 7",
        'm("b") = "0"',
        'lease("c") == "5"',
        "",
        'put "key with space" "line\\nbreak" --lease=5',
        "get dir/ --prefix",
        "",
        "del dir/ --prefix",
        "delete k",
      ].join("\n"),
    );
    expect(txn.compare).toEqual([
      {
        key: enc("a"),
        result: Result.NOT_EQUAL,
        targetUnion: { case: "value", value: enc("x y") },
      },
      { key: enc("a"), result: Result.GREATER, targetUnion: { case: "version", value: 2n } },
      { key: enc("b"), result: Result.LESS, targetUnion: { case: "createRevision", value: 7n } },
      { key: enc("b"), result: Result.EQUAL, targetUnion: { case: "modRevision", value: 0n } },
      { key: enc("c"), result: Result.EQUAL, targetUnion: { case: "lease", value: 5n } },
    ]);
    expect(txn.success).toEqual([
      {
        request: {
          case: "requestPut",
          value: { key: enc("key with space"), value: enc("line\nbreak"), lease: 5n },
        },
      },
      { request: { case: "requestRange", value: { key: enc("dir/"), rangeEnd: enc("dir0") } } },
    ]);
    expect(txn.failure).toEqual([
      {
        request: { case: "requestDeleteRange", value: { key: enc("dir/"), rangeEnd: enc("dir0") } },
      },
      { request: { case: "requestDeleteRange", value: { key: enc("k") } } },
    ]);
  });

  it("a first blank line means no compares; trailing blank lines are nothing", () => {
    const txn = parseTxn("\nput k v\n\n\n");
    expect(txn.compare).toEqual([]);
    expect(txn.success).toHaveLength(1);
    expect(txn.failure).toEqual([]);
  });

  it('the empty prefix is every key: from "\\0" on', () => {
    expect(parseTxn('\nget "" --prefix').success).toEqual([
      {
        request: {
          case: "requestRange",
          value: { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) },
        },
      },
    ]);
  });

  it("says which line is wrong and how to write it", () => {
    expect(refusal('value("k") ~ "v"')).toBe('txn line 1: not a compare: value("k") ~ "v"');
    expect(refusal('size("k") = "1"')).toBe("txn line 1: unknown compare target size");
    expect(refusal('mod("k") > "soon"')).toBe('txn line 1: mod compares with a number, got "soon"');
    expect(refusal("\nput k")).toBe("txn line 2: put takes <key> <value> [--lease=ID], got: put k");
    expect(refusal("\nput k v --lease")).toBe("txn line 2: --lease needs a lease id");
    expect(refusal("\nget k --limit=1")).toBe("txn line 2: unknown option --limit");
    expect(refusal('\nput "k v')).toBe('txn line 2: unterminated quote: put "k v');
    expect(refusal("\n\n\nput a b\n\nput c d")).toBe("txn line 6: more than three sections");
    expect(refusal("")).toBe("the txn is empty");
  });
});
