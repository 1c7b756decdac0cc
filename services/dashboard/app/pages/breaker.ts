// Circuit breaker: each worker endpoint's breaker (closed, open, half-open) as the gateway
// reports it live, its failure rate against the threshold that opens it, and its state over
// time; a control that makes one worker fail a chosen fraction of calls.
import type { EndpointStatus } from "@quartet/proto/quartet/balancer/v1/admin_pb";
import { Code, WorkerAdminService } from "@quartet/proto/quartet/worker/v1/worker_pb";
import { clientAt } from "../api.ts";
import { fill, h, s } from "../dom.ts";
import type { Page } from "../main.ts";
import { followRoutes, trafficControl, workerRoute } from "../routes.ts";
import { act } from "../trace.ts";

const stateColour: Record<string, string> = {
  closed: "#2e7d32",
  open: "#c62828",
  half_open: "#ef6c00",
};
const windowMs = 60_000;

export const breakerPage: Page = {
  path: "/breaker",
  title: "Circuit breaker",
  render(root, signal) {
    const status = h("p", { class: "stream" }, "connecting…");
    const cards = h("div", { class: "row" });
    root.append(
      h("h2", {}, "Circuit breakers at the gateway, one per worker endpoint"),
      status,
      trafficControl(signal, () => ""),
      cards,
    );
    // The fraction picked per endpoint survives redraws.
    const chosen = new Map<string, string>();
    followRoutes(signal, (feed) => {
      const route = feed.routes.find((r) => r.service === workerRoute);
      fill(
        status,
        feed.state === "live"
          ? `live · ${new Date(feed.observedAt).toLocaleTimeString()}`
          : feed.status,
      );
      status.className = `stream ${feed.state}`;
      if (!route) return;
      fill(cards, ...route.endpoints.map((e) => card(e, feed.observedAt)));
    });

    function card(e: EndpointStatus, now: number): HTMLElement {
      const fraction = h(
        "select",
        {
          name: "fail-fraction",
          onchange: (ev) => chosen.set(e.id, (ev.target as HTMLSelectElement).value),
        },
        ...["0", "0.25", "0.5", "0.75", "1"].map((f) =>
          h(
            "option",
            { value: f, selected: (chosen.get(e.id) ?? "0") === f },
            `${Number(f) * 100}%`,
          ),
        ),
      );
      return h(
        "div",
        { class: "card", "data-endpoint": e.address, "data-breaker-state": e.breakerState },
        h("b", {}, e.id),
        " ",
        h("span", { class: `badge ${e.breakerState}` }, e.breakerState.replace("_", "-")),
        h("div", {}, `${e.calls} calls, ${e.errors} errors, ${e.rps.toFixed(1)}/s`),
        rateBar(e.failureRate, e.failureThreshold),
        timeline(e, now),
        h(
          "form",
          {
            class: "control",
            onsubmit: (ev) => {
              ev.preventDefault();
              const f = Number(fraction.value);
              void act(
                `${e.id} fails ${f * 100}% of calls`,
                (t) =>
                  clientAt(WorkerAdminService, e.address).setFault(
                    f > 0
                      ? { fault: { failCode: Code.UNAVAILABLE, failFraction: f }, seed: 1n }
                      : {},
                    t,
                  ),
                (r) => (r.standing?.fault ? "fault set" : "fault cleared"),
              );
            },
          },
          "make it fail ",
          fraction,
          h("button", { type: "submit" }, "Apply"),
        ),
      );
    }
  },
};

/** Failure share over the breaker's window against the share that opens it. */
function rateBar(rate: number, threshold: number): SVGSVGElement {
  const w = 240;
  return s(
    "svg",
    { width: w, height: 28 },
    s("rect", { x: 0, y: 4, width: w, height: 12, fill: "#eee" }),
    s("rect", {
      x: 0,
      y: 4,
      width: Math.min(1, rate) * w,
      height: 12,
      fill: rate >= threshold && threshold > 0 ? "#c62828" : "#ef6c00",
    }),
    threshold > 0
      ? s("line", {
          x1: threshold * w,
          x2: threshold * w,
          y1: 0,
          y2: 20,
          stroke: "#222",
          "stroke-width": 2,
        })
      : null,
    s(
      "text",
      { x: 0, y: 27 },
      `failure rate ${(rate * 100).toFixed(0)}%${threshold > 0 ? ` (opens at ${(threshold * 100).toFixed(0)}%)` : ""}`,
    ),
  );
}

/** The breaker's state over the last minute, from its transitions. */
function timeline(e: EndpointStatus, now: number): SVGSVGElement {
  const w = 240;
  const x = (t: number) => Math.max(0, w - ((now - t) / windowMs) * w);
  const svg = s("svg", { width: w, height: 30 });
  const ts = e.transitions.map((t) => ({ from: t.from, to: t.to, at: Number(t.atUnixMs) }));
  let start = now - windowMs;
  let state = ts.find((t) => t.at > start)?.from ?? e.breakerState;
  for (const t of ts) {
    if (t.at <= start) {
      state = t.to;
      continue;
    }
    svg.append(
      s("rect", {
        x: x(start),
        y: 0,
        width: x(t.at) - x(start),
        height: 14,
        fill: stateColour[state] ?? "#999",
      }),
    );
    start = t.at;
    state = t.to;
  }
  svg.append(
    // The state now, at least a few pixels wide so a change that just happened shows.
    s("rect", {
      x: Math.min(x(start), w - 4),
      y: 0,
      width: Math.max(4, w - x(start)),
      height: 14,
      fill: stateColour[state] ?? "#999",
    }),
    s("text", { x: 0, y: 27 }, "last 60 s"),
  );
  return svg;
}
