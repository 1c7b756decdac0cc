import { describe, expect, it } from "vitest";
import { systemClock } from "../src/index.ts";
import { FakeClock } from "../src/testing.ts";

describe("FakeClock", () => {
  it("starts at 2025-01-01 by default, or at the given time, and moves only when told", () => {
    expect(new FakeClock().now()).toBe(Date.parse("2025-01-01T00:00:00Z"));
    const clock = new FakeClock(1000);
    expect(clock.now()).toBe(1000);
    clock.advance(250);
    expect(clock.now()).toBe(1250);
    clock.set(5000);
    expect(clock.now()).toBe(5000);
  });

  it("fires due timers in due order (ties in scheduling order), each at its own time", () => {
    const clock = new FakeClock(0);
    const fired: string[] = [];
    const at = (name: string) => () => fired.push(`${name}@${clock.now()}`);
    clock.setTimeout(at("c"), 300);
    clock.setTimeout(at("a"), 100);
    clock.setTimeout(at("b1"), 200);
    clock.setTimeout(at("b2"), 200);
    clock.setTimeout(at("late"), 1000);
    clock.advance(300);
    expect(fired).toEqual(["a@100", "b1@200", "b2@200", "c@300"]);
    expect(clock.now()).toBe(300);
    expect(clock.pendingTimers).toBe(1);
  });

  it("fires timers scheduled by a callback when they fall due within the same advance", () => {
    const clock = new FakeClock(0);
    const fired: number[] = [];
    clock.setTimeout(() => {
      fired.push(clock.now());
      clock.setTimeout(() => fired.push(clock.now()), 50);
    }, 100);
    clock.advance(200);
    expect(fired).toEqual([100, 150]);
  });

  it("fires timers on set() too", () => {
    const clock = new FakeClock(0);
    let fired = false;
    clock.setTimeout(() => {
      fired = true;
    }, 10);
    clock.set(10);
    expect(fired).toBe(true);
  });

  it("never fires a cleared timer", () => {
    const clock = new FakeClock(0);
    let fired = 0;
    const handle = clock.setTimeout(() => fired++, 100);
    clock.setTimeout(() => fired++, 100);
    clock.clearTimeout(handle);
    expect(clock.pendingTimers).toBe(1);
    clock.advance(1000);
    expect(fired).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it("rejects moving backwards or by a non-number", () => {
    const clock = new FakeClock(1000);
    expect(() => clock.advance(-1)).toThrow(/ms must be >= 0, got -1/);
    expect(() => clock.advance(Number.NaN)).toThrow(RangeError);
    expect(() => clock.set(999)).toThrow(/cannot move back from 1000 to 999/);
    expect(clock.now()).toBe(1000);
  });
});

describe("systemClock", () => {
  it("reads the wall clock and runs and cancels real timers", async () => {
    const before = Date.now();
    expect(systemClock.now()).toBeGreaterThanOrEqual(before);
    const cancelled = systemClock.setTimeout(() => expect.unreachable("cleared timer fired"), 0);
    systemClock.clearTimeout(cancelled);
    await new Promise<void>((resolve) => systemClock.setTimeout(resolve, 0));
  });
});
