import { expect, it } from "vitest";
import { ChangeWaiter } from "../src/change-waiter.ts";

/** A change source like the observers the streams listen to. */
function source() {
  const listeners = new Set<() => void>();
  return {
    listen(listener: () => void) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    change: () => {
      for (const l of listeners) l();
    },
    listeners,
  };
}

it("a change made while the stream was busy is not missed, and wait wakes on the next one", async () => {
  const s = source();
  const changes = new ChangeWaiter(s.listen, new AbortController().signal);
  expect(changes.take()).toBe(true); // the first look always sends
  expect(changes.take()).toBe(false);
  s.change(); // while the stream was sending
  await changes.wait(); // resolves at once
  expect(changes.take()).toBe(true);
  const waiting = changes.wait();
  s.change();
  await waiting;
  expect(changes.take()).toBe(true);
  changes.close();
  expect(s.listeners.size).toBe(0);
});

it("wait ends at its timeout without a change, and at once when the call ends", async () => {
  const s = source();
  const controller = new AbortController();
  const changes = new ChangeWaiter(s.listen, controller.signal);
  changes.take();
  await changes.wait(1);
  expect(changes.take()).toBe(false);
  const waiting = changes.wait();
  controller.abort();
  await waiting;
  expect(changes.take()).toBe(false);
  changes.close();
});
