// The supervisor of npm start, through its Connect API: real child processes, a real server.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { type Process, SupervisorService } from "@quartet/proto/quartet/suite/v1/supervisor_pb";
import { createLogger, type Server, serve } from "@quartet/server";
import { afterEach, expect, test } from "vitest";
import { Supervisor, supervisorRoutes } from "../supervisor.ts";

const root = join(import.meta.dirname, "../..");
const token = "supervisor-test-token-0123456789";
const auth = { headers: { authorization: `Bearer ${token}` } };
let supervisor: Supervisor | undefined;
let server: Server | undefined;
let logDir: string | undefined;

afterEach(async () => {
  await supervisor?.stopAll();
  await server?.close();
  if (logDir) rmSync(logDir, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test("kills, restarts, stops and starts services, and streams every change", async () => {
  logDir = mkdtempSync(join(tmpdir(), "quartet-supervisor-"));
  const printed: string[] = [];
  let printedLine: (() => void) | undefined;
  supervisor = new Supervisor(
    ["a", "b"].map((name) => ({
      name,
      entry: "scripts/test/fixtures/idle-service.ts",
      args: [],
      url: `http://127.0.0.1:1/${name}`,
      role: "idle",
    })),
    {
      root,
      env: process.env,
      logDir,
      print: (line) => {
        printed.push(line);
        printedLine?.();
      },
    },
  );
  supervisor.startAll();
  server = await serve({
    name: "supervisor-test",
    host: "127.0.0.1",
    routes: supervisorRoutes(supervisor),
    auth: { token, protects: (p) => p.startsWith("/quartet.suite.v1.") },
    logger: createLogger("supervisor-test", "warn"),
  });
  const client = createClient(
    SupervisorService,
    createConnectTransport({ baseUrl: server.url, httpVersion: "2" }),
  );
  const refused = await client.listProcesses({}).catch((e: unknown) => ConnectError.from(e));
  expect((refused as ConnectError).code).toBe(Code.Unauthenticated);

  const controller = new AbortController();
  const lists: Process[][] = [];
  let notify: (() => void) | undefined;
  const reading = (async () => {
    for await (const m of client.watchProcesses({}, { ...auth, signal: controller.signal })) {
      lists.push(m.processes);
      notify?.();
    }
  })().catch(() => {});
  /** The first list (already seen or to come) in which `name` matches. */
  const until = async (name: string, match: (p: Process) => boolean): Promise<Process> => {
    for (let seen = 0; ; ) {
      for (; seen < lists.length; seen++) {
        const p = lists[seen]!.find((q) => q.name === name);
        if (p && match(p)) return p;
      }
      await new Promise<void>((resolve) => {
        notify = resolve;
      });
    }
  };

  try {
    const first = await until("a", (p) => p.state === "running");
    expect(first.pid).toBeGreaterThan(0);

    // Killed as a crash: the supervisor says so, waits its backoff and starts it again.
    const killed = await client.killProcess({ name: "a" }, auth);
    expect(killed.process?.pid).toBe(first.pid);
    const backoff = await until("a", (p) => p.state === "backoff");
    expect(backoff.lastExit).toBe("signal SIGKILL");
    expect(backoff.restartAtUnixMs).toBeGreaterThan(0n);
    const restarted = await until("a", (p) => p.state === "running" && p.restarts === 1);
    expect(restarted.pid).not.toBe(first.pid);
    expect(alive(restarted.pid)).toBe(true);
    expect(printed.some((l) => l.includes("exited (signal SIGKILL); restarting in"))).toBe(true);

    // Stopped: it stays stopped until started.
    const b = await until("b", (p) => p.state === "running");
    await client.stopProcess({ name: "b" }, auth);
    const stopped = await until("b", (p) => p.state === "stopped");
    expect(stopped.pid).toBe(0);
    expect(stopped.restarts).toBe(0);
    expect(alive(b.pid)).toBe(false);
    const notRunning = await client
      .killProcess({ name: "b" }, auth)
      .catch((e: unknown) => ConnectError.from(e));
    expect((notRunning as ConnectError).code).toBe(Code.FailedPrecondition);
    await client.startProcess({ name: "b" }, auth);
    const again = await until("b", (p) => p.state === "running" && p.pid !== b.pid);
    expect(alive(again.pid)).toBe(true);

    const unknown = await client
      .killProcess({ name: "nope" }, auth)
      .catch((e: unknown) => ConnectError.from(e));
    expect((unknown as ConnectError).code).toBe(Code.NotFound);
    expect((unknown as ConnectError).rawMessage).toContain("known: a, b");
    // Warnings reach the terminal, prefixed with the service's name.
    while (!printed.some((l) => l.startsWith("a |") && l.includes("warn idle service started")))
      await new Promise<void>((resolve) => {
        printedLine = resolve;
      });
  } finally {
    controller.abort();
    await reading;
  }
}, 60_000);

test("stops the registry's members last, so the others can still deregister from it", async () => {
  logDir = mkdtempSync(join(tmpdir(), "quartet-supervisor-"));
  supervisor = new Supervisor(
    [
      { name: "member", stopLast: true },
      { name: "worker", stopLast: false },
    ].map(({ name, stopLast }) => ({
      name,
      entry: "scripts/test/fixtures/idle-service.ts",
      args: [],
      url: `http://127.0.0.1:1/${name}`,
      role: "idle",
      stopLast,
    })),
    { root, env: process.env, logDir, print: () => {} },
  );
  const state = (name: string) => supervisor?.list().find((p) => p.name === name)?.state;
  let memberWhenWorkerStopped: string | undefined;
  supervisor.listen(() => {
    if (memberWhenWorkerStopped === undefined && state("worker") === "stopped")
      memberWhenWorkerStopped = state("member");
  });
  supervisor.startAll();
  await supervisor.stopAll();
  // Not yet told to stop when the worker was gone (it may still be starting up).
  expect(["starting", "running"]).toContain(memberWhenWorkerStopped);
  expect(supervisor.list().map((p) => p.state)).toEqual(["stopped", "stopped"]);
});

test("restarts a service that crashed, not one that exited cleanly by itself", async () => {
  logDir = mkdtempSync(join(tmpdir(), "quartet-supervisor-"));
  const printed: string[] = [];
  supervisor = new Supervisor(
    [
      { name: "removed", code: "0" },
      { name: "crashed", code: "1" },
    ].map(({ name, code }) => ({
      name,
      entry: "scripts/test/fixtures/exiting-service.ts",
      args: [code],
      url: `http://127.0.0.1:1/${name}`,
      role: "exits",
    })),
    { root, env: process.env, logDir, print: (line) => printed.push(line) },
  );
  const byName = (name: string) => supervisor?.list().find((p) => p.name === name);
  const settled = new Promise<void>((resolve) => {
    supervisor?.listen(() => {
      if (byName("removed")?.lastExit && byName("crashed")?.state === "backoff") resolve();
    });
  });
  supervisor.startAll();
  await settled;
  expect(byName("removed")).toMatchObject({ state: "stopped", lastExit: "exit code 0" });
  expect(byName("crashed")).toMatchObject({ state: "backoff", lastExit: "exit code 1" });
  expect(printed.join("\n")).toContain("not restarting");
});
