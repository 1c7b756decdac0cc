import { describe, expect, it } from "vitest";
import { LiveSet } from "../src/live-set.ts";

describe("LiveSet", () => {
  it("keeps entries oldest first and forgets each one its remover is called for", () => {
    const set = new LiveSet<string>();
    const removeA = set.add("a");
    set.add("b");
    const removeC = set.add("c");
    expect(set.values()).toEqual(["a", "b", "c"]);
    expect(set.oldest()).toBe("a");
    expect(set.newest()).toBe("c");

    removeA();
    removeC();
    expect(set.values()).toEqual(["b"]);
    expect(set.oldest()).toBe("b");
    expect(set.newest()).toBe("b");
    expect(set.size).toBe(1);
  });

  it("ignores a second removal of the same entry", () => {
    const set = new LiveSet<number>();
    const remove = set.add(1);
    set.add(2);
    remove();
    remove();
    expect(set.values()).toEqual([2]);
    expect(set.size).toBe(1);
  });

  it("lets a caller remove entries while it goes through them", () => {
    const set = new LiveSet<{ name: string; remove?: () => void }>();
    for (const name of ["a", "b", "c"]) {
      const entry: { name: string; remove?: () => void } = { name };
      entry.remove = set.add(entry);
    }
    const seen: string[] = [];
    for (const entry of set.values()) {
      seen.push(entry.name);
      entry.remove?.();
    }
    expect(seen).toEqual(["a", "b", "c"]);
    expect(set.size).toBe(0);
    expect(set.oldest()).toBeUndefined();
  });
});
