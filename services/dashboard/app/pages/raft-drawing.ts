// Drawings of the Raft page: the members as the seed's diagram draws them, and who led when.
import type { RaftView } from "@quartet/proto/quartet/consensus/v1/observe_pb";
import { s } from "../dom.ts";
import type { StreamState } from "../stream.ts";

export interface MemberState {
  /** Its process name (consensus-1) and Raft id (0 until its first view). */
  member: { name: string; id: bigint };
  url: string;
  view?: RaftView;
  stream: StreamState;
}

export interface LeaderChange {
  at: number;
  term: bigint;
  leader: bigint;
}

/**
 * The members on a circle, coloured by role (grey when their stream is down, a red dashed ring
 * when isolated), with each vote of this term and the leader's replication to each follower.
 */
export function clusterDiagram(list: MemberState[], l: MemberState | undefined): SVGSVGElement {
  const byId = (id: bigint) => list.find((m) => m.member.id === id && id !== 0n);
  const w = 360;
  const r = 110;
  const pos = new Map<string, { x: number; y: number }>();
  list.forEach((m, i) => {
    const a = (2 * Math.PI * i) / list.length - Math.PI / 2;
    pos.set(m.url, { x: w / 2 + r * Math.cos(a), y: 160 + r * Math.sin(a) });
  });
  const svg = s("svg", { width: w, height: 320, viewBox: `0 0 ${w} 320` });
  svg.append(
    s(
      "defs",
      {},
      s(
        "marker",
        {
          id: "arrow",
          viewBox: "0 0 10 10",
          refX: 10,
          refY: 5,
          markerWidth: 6,
          markerHeight: 6,
          orient: "auto",
        },
        s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#999" }),
      ),
    ),
  );
  // Votes of this term and, from the leader, replication.
  for (const m of list) {
    const v = m.view;
    if (!v || m.stream !== "live") continue;
    const from = pos.get(m.url)!;
    const votee = byId(v.votedFor);
    if (votee && votee !== m) {
      const to = pos.get(votee.url)!;
      svg.append(
        line(
          from,
          to,
          { stroke: "#999", "stroke-dasharray": "4 3", "marker-end": "url(#arrow)" },
          8,
        ),
      );
    }
  }
  if (l) {
    for (const p of l.view!.progress) {
      const follower = byId(p.memberId);
      if (!follower || follower === l) continue;
      const behind = l.view!.lastLogIndex - p.matchIndex;
      svg.append(
        line(pos.get(l.url)!, pos.get(follower.url)!, {
          stroke: !p.reachable ? "#c62828" : behind === 0n ? "#2e7d32" : "#ef6c00",
          "stroke-width": 2,
          "stroke-dasharray": p.reachable ? undefined : "6 4",
          "marker-end": "url(#arrow)",
          "data-to": String(p.memberId),
          "data-reachable": String(p.reachable),
        }),
      );
    }
  }
  for (const m of list) {
    const { x, y } = pos.get(m.url)!;
    const v = m.view;
    const role = m.stream === "live" && v ? v.role : "down";
    const colour =
      {
        leader: "#2e7d32",
        follower: "#1565c0",
        candidate: "#ef6c00",
        pre_candidate: "#ef6c00",
        down: "#bbb",
      }[role] ?? "#777";
    svg.append(
      s("circle", {
        cx: x,
        cy: y,
        r: 46,
        fill: colour,
        stroke: v?.isolated ? "#c62828" : "#fff",
        "stroke-width": v?.isolated ? 4 : 2,
        "stroke-dasharray": v?.isolated ? "6 4" : undefined,
      }),
      s(
        "text",
        { x, y: y - 6, "text-anchor": "middle", fill: "#fff", "font-weight": 700 },
        m.member.id ? `member ${m.member.id}` : m.member.name,
      ),
      s("text", { x, y: y + 8, "text-anchor": "middle", fill: "#fff" }, role),
      s(
        "text",
        { x, y: y + 22, "text-anchor": "middle", fill: "#fff", "font-size": 10 },
        v ? `t${v.term} · log ${v.lastLogIndex}` : "",
      ),
    );
  }
  return svg;
}

/** A line between two members' circles, stopping at their edges, shifted sideways by `offset`. */
function line(
  a: { x: number; y: number },
  b: { x: number; y: number },
  attrs: Record<string, string | number | undefined>,
  offset = 0,
): SVGLineElement {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len = Math.hypot(dx, dy) || 1;
  const k = 48 / len;
  const ox = (-dy / len) * offset;
  const oy = (dx / len) * offset;
  return s("line", {
    x1: a.x + dx * k + ox,
    y1: a.y + dy * k + oy,
    x2: b.x - dx * k + ox,
    y2: b.y - dy * k + oy,
    ...attrs,
  });
}

// Not the role colours of the diagram: here a colour names a member.
const leaderColours = ["#8e24aa", "#00838f", "#6d4c41", "#c2185b", "#5e35b1"];

/** Who led when: one coloured stretch per leader, grey where there was none. */
export function leaderStrip(
  changes: LeaderChange[],
  now: number,
  indexOf: (id: bigint) => number,
): SVGSVGElement {
  const w = 320;
  // The whole history up to 2 minutes (at least 5 s), so a fresh election is not a sliver.
  const span = Math.min(120_000, Math.max(5_000, now - (changes[0]?.at ?? now)));
  const x = (t: number) => Math.max(0, w - ((now - t) / span) * w);
  const svg = s("svg", { width: w, height: 22 });
  changes.forEach((c, i) => {
    const end = changes[i + 1]?.at ?? now;
    if (end < now - span) return;
    const colour =
      c.leader === 0n
        ? "#bbb"
        : leaderColours[Math.max(0, indexOf(c.leader)) % leaderColours.length];
    svg.append(
      s("rect", {
        x: x(c.at),
        y: 2,
        width: Math.max(1, x(end) - x(c.at)),
        height: 16,
        fill: colour,
      }),
    );
  });
  return svg;
}
