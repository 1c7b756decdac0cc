// The gateway's routes, live (BalancerAdminService.WatchRoutes), and demo traffic through it:
// the breaker and load-balancing pages draw the first and need the second to have something
// to show.
import type { Route } from "@quartet/proto/quartet/balancer/v1/admin_pb";
import { WorkerService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { api } from "./api.ts";
import { fill, h } from "./dom.ts";
import { describe, follow, type StreamState } from "./stream.ts";

export const workerRoute = WorkerService.typeName;

export interface RoutesFeed {
  routes: Route[];
  observedAt: number;
  state: StreamState;
  /** The state for people, with the error that ended the last stream. */
  status: string;
}

export function followRoutes(signal: AbortSignal, changed: (feed: RoutesFeed) => void): RoutesFeed {
  const feed: RoutesFeed = { routes: [], observedAt: 0, state: "connecting", status: "connecting" };
  follow(
    signal,
    (sig) => api.gateway.watchRoutes({ intervalMs: 500 }, { signal: sig }),
    (message) => {
      feed.routes = message.routes;
      feed.observedAt = Number(message.observedAtUnixMs) || Date.now();
      changed(feed);
    },
    (state, error) => {
      feed.state = state;
      feed.status = describe(state, error);
      changed(feed);
    },
  );
  return feed;
}

/**
 * Compute calls through the gateway at a steady rate while switched on (the breaker only
 * moves, and the pickers only share out, when calls flow). Off when the page goes away.
 */
export function trafficControl(signal: AbortSignal, hashHeader: () => string): HTMLElement {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let sent = 0;
  let failed = 0;
  const counts = h("span", { class: "stream" });
  const rate = h(
    "select",
    { name: "rate" },
    ...[5, 10, 20, 50].map((r) => h("option", { value: r, selected: r === 20 }, `${r}/s`)),
  );
  const toggle = h("input", { type: "checkbox", name: "traffic" });
  const tick = () => {
    const header = hashHeader();
    const key = `user-${Math.floor(Math.random() * 50)}`;
    sent++;
    api.worker
      .compute(
        { iterations: 10, input: key },
        { signal, headers: header ? { [header]: key } : {}, timeoutMs: 5000 },
      )
      .catch(() => failed++)
      .finally(() => fill(counts, ` ${sent} sent, ${failed} failed`));
    timer = setTimeout(tick, 1000 / Number(rate.value));
  };
  const set = () => {
    clearTimeout(timer);
    if (toggle.checked && !signal.aborted) tick();
  };
  toggle.addEventListener("change", set);
  signal.addEventListener("abort", () => clearTimeout(timer));
  return h(
    "label",
    { class: "card" },
    toggle,
    " send Compute calls through the gateway at ",
    rate,
    counts,
  );
}
