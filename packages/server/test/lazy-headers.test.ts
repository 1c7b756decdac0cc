// A unary call's handler gets headers that are copied from Node's record only when first
// used (lazy-headers.ts): every way of reading them must give what a Headers built at once
// gives, and a response's headers must be written as changed.
import { inspect } from "node:util";
import { expect, it } from "vitest";
import { RequestHeaders, ResponseHeaders } from "../src/lazy-headers.ts";

const record = {
  ":path": "/pkg.S/M",
  ":method": "POST",
  "content-type": "application/grpc",
  "x-list": ["a", "b"],
  "set-cookie": ["c=1", "d=2"],
  "grpc-timeout": "5S",
};

/** The same request's headers as a Headers built at once, pseudo-headers left out. */
const builtAtOnce = () =>
  new Headers([
    ["content-type", "application/grpc"],
    ["x-list", "a"],
    ["x-list", "b"],
    ["set-cookie", "c=1"],
    ["set-cookie", "d=2"],
    ["grpc-timeout", "5S"],
  ]);

const readings: [string, (h: Headers) => unknown][] = [
  ["get of a lower-case name", (h) => h.get("content-type")],
  ["get of a mixed-case name", (h) => h.get("Content-Type")],
  ["get of a header sent twice", (h) => h.get("x-list")],
  ["get of an absent header", (h) => h.get("x-absent")],
  ["has", (h) => [h.has("grpc-timeout"), h.has("X-List"), h.has("x-absent")]],
  ["getSetCookie", (h) => h.getSetCookie()],
  ["iteration", (h) => [...h]],
  ["entries, keys, values", (h) => [[...h.entries()], [...h.keys()], [...h.values()]]],
  [
    "forEach",
    (h) => {
      const seen: string[] = [];
      h.forEach((v, k) => {
        seen.push(`${k}=${v}`);
      });
      return seen;
    },
  ],
  [
    "a read after a change",
    (h) => {
      h.set("x-new", "1");
      h.delete("grpc-timeout");
      h.append("x-list", "c");
      return [...h];
    },
  ],
];

for (const [name, read] of readings) {
  it(`request headers read as a Headers built at once: ${name}`, () => {
    expect(read(new RequestHeaders(record))).toEqual(read(builtAtOnce()));
  });
}

it("request headers print as a Headers built at once", () => {
  expect(inspect(new RequestHeaders(record))).toBe(inspect(builtAtOnce()));
});

it("a pseudo-header is no header name, as in Headers", () => {
  expect(() => new RequestHeaders(record).get(":path")).toThrow(TypeError);
  expect(() => builtAtOnce().get(":path")).toThrow(TypeError);
});

it("response headers are written as the protocol's record until changed, then as changed", () => {
  const initial = Object.freeze({ "content-type": "application/grpc+proto" });
  const untouched = new ResponseHeaders(initial);
  expect(untouched.get("content-type")).toBe("application/grpc+proto");
  expect(untouched.outgoing()).toBe(initial);

  const changed = new ResponseHeaders(initial);
  changed.set("x-answer", "42");
  changed.append("x-answer", "43");
  expect(changed.outgoing()).toEqual({
    "content-type": "application/grpc+proto",
    "x-answer": "42, 43",
  });
  expect(initial).toEqual({ "content-type": "application/grpc+proto" });
});
