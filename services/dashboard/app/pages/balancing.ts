// Load balancing: calls per second each worker takes through the gateway, live, under the
// route's picker; switch the picker, kill and restart a worker and watch its share move; for a
// hashing picker, the ring's ownership of the key space and where sample keys land.
import type { KeyOwnershipResponse, Route } from "@quartet/proto/quartet/balancer/v1/admin_pb";
import { api } from "../api.ts";
import { fill, h, s } from "../dom.ts";
import type { Page } from "../main.ts";
import { followRoutes, trafficControl, workerRoute } from "../routes.ts";
import { followSuite, processButton } from "../suite.ts";
import { act } from "../trace.ts";

const pickers = [
  "round_robin",
  "weighted_round_robin",
  "least_connections",
  "least_request",
  "ring_hash",
  "maglev",
  "bounded_load",
];
const hashing = new Set(["ring_hash", "maglev", "bounded_load"]);
const palette = ["#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#c62828", "#5d4037"];
const sampleKeys = Array.from({ length: 12 }, (_, i) => `user-${i}`);
const historyLength = 60;

export const balancingPage: Page = {
  path: "/balancing",
  title: "Load balancing",
  render(root, signal) {
    let route: Route | undefined;
    const history: { at: number; rps: Map<string, number> }[] = [];
    const status = h("p", { class: "stream" }, "connecting…");
    const picker = h(
      "select",
      {
        name: "picker",
        class: "control",
        onchange: () =>
          void act(
            `picker ${picker.value}`,
            (t) => api.gateway.setPicker({ service: workerRoute, picker: picker.value }, t),
            (r) => `now ${r.route?.picker}`,
          ),
      },
      ...pickers.map((p) => h("option", { value: p }, p)),
    );
    const bars = h("div", { class: "card" });
    const chart = h("div", { class: "card", id: "share-chart" });
    const ring = h("div", { class: "card", id: "key-ownership" });
    root.append(
      h("h2", {}, "Load balancing: the gateway's worker route"),
      status,
      h(
        "div",
        { class: "row" },
        h("label", { class: "card" }, "picker ", picker),
        trafficControl(signal, () => route?.hashHeader ?? ""),
      ),
      h("div", { class: "row" }, bars, chart, ring),
    );
    const suite = followSuite(signal, () => route && drawBars(route));
    let ownershipOf = "";

    followRoutes(signal, (feed) => {
      route = feed.routes.find((r) => r.service === workerRoute) ?? route;
      fill(status, feed.state === "live" ? `live · picker ${route?.picker ?? "?"}` : feed.status);
      status.className = `stream ${feed.state}`;
      if (!route || feed.state !== "live") return;
      root.dataset.picker = route.picker;
      if (document.activeElement !== picker) picker.value = route.picker;
      history.push({
        at: feed.observedAt,
        rps: new Map(route.endpoints.map((e) => [e.id, e.rps])),
      });
      if (history.length > historyLength) history.shift();
      drawBars(route);
      drawChart(route);
      // Ownership changes only with the picker or the set of eligible endpoints: ask then.
      const key = `${route.picker}|${route.endpoints
        .filter((e) => e.healthy)
        .map((e) => e.id)
        .join(",")}`;
      if (key !== ownershipOf) {
        ownershipOf = key;
        void drawRing(route);
      }
    });

    function drawBars(r: Route): void {
      const total = r.endpoints.reduce((sum, e) => sum + e.rps, 0) || 1;
      fill(
        bars,
        h("b", {}, "calls per second"),
        h(
          "table",
          {},
          ...r.endpoints.map((e, i) => {
            const proc = suite.byUrl.get(e.address.replace(/\/$/, ""));
            return h(
              "tr",
              { "data-endpoint": e.address, "data-rps": e.rps.toFixed(2) },
              h("td", {}, h("span", { style: `color:${palette[i % palette.length]}` }, "■ "), e.id),
              h(
                "td",
                {},
                s(
                  "svg",
                  { width: 160, height: 14 },
                  s("rect", {
                    width: (e.rps / total) * 160,
                    height: 14,
                    fill: palette[i % palette.length],
                  }),
                ),
              ),
              h("td", {}, `${e.rps.toFixed(1)}/s`),
              h(
                "td",
                {},
                e.healthy
                  ? ""
                  : h(
                      "span",
                      { class: "warn" },
                      e.drained ? "drained" : e.ejected ? "ejected" : "unhealthy",
                    ),
              ),
              h("td", { class: "control" }, processButton(proc)),
            );
          }),
        ),
      );
    }

    function drawChart(r: Route): void {
      const w = 320;
      const hgt = 140;
      const max = Math.max(1, ...history.flatMap((p) => [...p.rps.values()]));
      const svg = s("svg", { width: w, height: hgt + 16 });
      r.endpoints.forEach((e, i) => {
        const points = history.map(
          (p, j) =>
            `${(j / Math.max(1, history.length - 1)) * w},${hgt - ((p.rps.get(e.id) ?? 0) / max) * hgt}`,
        );
        svg.append(
          s("polyline", {
            points: points.join(" "),
            fill: "none",
            stroke: palette[i % palette.length],
            "stroke-width": 2,
          }),
        );
      });
      svg.append(
        s(
          "text",
          { x: 0, y: hgt + 14 },
          `last ${history.length} updates, peak ${max.toFixed(1)}/s`,
        ),
      );
      chart.dataset.updates = String(history.length);
      fill(chart, h("b", {}, "share over time"), h("div", {}, svg));
    }

    async function drawRing(r: Route): Promise<void> {
      if (!hashing.has(r.picker)) {
        fill(
          ring,
          h("b", {}, "key ownership"),
          h(
            "p",
            { class: "stream" },
            "choose ring_hash, maglev or bounded_load to see which worker owns which keys",
          ),
        );
        return;
      }
      const owned = await act(
        `key ownership (${r.picker})`,
        (t) =>
          api.gateway.keyOwnership({ service: r.service, keys: sampleKeys, samples: 10_000 }, t),
        (x) => `${x.shares.length} owners`,
      );
      if (owned) {
        ring.dataset.picker = owned.picker;
        fill(ring, h("b", {}, `key ownership (${owned.picker})`), ringOf(owned, r));
      }
    }
  },
};

/** Each endpoint's share of the hash space as a ring, and the sample keys placed on it. */
function ringOf(owned: KeyOwnershipResponse, r: Route): HTMLElement {
  const size = 220;
  const c = size / 2;
  const radius = 80;
  const svg = s("svg", { width: size, height: size });
  let angle = -Math.PI / 2;
  const colourOf = (id: string) =>
    palette[
      Math.max(
        0,
        r.endpoints.findIndex((e) => e.id === id),
      ) % palette.length
    ]!;
  for (const share of owned.shares) {
    const end = angle + share.share * 2 * Math.PI;
    const large = end - angle > Math.PI ? 1 : 0;
    const p = (a: number) => `${c + radius * Math.cos(a)},${c + radius * Math.sin(a)}`;
    svg.append(
      s("path", {
        d: `M${p(angle)} A${radius},${radius} 0 ${large} 1 ${p(end)}`,
        fill: "none",
        stroke: colourOf(share.endpoint),
        "stroke-width": 22,
      }),
    );
    angle = end;
  }
  const list = h(
    "ul",
    {},
    ...owned.shares.map((sh) =>
      h(
        "li",
        {},
        h("span", { style: `color:${colourOf(sh.endpoint)}` }, "■ "),
        `${sh.endpoint}: ${(sh.share * 100).toFixed(1)}%`,
      ),
    ),
    ...owned.keys.map((k) =>
      h(
        "li",
        {},
        `${k.key} → `,
        h("span", { style: `color:${colourOf(k.endpoint)}` }, k.endpoint || "none"),
      ),
    ),
  );
  return h("div", { class: "row" }, svg, list);
}
