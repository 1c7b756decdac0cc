import { describe, expect, it } from "vitest";
import { hashKey, hashString, xxhash32 } from "../src/hash.ts";

// Published XXH32 vectors (seed 0): the reference implementation's sanity values as listed by
// pierrec/xxHash and lz4js, plus "abc" (Fastly's docs) and "Nobody inspects..." (python-xxhash).
const vectors: [string, number][] = [
  ["", 0x02cc5d05],
  ["a", 0x550d7456],
  ["ab", 0x4999fc53],
  ["abc", 0x32d153ff],
  ["abcd", 0xa3643705],
  ["abcde", 0x9738f19b],
  ["abcdef", 0x8b7cd587],
  ["abcdefg", 0x9dd093b3],
  ["abcdefgh", 0x0bb3c6bb],
  ["abcdefghi", 0xd03c13fd],
  ["abcdefghij", 0x8b988cfe],
  ["abcdefghijklmnop", 0x9d2d8b62],
  ["abcdefghijklmnopqrstuvwxyz0123456789", 0x42ae804d],
  ["Nobody inspects the spammish repetition", 0xe2293b2f],
];

describe("xxhash32", () => {
  it.each(vectors)("hashes %j to the published value", (text, expected) => {
    expect(hashString(text)).toBe(expected);
    expect(xxhash32(new TextEncoder().encode(text))).toBe(expected);
  });

  it("hashes strings as their UTF-8 bytes, including non-ASCII and surrogate pairs", () => {
    for (const text of [
      "héllo",
      "日本語のキー",
      "emoji 🎉 key",
      "\u{10ffff}",
      "lone \ud800 surrogate",
    ]) {
      expect(hashKey(text)).toBe(xxhash32(new TextEncoder().encode(text)));
    }
  });

  it("hashes keys longer than the scratch buffer", () => {
    const long = "k".repeat(5000);
    expect(hashKey(long)).toBe(xxhash32(new TextEncoder().encode(long)));
  });

  it("depends on the seed", () => {
    expect(hashString("abc", 1)).not.toBe(hashString("abc", 0));
    expect(xxhash32(new TextEncoder().encode("abc"), 1)).toBe(hashString("abc", 1));
  });
});
