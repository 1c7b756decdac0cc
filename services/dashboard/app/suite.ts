// The suite's processes as `npm start`'s supervisor reports them (SupervisorService, streamed),
// for the kill and restart buttons. A deployment without that supervisor has no such buttons.
import type { Process } from "@quartet/proto/quartet/suite/v1/supervisor_pb";
import { api } from "./api.ts";
import { h } from "./dom.ts";
import { describe, follow } from "./stream.ts";
import { act } from "./trace.ts";

export interface Suite {
  /** Processes by base URL; empty until the stream answers (or when there is no supervisor). */
  byUrl: Map<string, Process>;
  available: boolean;
  /** Why the process stream is not live, for the page to say (e.g. no credential). */
  problem: string;
}

export function followSuite(signal: AbortSignal, changed: () => void): Suite {
  const suite: Suite = { byUrl: new Map(), available: false, problem: "" };
  follow(
    signal,
    (s) => api.supervisor.watchProcesses({}, { signal: s }),
    (message) => {
      suite.available = true;
      suite.byUrl = new Map(message.processes.map((p) => [p.url.replace(/\/$/, ""), p]));
      suite.problem = "";
      changed();
    },
    (state, error) => {
      if (state !== "retrying") return;
      suite.problem = `the supervisor's process list: ${describe(state, error)}`;
      changed();
    },
  );
  return suite;
}

/**
 * Kill for a running process (SIGKILL, as a crash: the supervisor restarts it after its
 * backoff), Restart for one that is not running (now, without waiting out the backoff).
 */
export function processButton(proc: Process | undefined): HTMLButtonElement | null {
  if (!proc) return null;
  const running = proc.state === "running";
  return h(
    "button",
    {
      "data-action": running ? "kill" : "start",
      onclick: () =>
        running
          ? act(
              `kill ${proc.name}`,
              (t) => api.supervisor.killProcess({ name: proc.name }, t),
              () => "killed (the supervisor restarts it)",
            )
          : act(
              `start ${proc.name}`,
              (t) => api.supervisor.startProcess({ name: proc.name }, t),
              (r) => r.process?.state ?? "",
            ),
    },
    running ? "Kill" : "Restart",
  );
}
