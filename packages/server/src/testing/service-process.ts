import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";

/** A Quartet service running as a real child process, for integration tests. */
export interface ServiceProcess {
  /** Base URL the service announced in its "listening" log line. */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Every stdout/stderr line so far, for assertions and failure reports. */
  readonly lines: string[];
  /** Resolves with the exit code and signal once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first parsed JSON log line for which `match` returns true. */
  waitForLog(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** Sends SIGKILL (or the given signal) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface StartOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Extra node flags, placed before the entry file. */
  nodeArgs?: string[];
}

/**
 * Starts `node <entry> ...args` and resolves once the process logs `{"msg":"listening","url":...}`.
 * Rejects with the process output if it exits first. The child runs on the same Node binary as
 * the caller, so the pinned runtime is used.
 */
export async function startServiceProcess(
  entry: string,
  args: string[] = [],
  options: StartOptions = {},
): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), entry, ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const waiters = new Set<{
    match: (line: Record<string, unknown>) => boolean;
    resolve: (line: Record<string, unknown>) => void;
  }>();
  const exited = once(child, "exit").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  const onLine = (text: string) => {
    lines.push(text);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof parsed !== "object" || parsed === null) return;
    for (const waiter of waiters) {
      if (waiter.match(parsed as Record<string, unknown>)) {
        waiters.delete(waiter);
        waiter.resolve(parsed as Record<string, unknown>);
      }
    }
  };
  createInterface({ input: child.stdout! }).on("line", onLine);
  createInterface({ input: child.stderr! }).on("line", onLine);

  const waitForLog = (match: (line: Record<string, unknown>) => boolean) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      for (const text of lines) {
        try {
          const parsed = JSON.parse(text);
          if (parsed && typeof parsed === "object" && match(parsed)) return resolve(parsed);
        } catch {}
      }
      const waiter = { match, resolve };
      waiters.add(waiter);
      void exited.then(({ code, signal }) => {
        if (!waiters.has(waiter)) return;
        waiters.delete(waiter);
        reject(
          new Error(
            `process ${entry} exited (code ${code}, signal ${signal}) before the awaited log line:\n${lines.join("\n")}`,
          ),
        );
      });
    });

  const listening = await waitForLog(
    (line) => line.msg === "listening" && typeof line.url === "string",
  );
  const url = String(listening.url);
  return {
    url,
    port: Number(new URL(url).port),
    pid: child.pid!,
    child,
    lines,
    exited,
    waitForLog,
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
