import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { expect, it } from "vitest";
import { workerEntry } from "./workers.ts";

const run = promisify(execFile);

it("--help shows each default as it would be typed (the fan-out hosts as a list, not {})", async () => {
  const { stdout } = await run(process.execPath, [workerEntry, "--help"]);
  expect(stdout).toContain(
    '--fanout-hosts, QUARTET_FANOUT_HOSTS (default "127.0.0.1,localhost,::1")',
  );
  expect(stdout).not.toContain("(default {})");
});
