// The suite's processes as `npm start`'s supervisor reports them (SupervisorService, streamed),
// for the kill and restart buttons. A deployment without that supervisor has no such buttons.
import type { Process } from "@quartet/proto/quartet/suite/v1/supervisor_pb";
import { api } from "./api.ts";
import { follow } from "./stream.ts";

export interface Suite {
  /** Processes by base URL; empty until the stream answers (or when there is no supervisor). */
  byUrl: Map<string, Process>;
  available: boolean;
}

export function followSuite(signal: AbortSignal, changed: () => void): Suite {
  const suite: Suite = { byUrl: new Map(), available: false };
  follow(
    signal,
    (s) => api.supervisor.watchProcesses({}, { signal: s }),
    (message) => {
      suite.available = true;
      suite.byUrl = new Map(message.processes.map((p) => [p.url.replace(/\/$/, ""), p]));
      changed();
    },
  );
  return suite;
}
