// Reads the output of `npm test` (vitest per package, through turbo) on stdin, passes it
// through, and ends with the failed tests again (name and first lines of the error, which a
// long log would otherwise bury) and one line totalling every package: "N passed, M failed".
import { createInterface } from "node:readline";
import { stripVTControlCharacters } from "node:util";

/** Lines of each failure kept for the recap: its name, then the error's first lines. */
const recapLines = 6;

let passed = 0;
let failed = 0;
let skipped = 0;
const recap: string[] = [];
let keep = 0;
for await (const line of createInterface({ input: process.stdin })) {
  console.log(line);
  const plain = stripVTControlCharacters(line);
  if (/\bFAIL\s+\S+\.test\.ts/.test(plain)) {
    recap.push(plain);
    keep = recapLines;
  } else if (keep > 0 && plain.replace(/^\S+:test:/, "").trim() !== "") {
    recap.push(plain);
    keep--;
  }
  if (!/\bTests\s+\d/.test(plain)) continue;
  passed += Number(/(\d+) passed/.exec(plain)?.[1] ?? 0);
  failed += Number(/(\d+) failed/.exec(plain)?.[1] ?? 0);
  skipped += Number(/(\d+) skipped/.exec(plain)?.[1] ?? 0);
}
if (recap.length > 0) console.log(`\nFailed tests, again:\n${recap.join("\n")}\n`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
