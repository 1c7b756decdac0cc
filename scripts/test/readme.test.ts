// Runs the READMEs' commands as printed, from the repository root, with the PATH the user has
// (system Node 20 is enough: the README's commands must reach the pinned Node 24 themselves).
// Covered now: every `... --help` line of a ```sh block. A block preceded by the HTML comment
// `<!-- readme-test: skip (reason) -->` is skipped on purpose (e.g. Docker/Jaeger, Go).
// Still to come: the curl examples against a suite started on test-chosen ports.
import { execSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
// npm and vitest put node_modules/.bin (the pinned node) first on PATH; a user's shell does not.
const userPath = (process.env.PATH ?? "")
  .split(":")
  .filter((dir) => !dir.includes("node_modules"))
  .join(":");
const userEnv = { ...process.env, PATH: userPath };
/** Add a README here once its examples are meant to run as printed. */
const readmes = ["README.md"];

/** The ```sh blocks of a README, without those marked to be skipped. */
export function shellBlocks(markdown: string): string[] {
  const blocks: string[] = [];
  const fence = /(<!-- readme-test: skip[^>]*-->\s*)?```sh\n([\s\S]*?)```/g;
  for (const match of markdown.matchAll(fence)) if (!match[1]) blocks.push(match[2]);
  return blocks;
}

for (const readme of readmes) {
  const helpLines = shellBlocks(readFileSync(join(root, readme), "utf8"))
    .flatMap((block) => block.split("\n"))
    .map((line) => line.replace(/\s+#.*$/, "").trim())
    .filter((line) => line.endsWith("--help"));
  describe(readme, () => {
    test("has --help lines to check", () => expect(helpLines.length).toBeGreaterThan(0));
    for (const line of helpLines) {
      test(`${line} prints the settings`, () => {
        const out = execSync(line, { cwd: root, encoding: "utf8", stdio: "pipe", env: userEnv });
        expect(out).toContain("Settings (flag, environment variable, default):");
        // Starting a Node process that loads a service takes seconds on a busy 2-core machine.
      }, 30_000);
    }
  });
}
