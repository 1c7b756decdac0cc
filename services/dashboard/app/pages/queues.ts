// Message queues: subscriptions opened from this page (Subscribe streams) with the messages
// they receive, publish and enqueue forms, and each work queue's depth, in-flight,
// redeliveries and dead letters over time (BrokerService.WatchQueues, a sample a second), and
// the broker's subscription counts (it does not list subjects or subscribers).
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { QueueStats } from "@quartet/proto/quartet/broker/v1/broker_pb";
import {
  ComputeRequestSchema,
  ComputeResponseSchema,
} from "@quartet/proto/quartet/worker/v1/worker_pb";
import { api } from "../api.ts";
import { fill, fmtTime, h, s } from "../dom.ts";
import type { Page } from "../main.ts";
import { describe, follow } from "../stream.ts";
import { act } from "../trace.ts";

const enc = new TextEncoder();
const text = new TextDecoder("utf-8", { fatal: true });
// The workers consuming the "jobs" queue take binary ComputeRequests and publish each result
// (a binary ComputeResponse) to the subject in the job's quartet-result-to header.
const resultSubject = "demo.results";

/** A message payload for people: a Compute result, text, or its size. */
function show(subject: string, payload: Uint8Array): string {
  if (subject === resultSubject) {
    try {
      const r = fromBinary(ComputeResponseSchema, payload);
      return `${r.workerId} computed ${r.digest.slice(0, 16)}… (${r.iterations} rounds)`;
    } catch {
      // Not a result after all: shown as what it is below.
    }
  }
  try {
    return text.decode(payload);
  } catch {
    return `${payload.length} bytes`;
  }
}
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
    const broker = h("p", { class: "stream", id: "broker-counts" }, "connecting…");
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
    const jobInput = input("job", "hello", 12);
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
                      payload: toBinary(
                        ComputeRequestSchema,
                        create(ComputeRequestSchema, { input: jobInput.value, iterations: 1000 }),
                      ),
                      headers: {
                        traceparent: t.headers.traceparent,
                        "quartet-result-to": resultSubject,
                      },
                    },
                  ],
                },
                t,
              ),
            (r) => `sequence ${r.sequences.join(", ")}`,
          );
        },
      },
      "Enqueue a Compute job on ",
      queueName,
      "hashing ",
      jobInput,
      h("button", { type: "submit" }, "Enqueue"),
      h("span", { class: "stream" }, ` (a worker publishes the result to ${resultSubject})`),
    );
    root.append(
      h("h2", {}, "Message broker"),
      broker,
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
                `${fmtTime(Date.now())} ${m.subject}: ${show(m.subject, m.payload)}`,
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

    follow(
      signal,
      (sig) => api.broker.watchQueues({ intervalMs: 1000 }, { signal: sig }),
      (sample) => {
        fill(
          broker,
          `The broker now: ${sample.subscriptions} subscriptions, ${sample.queueGroups} queue groups with a member`,
        );
        // A queue the broker no longer has takes its history with it: the map stays as
        // small as the broker's queue list however long the page is open.
        const present = new Set(sample.queues.map((q) => q.queue));
        for (const name of history.keys()) if (!present.has(name)) history.delete(name);
        for (const q of sample.queues) {
          const points = history.get(q.queue) ?? [];
          points.push(q);
          if (points.length > historyLength) points.shift();
          history.set(q.queue, points);
        }
        fill(queues, ...sample.queues.map((q) => queueCard(q, history.get(q.queue) ?? [])));
      },
      (state, error) => {
        if (state === "retrying") fill(broker, describe(state, error));
      },
    );
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
