import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const cliEntry = fileURLToPath(new URL("../src/main.ts", import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `quartet` binary (src/main.ts on the pinned node) as a child process. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = startCli(args, env);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

export function startCli(args: string[], env: Record<string, string> = {}) {
  return spawn(process.execPath, [cliEntry, ...args], {
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** The JSON lines of stdout, parsed. */
export function jsonLines(stdout: string): unknown[] {
  return stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l));
}

/** Asserts the documented error shape: exactly one line on stderr. */
export function oneLine(stderr: string): string {
  const lines = stderr.split("\n").filter((l) => l !== "");
  if (lines.length !== 1) throw new Error(`expected one error line, got:\n${stderr}`);
  return lines[0];
}
