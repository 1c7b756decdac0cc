// Reads the output of `npm test` (vitest per package, through turbo) on stdin, passes it
// through, and ends with one line totalling every package: "N passed, M failed".
import { createInterface } from "node:readline";
import { stripVTControlCharacters } from "node:util";

let passed = 0;
let failed = 0;
let skipped = 0;
for await (const line of createInterface({ input: process.stdin })) {
  console.log(line);
  const plain = stripVTControlCharacters(line);
  if (!/\bTests\s+\d/.test(plain)) continue;
  passed += Number(/(\d+) passed/.exec(plain)?.[1] ?? 0);
  failed += Number(/(\d+) failed/.exec(plain)?.[1] ?? 0);
  skipped += Number(/(\d+) skipped/.exec(plain)?.[1] ?? 0);
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
