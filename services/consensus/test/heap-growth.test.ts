import { describe, expect, it } from "vitest";
import { applyHeapGrowth } from "../src/heap-growth.ts";

describe("applyHeapGrowth", () => {
  it("gives V8 the member's --heap-growth-percent as its --heap-growing-percent", () => {
    const set: string[] = [];
    applyHeapGrowth(400, (flags) => set.push(flags));
    expect(set).toEqual(["--heap-growing-percent=400"]);
  });

  it("leaves V8's own growing factor alone at 0", () => {
    const set: string[] = [];
    applyHeapGrowth(0, (flags) => set.push(flags));
    expect(set).toEqual([]);
  });
});
