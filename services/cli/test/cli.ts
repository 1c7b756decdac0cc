import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const cliEntry = fileURLToPath(new URL("../src/main.ts", import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the real `quartet` binary (src/main.ts on the pinned node) as a child process; `stdin`
 * is written to its standard input (else it reads an empty one).
 */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  stdin?: string | Uint8Array,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = startCli(args, env);
    child.stdin.end(stdin ?? "");
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

/** The binary with its stdio piped (a command that reads stdin waits until the test ends it). */
export function startCli(args: string[], env: Record<string, string> = {}) {
  return spawn(process.execPath, [cliEntry, ...args], {
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["pipe", "pipe", "pipe"],
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
