// Message queues: subscriptions opened from this page (Subscribe streams) with the messages
// they receive, publish and enqueue forms, and each work queue's depth, in-flight,
// redeliveries and dead letters over time. The broker has no stats stream, so queue figures
// are read once a second; messages arrive on streams.
import type { QueueStats } from "@quartet/proto/quartet/broker/v1/broker_pb";
import { api } from "../api.ts";
import { fill, fmtTime, h, s } from "../dom.ts";
import type { Page } from "../main.ts";
import { every, follow } from "../stream.ts";
import { act } from "../trace.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const series = ["depth", "inFlight", "redeliveredTotal", "deadLetters"] as const;
const colours = ["#1565c0", "#ef6c00", "#6a1b9a", "#c62828"];
const historyLength = 60;

export const queuesPage: Page = {
  path: "/queues",
  title: "Message queues",
  render(root, signal) {
    const history = new Map<string, QueueStats[]>();
    const subs = h("div", { class: "row", id: "subscriptions" });
    const queues = h("div", { class: "row", id: "queues" });
    const input = (name: string, value: string, size = 16) => h("input", { name, value, size });

    const subFilter = input("filter", "demo.>");
    const subscribe = h(
      "form",
      {
        id: "subscribe",
        onsubmit: (e) => {
          e.preventDefault();
          openSubscription(subFilter.value);
        },
      },
      "Subscribe to ",
      subFilter,
      h("button", { type: "submit" }, "Subscribe"),
    );
    const pubSubject = input("subject", "demo.hello");
    const pubPayload = input("payload", "hello from the dashboard", 24);
    const publish = h(
      "form",
      {
        id: "publish",
        onsubmit: (e) => {
          e.preventDefault();
          void act(
            `publish ${pubSubject.value}`,
            (t) =>
              api.broker.publish(
                {
                  subject: pubSubject.value,
                  payload: enc.encode(pubPayload.value),
                  headers: { traceparent: t.headers.traceparent },
                },
                t,
              ),
            (r) => `delivered to ${r.delivered}`,
          );
        },
      },
      "Publish to ",
      pubSubject,
      pubPayload,
      h("button", { type: "submit" }, "Publish"),
    );
    const queueName = input("queue", "jobs", 10);
    const queuePayload = input("job", "job from the dashboard", 24);
    const enqueue = h(
      "form",
      {
        id: "enqueue",
        onsubmit: (e) => {
          e.preventDefault();
          void act(
            `enqueue on ${queueName.value}`,
            (t) =>
              api.broker.enqueue(
                {
                  queue: queueName.value,
                  messages: [
                    {
                      payload: enc.encode(queuePayload.value),
                      headers: { traceparent: t.headers.traceparent },
                    },
                  ],
                },
                t,
              ),
            (r) => `sequence ${r.sequences.join(", ")}`,
          );
        },
      },
      "Enqueue on ",
      queueName,
      queuePayload,
      h("button", { type: "submit" }, "Enqueue"),
    );
    root.append(
      h("h2", {}, "Message broker"),
      h("div", { class: "card" }, subscribe, publish, enqueue),
      h("h2", {}, "Subscriptions (this page's)"),
      subs,
      h("h2", {}, "Work queues"),
      queues,
    );

    function openSubscription(filter: string): void {
      const list = h("ol", { class: "messages" });
      const state = h("span", { class: "stream" }, "connecting…");
      const close = new AbortController();
      signal.addEventListener("abort", () => close.abort(), { once: true });
      const card = h(
        "div",
        { class: "card subscription", "data-filter": filter },
        h("b", {}, filter),
        " ",
        state,
        " ",
        h(
          "button",
          {
            onclick: () => {
              close.abort();
              card.remove();
            },
          },
          "Close",
        ),
        list,
      );
      subs.append(card);
      follow(
        close.signal,
        (sig) => api.broker.subscribe({ subject: filter }, { signal: sig }),
        (res) => {
          if (res.ready) {
            card.dataset.ready = "true";
            fill(state, "subscribed");
          }
          for (const m of res.messages) {
            const trace = m.headers.traceparent?.split("-")[1];
            list.prepend(
              h(
                "li",
                { "data-subject": m.subject },
                `${fmtTime(Date.now())} ${m.subject}: ${dec.decode(m.payload)}`,
                trace ? ` (trace ${trace.slice(0, 8)}…)` : "",
              ),
            );
          }
          while (list.children.length > 100) list.lastElementChild?.remove();
        },
        (st) => {
          if (st !== "live") {
            card.dataset.ready = "false";
            fill(state, st);
          }
        },
      );
    }

    every(signal, 1000, async () => {
      const { queues: all } = await api.broker.listQueues({}, { signal });
      for (const q of all) {
        const points = history.get(q.queue) ?? [];
        points.push(q);
        if (points.length > historyLength) points.shift();
        history.set(q.queue, points);
      }
      fill(queues, ...all.map((q) => queueCard(q, history.get(q.queue) ?? [])));
    });
  },
};

function queueCard(q: QueueStats, points: QueueStats[]): HTMLElement {
  const w = 260;
  const hgt = 80;
  const max = Math.max(1, ...points.flatMap((p) => series.map((k) => Number(p[k]))));
  const svg = s("svg", { width: w, height: hgt });
  series.forEach((k, i) => {
    const line = points.map(
      (p, j) => `${(j / (historyLength - 1)) * w},${hgt - (Number(p[k]) / max) * (hgt - 4)}`,
    );
    svg.append(
      s("polyline", {
        points: line.join(" "),
        fill: "none",
        stroke: colours[i]!,
        "stroke-width": 2,
      }),
    );
  });
  return h(
    "div",
    { class: "card", "data-queue": q.queue },
    h("b", {}, q.queue),
    ` ${q.settings?.durable ? "durable" : "in memory"}, ${q.consumers} consumers`,
    h(
      "div",
      {},
      ...series.map((k, i) => h("span", { style: `color:${colours[i]}` }, ` ${labels[k]} ${q[k]}`)),
      ` · enqueued ${q.enqueuedTotal}, acked ${q.ackedTotal}`,
    ),
    svg,
  );
}

const labels: Record<(typeof series)[number], string> = {
  depth: "depth",
  inFlight: "in flight",
  redeliveredTotal: "redelivered",
  deadLetters: "dead letters",
};
