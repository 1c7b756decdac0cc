import { describe, expect, it } from "vitest";
import { BrokerError, parseSubject, subjectMatches } from "../src/index.ts";

const bad = (subject: string, wildcards: boolean) => {
  try {
    parseSubject(subject, { wildcards });
  } catch (e) {
    expect(e).toBeInstanceOf(BrokerError);
    expect((e as BrokerError).code).toBe("invalid_argument");
    return (e as Error).message;
  }
  throw new Error(`${subject} was accepted`);
};

describe("subjects", () => {
  it("splits literal subjects and filters into tokens", () => {
    expect(parseSubject("orders.eu.created", { wildcards: false })).toEqual([
      "orders",
      "eu",
      "created",
    ]);
    expect(parseSubject("orders.*.>", { wildcards: true })).toEqual(["orders", "*", ">"]);
  });

  it("names the bad token and why", () => {
    expect(bad("", false)).toMatch(/subject is empty/);
    expect(bad("a..b", false)).toMatch(/token 2 of subject "a..b" is empty/);
    expect(bad(".a", false)).toMatch(/token 1 .* is empty/);
    expect(bad("a.", true)).toMatch(/token 2 of subject filter "a." is empty/);
    expect(bad("a.*", false)).toMatch(/token 2 .* wildcard "\*"; publish subjects must be literal/);
    expect(bad("a.>.b", true)).toMatch(/token 2 .* only allowed as the last token/);
    expect(bad("a.b*c", true)).toMatch(/token 2 .*"b\*c".* wildcard inside a token/);
    expect(bad("a b", false)).toMatch(/token 1 .*printable ASCII/);
    expect(bad(`a.${"x".repeat(65)}`, false)).toMatch(
      /token 2 .* 65 characters long; the limit is 64/,
    );
    expect(bad("a.".repeat(200) + "a", false)).toMatch(/characters long; the limit is 256/);
  });

  it("the reference matcher follows the wildcard rules", () => {
    const m = (f: string, s: string) => subjectMatches(f.split("."), s.split("."));
    expect(m("a.*", "a.b")).toBe(true);
    expect(m("a.*", "a.b.c")).toBe(false);
    expect(m("a.>", "a.b.c")).toBe(true);
    expect(m("a.>", "a")).toBe(false);
    expect(m(">", "a")).toBe(true);
    expect(m("*.b", "a.b")).toBe(true);
    expect(m("a.b", "a.b")).toBe(true);
    expect(m("a.b", "a")).toBe(false);
  });
});
