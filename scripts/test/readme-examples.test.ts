// Runs the READMEs' curl and `buf curl` examples as printed, against a suite that `npm start`
// started on ports this test picked: the only change made to a command is its ports (and the
// data directory), moved by QUARTET_PORT_BASE as the README says. A command must succeed;
// where the README shows the answer in a `# {...}` comment, the answer must have the same
// fields, or the same error code.
import { type ChildProcess, execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startSuite, suiteOffsets } from "../suite-ports.ts";
import { shellBlocks } from "./readme.test.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
/** READMEs whose examples run against `npm start` as printed. */
const readmes = [
  "README.md",
  "services/consensus/README.md",
  "services/broker/README.md",
  "services/worker/README.md",
  "services/balancer/README.md",
];
const defaultBase = 7100;

interface Example {
  command: string;
  /** The README's answer comment right after it, if any. */
  expected: string | undefined;
}

/** The curl commands of a README, each with the `# answer` comment that follows it. */
export function curlExamples(markdown: string): Example[] {
  const examples: Example[] = [];
  for (const block of shellBlocks(markdown)) {
    const lines = block.split("\n");
    for (let i = 0; i < lines.length; i++) {
      let line = lines[i]!;
      if (!/^(curl|printf|npx buf curl)\b/.test(line.trim())) continue;
      let command = line;
      while (line.trimEnd().endsWith("\\") && i + 1 < lines.length) {
        line = lines[++i]!;
        command += `\n${line}`;
      }
      // A multi-line JSON body (an open quote) continues until it closes.
      const quotes = (text: string) => (text.replace(/\s{2,}#.*$/gm, "").match(/'/g) ?? []).length;
      while (quotes(command) % 2 === 1 && i + 1 < lines.length) {
        command += `\n${lines[++i]!}`;
      }
      const next = lines[i + 1]?.trim();
      examples.push({ command, expected: next?.startsWith("# {") ? next.slice(2) : undefined });
    }
  }
  return examples;
}

let base = 0;
let dataDir = "";
let npm: ChildProcess | undefined;

beforeAll(async () => {
  ({ npm, base, dataDir } = await startSuite(29, "readme"));
}, 120_000);

afterAll(async () => {
  if (!npm?.pid) return;
  const exited = new Promise((r) => npm!.once("exit", r));
  process.kill(npm.pid, "SIGTERM");
  await exited;
});

/** The command with the default suite's ports (and data directory) moved to this test's. */
function moved(command: string): string {
  return command
    .replace(/(127\.0\.0\.1|localhost):(\d{4})\b/g, (match, host: string, port: string) => {
      const offset = Number(port) - defaultBase;
      return suiteOffsets.includes(offset) ? `${host}:${base + offset}` : match;
    })
    .replaceAll("/tmp/quartet/", `${dataDir}/`);
}

function run(command: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      "bash",
      ["-c", command],
      { cwd: root, encoding: "utf8", timeout: 30_000, maxBuffer: 4 << 20 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ code, out: stdout + stderr });
      },
    );
  });
}

/** Top-level field names of a JSON object as the README prints it ("..." and all). */
const fieldsOf = (json: string) => [...json.matchAll(/[{,]\s*"(\w+)":/g)].map((m) => m[1]);

for (const readme of readmes) {
  const examples = curlExamples(readFileSync(join(root, readme), "utf8"));
  describe(`${readme} examples against npm start`, () => {
    test("has curl examples", () => expect(examples.length).toBeGreaterThan(0));
    for (const example of examples) {
      test(example.command.split("\n")[0]!, async () => {
        const { code, out } = await run(moved(example.command));
        // curl -m ends a stream it was told to watch for a while with 28: that is the example.
        const timedOutStream = code === 28 && /\s-m\s/.test(example.command);
        expect(code === 0 || timedOutStream, `exit ${code}: ${out}`).toBe(true);
        // Connect errors name their code ("not_found"); the gateway's REST errors number it (5).
        const expectedCode = example.expected && /"code":("\w+"|\d+)/.exec(example.expected)?.[1];
        // An error answer is only right where the README shows that error.
        if (!expectedCode)
          expect(out, "an error the README does not show").not.toMatch(/^\{"code":/);
        if (example.expected === undefined) return;
        if (expectedCode) {
          expect(out).toContain(`"code":${expectedCode}`);
          return;
        }
        for (const field of fieldsOf(example.expected.split("\n")[0]!).slice(0, 1))
          expect(out).toContain(`"${field}":`);
      });
    }
  });
}
