// Raft: the members as the seed's diagram draws them (role, term, vote, log), live from each
// member's ObserveService.WatchRaft stream; leader changes on a timeline; buttons that kill,
// restart, isolate and heal a member, move leadership, and write a key to watch it replicate.
import { FaultService } from "@quartet/proto/quartet/consensus/v1/faults_pb";
import { ObserveService } from "@quartet/proto/quartet/consensus/v1/observe_pb";
import { api, clientAt } from "../api.ts";
import { fill, fmtTime, h } from "../dom.ts";
import type { Page } from "../main.ts";
import { follow } from "../stream.ts";
import { followSuite, processButton } from "../suite.ts";
import { act } from "../trace.ts";
import {
  clusterDiagram,
  type LeaderChange,
  leaderStrip,
  type MemberState,
} from "./raft-drawing.ts";

const enc = new TextEncoder();

export const raftPage: Page = {
  path: "/raft",
  title: "Raft",
  render(root, signal) {
    // By base URL: the supervisor lists the members; each one's own stream says its id.
    const members = new Map<string, MemberState>();
    const byId = (id: bigint) => [...members.values()].find((m) => m.member.id === id && id !== 0n);
    const changes: LeaderChange[] = [];
    let write: { key: string; index?: bigint } | undefined;
    const diagram = h("div", { class: "card" });
    const table = h("div");
    const timeline = h("div", { class: "card" });
    const status = h("p", { class: "stream" }, "loading members…");
    const key = h("input", { name: "key", value: "demo/greeting", size: 18 });
    const value = h("input", { name: "value", value: "hello", size: 12 });
    const writeForm = h(
      "form",
      {
        class: "control",
        onsubmit: (e) => {
          e.preventDefault();
          write = undefined;
          redraw();
          void act(
            `put ${key.value}`,
            (t) => api.kv.put({ key: enc.encode(key.value), value: enc.encode(value.value) }, t),
            (r) => `revision ${r.header?.revision}, by member ${r.header?.memberId}`,
          ).then((done) => {
            // Committed once acknowledged: the leader's commit index covers it. A failed
            // write has nothing to follow.
            const l = leader();
            if (done && l) write = { key: key.value, index: l.view!.commitIndex };
            redraw();
          });
        },
      },
      "Write a key ",
      key,
      value,
      h("button", { type: "submit" }, "Put"),
      h("span", { id: "write-status" }),
    );
    root.append(
      h("h2", {}, "Raft consensus"),
      status,
      h("div", { class: "row" }, diagram, timeline),
      table,
      writeForm,
    );
    const suite = followSuite(signal, () => {
      for (const [url, proc] of suite.byUrl) {
        if (proc.name.startsWith("consensus-") && !members.has(url)) watch(proc.name, url);
      }
      redraw();
    });

    function leader(): MemberState | undefined {
      let best: MemberState | undefined;
      for (const m of members.values()) {
        if (m.stream !== "live" || m.view?.role !== "leader" || m.view.isolated) continue;
        if (!best || m.view.term > best.view!.term) best = m;
      }
      return best;
    }

    let scheduled = false;
    function redraw(): void {
      if (scheduled) return;
      scheduled = true;
      requestAnimationFrame(() => {
        scheduled = false;
        draw();
      });
    }

    function noteLeader(): void {
      // A leader (id and term), or none (0): each change is one entry of the timeline.
      const l = leader();
      const now = l
        ? { leader: l.member.id, term: l.view!.term }
        : { leader: 0n, term: changes.at(-1)?.term ?? 0n };
      const last = changes.at(-1);
      if (last ? last.leader !== now.leader || last.term !== now.term : l) {
        changes.push({ at: Date.now(), ...now });
        if (changes.length > 30) changes.shift();
      }
    }

    function draw(): void {
      const l = leader();
      root.dataset.leader = l ? String(l.member.id) : "";
      root.dataset.term = l ? String(l.view!.term) : "";
      const live = [...members.values()].filter((m) => m.stream === "live").length;
      fill(
        status,
        `${live} of ${members.size} members streaming · `,
        l ? `leader: ${l.member.name || l.member.id} (term ${l.view!.term})` : "no leader",
        suite.problem && members.size === 0
          ? h("span", { class: "warn" }, ` · ${suite.problem}`)
          : "",
      );
      drawDiagram(l);
      drawTable(l);
      drawTimeline();
      const ws = root.querySelector("#write-status");
      if (ws) fill(ws);
      if (ws && write?.index !== undefined) {
        const applied = [...members.values()].filter(
          (m) => m.view && m.stream === "live" && m.view.appliedIndex >= write!.index!,
        );
        fill(ws, ` index ${write.index}: applied on ${applied.length} of ${members.size}`);
      }
    }

    function drawDiagram(l: MemberState | undefined): void {
      fill(
        diagram,
        clusterDiagram([...members.values()], l),
        h(
          "div",
          { class: "stream" },
          "dashed: votes this term · solid: leader → follower (green: caught up) · red dashes: the leader has not heard from it within an election timeout",
        ),
      );
    }

    function drawTable(l: MemberState | undefined): void {
      const rows = [...members.values()].map((m) => {
        const v = m.stream === "live" ? m.view : undefined;
        const proc = suite.byUrl.get(m.url);
        const name = m.member.name || String(m.member.id);
        const isLeader = l === m;
        return h(
          "tr",
          { "data-member": String(m.member.id), "data-role": v?.role ?? "down" },
          h("td", {}, name),
          h("td", {}, h("span", { class: `badge ${v?.role ?? "stopped"}` }, v?.role ?? m.stream)),
          h("td", {}, v ? String(v.term) : ""),
          h("td", {}, v ? (v.votedFor === 0n ? "–" : String(v.votedFor)) : ""),
          h("td", {}, v ? String(v.commitIndex) : ""),
          h("td", {}, v ? String(v.appliedIndex) : ""),
          h("td", {}, v ? String(v.lastLogIndex) : ""),
          h("td", {}, v?.isolated ? "isolated" : ""),
          h(
            "td",
            { class: "ok" },
            v && write?.index !== undefined && v.appliedIndex >= write.index ? "✓" : "",
          ),
          h(
            "td",
            {},
            proc ? `${proc.state}${proc.restarts ? ` (${proc.restarts} restarts)` : ""}` : "",
          ),
          h(
            "td",
            { class: "control" },
            processButton(proc),
            !proc && v
              ? h(
                  "button",
                  {
                    "data-action": "crash",
                    onclick: () =>
                      act(
                        `crash ${name}`,
                        (t) => clientAt(FaultService, m.url).crash({}, t),
                        (r) => `pid ${r.pid} ends`,
                      ),
                  },
                  "Crash",
                )
              : null,
            v
              ? h(
                  "button",
                  {
                    "data-action": v.isolated ? "heal" : "isolate",
                    onclick: () =>
                      act(
                        `${v.isolated ? "heal" : "isolate"} ${name}`,
                        (t) => clientAt(FaultService, m.url).isolate({ isolated: !v.isolated }, t),
                        (r) => (r.isolated ? "isolated" : "healed"),
                      ),
                  },
                  v.isolated ? "Heal" : "Isolate",
                )
              : null,
            v && !isLeader
              ? h(
                  "button",
                  {
                    "data-action": "lead",
                    onclick: () =>
                      act(
                        `move leader to ${name}`,
                        (t) => api.maintenance.moveLeader({ targetId: m.member.id }, t),
                        () => `${name} leads`,
                      ),
                  },
                  "Make leader",
                )
              : null,
          ),
        );
      });
      fill(
        table,
        h(
          "table",
          {},
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...[
                "member",
                "role",
                "term",
                "voted for",
                "commit",
                "applied",
                "log length",
                "",
                "has the write",
                "process",
                "",
              ].map((c) => h("th", {}, c)),
            ),
          ),
          h("tbody", {}, ...rows),
        ),
      );
    }

    function drawTimeline(): void {
      const nameOf = (id: bigint) => byId(id)?.member.name ?? `member ${id}`;
      fill(
        timeline,
        h("b", {}, "Leaders over time (up to 2 minutes)"),
        leaderStrip(changes, Date.now(), (id) =>
          [...members.values()].findIndex((m) => m.member.id === id),
        ),
        h(
          "ol",
          { id: "leader-changes", reversed: true },
          ...[...changes].reverse().map((c, i, all) => {
            const before = all[i + 1];
            const gap = before ? ` (+${((c.at - before.at) / 1000).toFixed(1)} s)` : "";
            return h(
              "li",
              { "data-leader": String(c.leader) },
              `${fmtTime(c.at)} `,
              c.leader === 0n ? "no leader" : `term ${c.term}: ${nameOf(c.leader)} leads`,
              gap,
            );
          }),
        ),
      );
    }

    function watch(name: string, url: string): void {
      const state: MemberState = { member: { name, id: 0n }, url, stream: "connecting" };
      members.set(url, state);
      const observe = clientAt(ObserveService, url);
      follow(
        signal,
        (sig) => observe.watchRaft({ minIntervalMs: 100, heartbeatMs: 1000 }, { signal: sig }),
        (message) => {
          state.view = message.view;
          if (message.view) state.member.id = message.view.memberId;
          noteLeader();
          redraw();
        },
        (st) => {
          state.stream = st;
          if (st !== "live") {
            noteLeader();
            redraw();
          }
        },
      );
    }
  },
};
