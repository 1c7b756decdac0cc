import { seededRandom } from "@quartet/determinism";
import { describe, expect, it } from "vitest";
import { Sublist, type SublistEntry, subjectMatches } from "../src/index.ts";

interface Entry extends SublistEntry {
  name: string;
}
const entry = (filter: string, queueGroup = ""): Entry => ({
  name: filter,
  filter: filter.split("."),
  queueGroup,
});
const names = (list: Sublist<Entry>, subject: string) =>
  list
    .match(subject, subject.split("."))
    .plain.map((e) => e.name)
    .sort();

describe("Sublist", () => {
  it("matches literal, * and > filters", () => {
    const list = new Sublist<Entry>();
    for (const f of ["a.b.c", "a.*.c", "a.>", ">", "*.b.*", "a.b", "x.y"]) list.insert(entry(f));
    expect(names(list, "a.b.c")).toEqual([">", "*.b.*", "a.*.c", "a.>", "a.b.c"].sort());
    expect(names(list, "a.b")).toEqual([">", "a.>", "a.b"].sort());
    expect(names(list, "a")).toEqual([">"]);
    expect(names(list, "x.y")).toEqual([">", "x.y"]);
  });

  it("groups queue subscribers by group name across filters", () => {
    const list = new Sublist<Entry>();
    list.insert(entry("jobs.*", "g"));
    list.insert(entry("jobs.>", "g"));
    list.insert(entry("jobs.eu", "h"));
    const result = list.match("jobs.eu", ["jobs", "eu"]);
    expect(result.plain).toEqual([]);
    expect(result.groups.get("g")).toHaveLength(2);
    expect(result.groups.get("h")).toHaveLength(1);
  });

  it("invalidates cached results when subscriptions change, and prunes removed branches", () => {
    const list = new Sublist<Entry>();
    const e = entry("a.*");
    expect(names(list, "a.b")).toEqual([]);
    list.insert(e);
    expect(names(list, "a.b")).toEqual(["a.*"]);
    expect(list.remove(e)).toBe(true);
    expect(list.remove(e)).toBe(false);
    expect(names(list, "a.b")).toEqual([]);
    expect(list.size).toBe(0);
  });

  it("agrees with a brute-force matcher on random filters, subjects, inserts and removes (seeded)", () => {
    const seed = Number(process.env.BROKER_SEED ?? 20261122);
    const random = seededRandom(seed);
    const tokens = ["a", "b", "c", "d"];
    const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)]!;
    const randomFilter = () => {
      const n = 1 + Math.floor(random() * 4);
      const parts: string[] = [];
      for (let i = 0; i < n; i++) {
        const r = random();
        if (i === n - 1 && r < 0.15) parts.push(">");
        else parts.push(r < 0.35 ? "*" : pick(tokens));
      }
      return parts.join(".");
    };
    const randomSubject = () =>
      Array.from({ length: 1 + Math.floor(random() * 4) }, () => pick(tokens)).join(".");

    const list = new Sublist<Entry>({ cacheLimit: 16 });
    const live: Entry[] = [];
    for (let step = 0; step < 4000; step++) {
      const r = random();
      if (r < 0.4 || live.length === 0) {
        const e = entry(randomFilter(), random() < 0.2 ? pick(["g1", "g2"]) : "");
        live.push(e);
        list.insert(e);
      } else if (r < 0.6) {
        const e = live.splice(Math.floor(random() * live.length), 1)[0]!;
        expect(list.remove(e), `seed ${seed} step ${step}`).toBe(true);
      } else {
        const subject = randomSubject();
        const t = subject.split(".");
        const result = list.match(subject, t);
        const got = [...result.plain, ...[...result.groups.values()].flat()];
        const expected = live.filter((e) => subjectMatches(e.filter, t));
        expect(new Set(got), `seed ${seed} step ${step} subject ${subject}`).toEqual(
          new Set(expected),
        );
        expect(got.length, `seed ${seed} step ${step}: no duplicates`).toBe(expected.length);
      }
    }
    expect(list.size).toBe(live.length);
  });
});
