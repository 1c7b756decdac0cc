// `npm start` as a user (or a process manager) runs it: a real npm in its own process group,
// on ports this test picked through QUARTET_PORT_BASE.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { portFree } from "@quartet/server/testing";
import { afterEach, expect, test } from "vitest";
import { freeSuiteBase, startSuite, suiteOffsets } from "../suite-ports.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * Polls `check` until it holds; fails after 30 s with `what` and what npm start printed, well
 * within the test's timeout, so a failure names the wait that did not end.
 */
async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  printed: () => string,
): Promise<void> {
  const deadline = performance.now() + 30_000;
  while (performance.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting after 30 s: ${what}\n${printed()}`);
}

async function healthy(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    return res.ok && ((await res.json()) as { status?: string }).status === "SERVING";
  } catch {
    return false;
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

let npm: ChildProcess | undefined;
afterEach(() => {
  if (npm?.pid && groupAlive(npm.pid)) process.kill(-npm.pid, "SIGKILL");
});

test("SIGTERM to npm's own pid stops the supervisor and every service and frees the ports", async () => {
  const suite = await startSuite(17, "start");
  npm = suite.npm;
  const { base, dataDir, output } = suite;
  const ports = suiteOffsets.map((o) => base + o);
  const exited = new Promise((r) => npm!.once("exit", r));
  await until(
    "every service healthy",
    async () => (await Promise.all(ports.map(healthy))).every(Boolean),
    output,
  );
  // The local credential: kept private in the data directory and shown with how to use it.
  expect(statSync(join(dataDir, "cluster-token")).mode & 0o777).toBe(0o600);
  await until("the start-up text", () => output().includes("Ctrl-C stops everything"), output);
  expect(output()).toContain("All 8 services are ready");
  expect(output()).toContain(`-H "Authorization: Bearer $(cat ${join(dataDir, "cluster-token")})"`);
  // The credential works for admin calls, as the READMEs print them.
  const token = readFileSync(join(dataDir, "cluster-token"), "utf8").trim();
  const created = await fetch(
    `http://127.0.0.1:${base}/quartet.broker.v1.BrokerAdminService/CreateQueue`,
    {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ queue: "from-the-test", settings: { durable: true } }),
    },
  );
  expect(created.status).toBe(200);
  // Info lines go to the log files, not the terminal.
  expect(output()).not.toContain("raft role changed");
  expect(readFileSync(join(dataDir, "logs", "consensus-1.log"), "utf8")).toContain(
    "member started",
  );

  process.kill(npm.pid!, "SIGTERM");
  let gone = false;
  void exited.then(() => (gone = true));
  await until("npm start exits on SIGTERM", () => gone, output);
  await until(
    "every port released",
    async () => (await Promise.all(ports.map(portFree))).every(Boolean),
    output,
  );
  await until("no process of the tree left", () => !groupAlive(npm!.pid!), output);
  expect(output()).toContain("stopping");
}, 120_000);

test("a second npm start names the taken ports and exits instead of crash-looping", async () => {
  const base = await freeSuiteBase(17);
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(base + 102, "127.0.0.1", r));
  try {
    npm = spawn("npm", ["start"], {
      cwd: root,
      detached: true,
      env: { ...process.env, QUARTET_PORT_BASE: String(base) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    npm.stdout!.on("data", (d) => (output += d));
    npm.stderr!.on("data", (d) => (output += d));
    const code = await new Promise((r) => npm!.once("exit", r));
    expect(code).not.toBe(0);
    expect(output).toContain(`Ports ${base + 102} are taken`);
  } finally {
    holder.close();
  }
}, 60_000);
